/** The Spring Security OAuth2 endpoints: `/oauth/authorize` and `/oauth/token`. */
import type { Grant, IssuedTokens } from '../engine.js';
import { redirectWithParams, reply, serve, signIn, type SandboxReply, type SandboxRequest } from '../server.js';
import { isForm, NO_STORE, record, servletParams, shown, type DiSandboxState } from './wire.js';

const grantKey = (g: Grant) => `${g.clientId}\u0000${g.userId}\u0000${g.scope}`;

export function authorize(state: DiSandboxState, req: SandboxRequest): SandboxReply {
  const { engine } = state;
  const p = servletParams(req);
  const client = engine.findClient(p['client_id']);
  const redirectUri = p['redirect_uri'];
  if (!client) return reply.html(401, '<h1>OAuth Error</h1><p>error="invalid_client", error_description="Bad client credentials"</p>');
  if (!redirectUri) {
    return reply.html(400, '<h1>OAuth Error</h1><p>error="invalid_request", error_description="A redirect_uri must be supplied."</p>');
  }
  const responseType = p['response_type'];
  const implicit = responseType === 'token';
  const finish = (params: Record<string, string>) =>
    redirectWithParams(redirectUri, { ...params, ...(p['state'] === undefined ? {} : { state: p['state'] }) }, implicit);
  if (responseType !== 'code' && !implicit) {
    return finish({ error: 'unsupported_response_type', error_description: `Unsupported response types: [${responseType ?? ''}]` });
  }
  const scope = (p['scope'] ?? 'read_cn').trim();
  const unknown = scope.split(/\s+/).filter((s) => !state.scopes.has(s));
  if (scope.length === 0 || unknown.length > 0) {
    return finish({ error: 'invalid_scope', error_description: `Invalid scope: ${scope}` });
  }
  const user = signIn(engine, req, p, { title: state.title, action: '/oauth/authorize' }, () =>
    finish({ error: 'access_denied', error_description: 'User denied access' }),
  );
  if ('status' in user) return user;
  const grant: Grant = { clientId: client.clientId, userId: user.id, scope, extra: {} };
  if (implicit) {
    // Implicit tokens come without a refresh token (the platform's live 7 days; here accessTokenTtlSeconds).
    const issued = engine.issueTokens(grant, undefined, false);
    return finish({ access_token: issued.accessToken, token_type: 'bearer', expires_in: String(issued.expiresIn), scope });
  }
  return finish({ code: engine.issueCode(grant, redirectUri, undefined, 6) });
}

function tokenAnswer(state: DiSandboxState, issued: IssuedTokens, expiresIn: number): SandboxReply {
  const body: Record<string, unknown> = {
    access_token: issued.accessToken,
    token_type: 'bearer',
    ...(issued.refreshToken === undefined ? {} : { refresh_token: issued.refreshToken }),
    expires_in: state.wire.expiresInType === 'string' ? String(expiresIn) : expiresIn,
    scope: issued.grant.scope,
  };
  return reply.json(200, state.wire.tokenResponseShape === 'array' ? [body] : body, { ...NO_STORE });
}

function remember(state: DiSandboxState, issued: IssuedTokens): SandboxReply {
  state.current.set(grantKey(issued.grant), { issued, expiresAt: Date.now() + issued.expiresIn * 1000 });
  return tokenAnswer(state, issued, issued.expiresIn);
}

function oauthError(status: number, error: string, description: string): SandboxReply {
  const headers: Record<string, string> = { ...NO_STORE };
  if (status === 401) headers['www-authenticate'] = `Form realm="oauth2/client", error="${error}", error_description="${description}"`;
  return reply.json(status, { error, error_description: description }, headers);
}

export async function tokenEndpoint(state: DiSandboxState, req: SandboxRequest): Promise<SandboxReply> {
  const { engine, counters, wire } = state;
  if (req.params['grant_type'] === 'authorization_code') await engine.delayCodeExchange();
  return serve(engine, 'token', () => {
    state.recorded.token = record(req);
    if (req.method !== 'POST') return oauthError(405, 'method_not_allowed', `Request method '${req.method}' not supported`);
    const p = servletParams(req);
    if (req.url.searchParams.has('grant_type')) counters.tokenParametersInQuery += 1;
    else if (isForm(req) && req.body['grant_type'] !== undefined) counters.tokenParametersInBody += 1;

    const basic = typeof req.headers['authorization'] === 'string' && /^Basic\s/i.test(req.headers['authorization']);
    let clientId = p['client_id'];
    let clientSecret = p['client_secret'];
    if (basic) {
      const decoded = Buffer.from(String(req.headers['authorization']).replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      clientId = decodeURIComponent(decoded.slice(0, colon));
      clientSecret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (clientId === undefined) return oauthError(401, 'unauthorized', 'Full authentication is required to access this resource');
    const client = engine.authenticateClient(clientId, clientSecret);
    if (!client) return oauthError(401, 'invalid_client', 'Bad client credentials');

    const grantType = p['grant_type'];
    if (grantType === undefined) return oauthError(400, 'invalid_request', 'Missing grant type');
    if (grantType === 'authorization_code') {
      engine.counters.authorizationCode += 1;
      const code = p['code'];
      if (code === undefined || code.length === 0) return oauthError(400, 'invalid_request', 'An authorization code must be supplied.');
      // Spring compares the redirect_uri of both requests; a missing one is a mismatch too.
      const grant = engine.redeemCode(code, client.clientId, p['redirect_uri'] ?? '');
      if ('error' in grant) {
        if (/another client/.test(grant.description)) return oauthError(401, 'invalid_client', 'Client ID mismatch');
        if (/redirect_uri/.test(grant.description)) return oauthError(400, 'invalid_grant', 'Redirect URI mismatch.');
        return oauthError(400, 'invalid_grant', `Invalid authorization code: ${code}`);
      }
      const live = wire.reuseUnexpiredTokens ? state.current.get(grantKey(grant)) : undefined;
      if (live && engine.verifyAccessToken(live.issued.accessToken)) {
        return tokenAnswer(state, live.issued, Math.max(1, Math.floor((live.expiresAt - Date.now()) / 1000)));
      }
      return remember(state, engine.issueTokens(grant));
    }
    if (grantType === 'refresh_token') {
      engine.counters.refresh += 1;
      const refreshToken = p['refresh_token'] ?? '';
      const result = engine.refresh(refreshToken, client.clientId);
      if ('error' in result) {
        if (/another client/.test(result.description)) return oauthError(400, 'invalid_grant', `Wrong client for this refresh token: ${shown(wire, refreshToken)}`);
        if (/expired/.test(result.description)) return oauthError(401, 'invalid_token', `Invalid refresh token (expired): ${shown(wire, refreshToken)}`);
        return oauthError(400, 'invalid_grant', `Invalid refresh token: ${shown(wire, refreshToken)}`);
      }
      return remember(state, result);
    }
    return oauthError(400, 'unsupported_grant_type', `Unsupported grant type: ${grantType}`);
  });
}
