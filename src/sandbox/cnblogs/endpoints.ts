/** The IdentityServer endpoints: discovery, `/connect/authorize`, `/connect/token` and `/connect/revocation`. */
import type { Grant } from '../engine.js';
import {
  clientCredentials,
  escapeHtml,
  redirectWithParams,
  reply,
  serve,
  signIn,
  withFault,
  type SandboxReply,
  type SandboxRequest,
} from '../server.js';
import { issueIdToken } from './id-token.js';
import {
  allowedResponseTypes,
  normalizeResponseType,
  RESPONSE_MODES,
  RESPONSE_TYPES,
  SCOPES,
  splitScope,
  takeOidcFault,
  type CnblogsSandboxClient,
  type CnblogsSandboxState,
} from './options.js';

export function discovery(state: CnblogsSandboxState): Promise<SandboxReply> {
  const issuer = state.issuer;
  state.oidcCounters.discovery += 1;
  return withFault(takeOidcFault(state, 'discovery'), () =>
    reply.json(200, {
      issuer,
      jwks_uri: `${issuer}/.well-known/openid-configuration/jwks`,
      authorization_endpoint: `${issuer}/connect/authorize`,
      token_endpoint: `${issuer}/connect/token`,
      userinfo_endpoint: `${issuer}/connect/userinfo`,
      end_session_endpoint: `${issuer}/connect/endsession`,
      revocation_endpoint: `${issuer}/connect/revocation`,
      scopes_supported: SCOPES,
      claims_supported: ['sub', 'name', 'picture', 'website', 'blog_id', 'account_id'],
      grant_types_supported: ['authorization_code', 'client_credentials', 'refresh_token'],
      response_types_supported: RESPONSE_TYPES,
      response_modes_supported: RESPONSE_MODES,
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
    }),
  );
}

/** The OpenID Connect form_post answer (an auto-submitting page), as IdentityServer renders it. */
function formPostPage(action: string, fields: Record<string, string>): SandboxReply {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}" />`)
    .join('');
  return {
    status: 200,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store, no-cache, max-age=0', pragma: 'no-cache' },
    body:
      `<html><head><meta name="viewport" content="width=device-width, initial-scale=1.0" /><title>Submit this form</title></head><body>` +
      `<form method="post" action="${escapeHtml(action)}">${inputs}<noscript><button>Click to continue</button></noscript></form>` +
      `<script>window.addEventListener('load', function(){document.forms[0].submit();});</script></body></html>`,
  };
}

/** IdentityServer's error page: shown when an error cannot, or may not, go back to the client. */
function errorPage(error: string, description: string): SandboxReply {
  return reply.html(400, `<h1>Sorry, there was an error : ${escapeHtml(error)}</h1><p>${escapeHtml(description)}</p>`);
}

/** Delivers an authorization answer the way response_mode says. */
function deliver(redirectUri: string, mode: string, params: Record<string, string>): SandboxReply {
  if (mode === 'form_post') return formPostPage(redirectUri, params);
  return redirectWithParams(redirectUri, params, mode === 'fragment');
}

export async function authorize(state: CnblogsSandboxState, req: SandboxRequest): Promise<SandboxReply> {
  const { engine } = state;
  const p = req.params;
  const client = engine.findClient(p['client_id']) as CnblogsSandboxClient | undefined;
  const redirectUri = p['redirect_uri'];
  if (!client || !redirectUri || !/^https?:\/\//.test(redirectUri)) {
    // IdentityServer shows its own error page when it cannot trust the redirect URI.
    return errorPage('unauthorized_client', 'Unknown client or invalid redirect_uri.');
  }
  const responseType = normalizeResponseType(p['response_type']);
  const hybrid = responseType === 'code id_token';
  const mode = p['response_mode'] ?? (hybrid ? 'fragment' : 'query');
  if (!RESPONSE_MODES.includes(mode)) return errorPage('invalid_request', 'Invalid response_mode.');
  const withState = (params: Record<string, string>) => (p['state'] === undefined ? params : { ...params, state: p['state'] });
  const fail = (error: string, deliverMode = mode) => deliver(redirectUri, deliverMode, withState({ error }));
  if (!(RESPONSE_TYPES as readonly string[]).includes(responseType)) return fail('unsupported_response_type', 'query');
  // OpenID Connect: a hybrid answer (it holds an id_token) never travels in the query string.
  if (hybrid && mode === 'query') return fail('invalid_request', 'fragment');
  // IdentityServer: a flow the client is not registered for (its AllowedGrantTypes) is not
  // a "safe" error, so it shows its error page rather than answering the client.
  if (!allowedResponseTypes(client).includes(responseType)) {
    if (state.unauthorizedClient === 'redirect') return fail('unauthorized_client');
    return errorPage('unauthorized_client', 'Invalid grant type for client');
  }
  const scopes = splitScope(p['scope']);
  if (scopes.length === 0 || scopes.some((s) => !SCOPES.includes(s))) return fail('invalid_scope');
  if (hybrid && !scopes.includes('openid')) return fail('invalid_scope');
  if (hybrid && !p['nonce']) return fail('invalid_request');
  const challenge = p['code_challenge'];
  if (challenge !== undefined && p['code_challenge_method'] !== 'S256') return fail('invalid_request');
  if (challenge === undefined && p['code_challenge_method'] !== undefined) return fail('invalid_request');

  const user = signIn(engine, req, p, { title: state.title, action: '/connect/authorize' }, () => fail('access_denied'));
  if ('status' in user) return user;
  const extra: Record<string, string> = { authTime: String(Math.floor(Date.now() / 1000)) };
  if (p['nonce'] !== undefined) extra['nonce'] = p['nonce'];
  const grant: Grant = { clientId: client.clientId, userId: user.id, scope: scopes.join(' '), extra };
  const code = engine.issueCode(grant, redirectUri, challenge, 64);
  const params: Record<string, string> = { code };
  if (hybrid) {
    params['id_token'] = await issueIdToken(state, grant, { ...(p['nonce'] === undefined ? {} : { nonce: p['nonce'] }), code });
    state.issued.push({ channel: 'callback', code, idToken: params['id_token'] });
  } else {
    state.issued.push({ channel: 'callback', code });
  }
  params['scope'] = grant.scope;
  return deliver(redirectUri, mode, withState(params));
}

export async function tokenEndpoint(state: CnblogsSandboxState, req: SandboxRequest): Promise<SandboxReply> {
  const { engine } = state;
  if (req.params['grant_type'] === 'authorization_code') await engine.delayCodeExchange();
  return serve(engine, 'token', async () => {
    const noStore = { 'cache-control': 'no-store, no-cache, max-age=0', pragma: 'no-cache' };
    // IdentityServer answers every token error with HTTP 400 and a bare error code.
    const error = (code: string) => reply.json(400, { error: code }, noStore);
    if (req.method !== 'POST' || !/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) return error('invalid_request');
    const { clientId, clientSecret } = clientCredentials(req);
    const client = engine.authenticateClient(clientId, clientSecret);
    if (!client) return error('invalid_client');
    const p = req.body;
    let issuedTokens;
    let nonce: string | undefined;
    if (p['grant_type'] === 'authorization_code') {
      engine.counters.authorizationCode += 1;
      if (!p['code'] || !p['redirect_uri']) return error('invalid_request');
      const grant = engine.redeemCode(p['code'], client.clientId, p['redirect_uri'], p['code_verifier']);
      if ('error' in grant) return error('invalid_grant');
      nonce = grant.extra['nonce'];
      issuedTokens = engine.issueTokens(grant, undefined, splitScope(grant.scope).includes('offline_access'));
    } else if (p['grant_type'] === 'refresh_token') {
      engine.counters.refresh += 1;
      const result = engine.refresh(p['refresh_token'] ?? '', client.clientId);
      if ('error' in result) return error('invalid_grant');
      issuedTokens = result;
    } else if (p['grant_type'] === 'client_credentials') {
      const scopes = splitScope(p['scope'] ?? 'CnBlogsApi');
      if (scopes.some((s) => s !== 'CnBlogsApi')) return error('invalid_scope');
      issuedTokens = engine.issueTokens({ clientId: client.clientId, userId: '', scope: scopes.join(' '), extra: {} }, undefined, false);
    } else {
      return error('unsupported_grant_type');
    }
    const grant = issuedTokens.grant;
    const body: Record<string, unknown> = {};
    if (grant.userId !== '' && splitScope(grant.scope).includes('openid')) {
      body['id_token'] = await issueIdToken(state, grant, {
        ...(nonce === undefined ? {} : { nonce }),
        accessToken: issuedTokens.accessToken,
      });
    }
    body['access_token'] = issuedTokens.accessToken;
    body['expires_in'] = issuedTokens.expiresIn;
    body['token_type'] = 'Bearer';
    if (issuedTokens.refreshToken !== undefined) body['refresh_token'] = issuedTokens.refreshToken;
    body['scope'] = grant.scope;
    state.issued.push({
      channel: 'token',
      accessToken: issuedTokens.accessToken,
      ...(issuedTokens.refreshToken === undefined ? {} : { refreshToken: issuedTokens.refreshToken }),
      ...(typeof body['id_token'] === 'string' ? { idToken: body['id_token'] } : {}),
    });
    const answer = state.knobs.mutateTokenAnswer ? state.knobs.mutateTokenAnswer(body) : body;
    if (typeof answer === 'string') return { status: 200, headers: { 'content-type': 'application/json;charset=UTF-8', ...noStore }, body: answer };
    return reply.json(200, answer, noStore);
  });
}

export function revocation(state: CnblogsSandboxState, req: SandboxRequest): Promise<SandboxReply> {
  const { engine } = state;
  return serve(engine, 'revoke', () => {
    const { clientId, clientSecret } = clientCredentials(req);
    if (!engine.authenticateClient(clientId, clientSecret)) return reply.json(400, { error: 'invalid_client' });
    const hint = req.body['token_type_hint'];
    if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') return reply.json(400, { error: 'unsupported_token_type' });
    if (!req.body['token']) return reply.json(400, { error: 'invalid_request' });
    engine.revoke(req.body['token']);
    return { status: 200, body: '' };
  });
}
