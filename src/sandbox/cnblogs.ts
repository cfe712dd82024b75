import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type KeyLike } from 'jose';
import { SandboxEngine, type Fault, type Grant, type SandboxClient, type SandboxSettings, type SandboxUser } from './engine.js';
import {
  bearerToken,
  clientCredentials,
  listen,
  loginPage,
  reply,
  withFault,
  type RunningSandbox,
  type SandboxReply,
  type SandboxRequest,
  type SandboxServerOptions,
} from './server.js';

/** How the sandbox spoils the id_tokens it issues, to test that a client refuses them. */
export type IdTokenTamper = 'signature' | 'nonce' | 'aud' | 'iss' | 'expired' | 'c_hash' | 'iat_future';

/** A cnblogs user: a GUID `id` (the `sub`) plus the blog fields the API answers with. */
export interface CnblogsSandboxUser extends SandboxUser {
  blogApp: string;
  blogId: number;
  spaceUserId: number;
  avatar: string;
}

export interface CnblogsSandboxOptions extends Partial<SandboxSettings>, SandboxServerOptions {
  users?: CnblogsSandboxUser[];
  clients?: SandboxClient[];
  /** Spoils every id_token issued (front channel and token endpoint). Default null. */
  idTokenTamper?: IdTokenTamper | null;
  /** id_token lifetime in seconds. Default 300, as the provider's. */
  idTokenTtlSeconds?: number;
  /** See {@link CnblogsSandbox.mutateTokenAnswer}. Default null. */
  mutateTokenAnswer?: ((body: Record<string, unknown>) => unknown) | null;
  /** Display name on the login page. Default "博客园 (cnblogs) sandbox". */
  title?: string;
}

export type CnblogsSandboxFaultTarget = 'discovery' | 'jwks';

export interface CnblogsSandboxCounters {
  discovery: number;
  jwks: number;
}

/** One token response or front-channel answer the sandbox gave, for leak checks in tests. */
export interface CnblogsIssued {
  channel: 'callback' | 'token';
  code?: string;
  idToken?: string;
  accessToken?: string;
  refreshToken?: string;
}

/** A running cnblogs sandbox: an IdentityServer-like OpenID Connect provider plus the OpenAPI. */
export interface CnblogsSandbox extends RunningSandbox {
  /** Its own base URL, as `iss` of its id_tokens and in its discovery document. */
  readonly issuer: string;
  /** The `kid` id_tokens are signed with now. */
  readonly signingKeyId: string;
  /** Spoils every id_token issued from now on; `null` issues good ones. */
  idTokenTamper: IdTokenTamper | null;
  idTokenTtlSeconds: number;
  /** Test aid: rewrites each successful token answer; returns what to send instead (a string as is, anything else as JSON). */
  mutateTokenAnswer: ((body: Record<string, unknown>) => unknown) | null;
  /** Downloads of the discovery document and of the JWKS (the engine counts the rest). */
  readonly oidcCounters: CnblogsSandboxCounters;
  /** Everything issued so far, newest last. */
  readonly issued: readonly CnblogsIssued[];
  /**
   * Signs with a new key from now on; the JWKS publishes it next to the previous one
   * (a rollover), so a client holding the old key set must download it again. Returns the new kid.
   */
  rotateSigningKey(): Promise<string>;
  /** Queues a fault for the discovery document or the JWKS (see `engine.injectFault` for the rest). */
  injectOidcFault(target: CnblogsSandboxFaultTarget, fault: Fault): void;
}

interface SigningKey {
  kid: string;
  privateKey: KeyLike;
  publicJwk: JWK;
}

const SCOPES = ['openid', 'profile', 'CnBlogsApi', 'offline_access'];
const RESPONSE_TYPES = ['code', 'code id_token'];
const RESPONSE_MODES = ['query', 'fragment', 'form_post'];

const DEFAULT_USERS: CnblogsSandboxUser[] = [
  {
    username: 'alice',
    password: 'wonderland',
    id: '5f0c7c1e-8d3a-4b1f-9c2e-3a6d1b7e9f42',
    name: 'Alice 博客',
    blogApp: 'alice-sandbox',
    blogId: 612345,
    spaceUserId: 1654321,
    avatar: 'https://pic.cnblogs.com/avatar/1654321/20240101000000.png',
  },
];

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function halfHash(value: string): string {
  const digest = createHash('sha256').update(value, 'ascii').digest();
  return digest.subarray(0, 16).toString('base64url');
}

async function newSigningKey(): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
  const jwk = await exportJWK(publicKey);
  // IdentityServer's kids are upper-case hex certificate thumbprints; this one is derived from the key.
  const kid = Buffer.from(await calculateJwkThumbprint(jwk), 'base64url').toString('hex').slice(0, 40).toUpperCase();
  return { kid, privateKey, publicJwk: { ...jwk, kid, use: 'sig', alg: 'RS256' } };
}

/** The OpenID Connect form_post answer (an auto-submitting page), as IdentityServer renders it. */
function formPostPage(action: string, fields: Record<string, string>): SandboxReply {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}" />`)
    .join('');
  return {
    status: 200,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store, no-cache, max-age=0', pragma: 'no-cache' },
    body:
      `<html><head><meta name="viewport" content="width=device-width, initial-scale=1.0" /><title>Submit this form</title></head><body>` +
      `<form method="post" action="${escape(action)}">${inputs}<noscript><button>Click to continue</button></noscript></form>` +
      `<script>window.addEventListener('load', function(){document.forms[0].submit();});</script></body></html>`,
  };
}

function splitScope(scope: string | undefined): string[] {
  return (scope ?? '').split(/\s+/).filter((s) => s.length > 0);
}

/**
 * A sandbox of 博客园's IdentityServer and OpenAPI, on one port:
 * `/.well-known/openid-configuration` (+ `/jwks`), `/connect/authorize` (login page;
 * `code` with PKCE S256, hybrid `code id_token` in the fragment or as a form_post page),
 * `/connect/token` (code: 10 min, single use; refresh only with `offline_access`;
 * client_credentials), `/connect/userinfo`, `/connect/revocation` (RFC 7009), and the
 * Bearer-protected API `/api/users` (PascalCase), `/api/users/v2` (camelCase) and
 * `/api/blogs/{blogApp}/posts`.
 */
export async function startCnblogsSandbox(options: CnblogsSandboxOptions = {}): Promise<CnblogsSandbox> {
  const engine = new SandboxEngine({
    ...options,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 86_400,
    users: options.users ?? DEFAULT_USERS.map((u) => ({ ...u })),
  });
  const title = options.title ?? '博客园 (cnblogs) sandbox';
  const knobs = {
    idTokenTamper: options.idTokenTamper ?? null,
    idTokenTtlSeconds: options.idTokenTtlSeconds ?? 300,
    mutateTokenAnswer: options.mutateTokenAnswer ?? null,
  };
  const oidcCounters: CnblogsSandboxCounters = { discovery: 0, jwks: 0 };
  const issued: CnblogsIssued[] = [];
  const oidcFaults = new Map<CnblogsSandboxFaultTarget, Fault[]>();
  let keys: SigningKey[] = [await newSigningKey()];
  let issuer = '';

  const takeOidcFault = (target: CnblogsSandboxFaultTarget): Fault | undefined => {
    const list = oidcFaults.get(target);
    const fault = list?.[0];
    if (!list || !fault) return undefined;
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) list.shift();
    return fault;
  };

  const cnblogsUser = (id: string): CnblogsSandboxUser | undefined => engine.userById(id) as CnblogsSandboxUser | undefined;

  async function idToken(grant: Grant, extra: { nonce?: string; code?: string; accessToken?: string }): Promise<string> {
    const tamper = knobs.idTokenTamper;
    const now = Math.floor(Date.now() / 1000);
    const iat = tamper === 'expired' ? now - 3 * knobs.idTokenTtlSeconds - 600 : now;
    const claims: JWTPayload = {
      nbf: iat,
      exp: iat + knobs.idTokenTtlSeconds + (tamper === 'iat_future' ? 3600 : 0),
      iss: tamper === 'iss' ? `${issuer}/other-tenant` : issuer,
      aud: tamper === 'aud' ? 'some-other-client' : grant.clientId,
      // iat_future: valid nbf and exp, but issued an hour from now.
      iat: tamper === 'iat_future' ? iat + 3600 : iat,
      sub: grant.userId,
      auth_time: Number(grant.extra['authTime'] ?? iat),
      // As in the id_token the provider's document shows.
      idp: 'cnblogs_oauth',
      amr: ['authorization_code'],
    };
    if (extra.nonce !== undefined || tamper === 'nonce') claims['nonce'] = tamper === 'nonce' ? `${extra.nonce ?? ''}-not-yours` : extra.nonce;
    if (extra.code !== undefined) claims['c_hash'] = halfHash(extra.code);
    if (tamper === 'c_hash') claims['c_hash'] = halfHash(`${extra.code ?? ''}-another-code`);
    if (extra.accessToken !== undefined) claims['at_hash'] = halfHash(extra.accessToken);
    const key = keys[keys.length - 1]!;
    const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'JWT' }).sign(key.privateKey);
    if (tamper !== 'signature') return jwt;
    const [header, payload, signature] = jwt.split('.') as [string, string, string];
    const bytes = Buffer.from(signature, 'base64url');
    bytes[0] = bytes[0]! ^ 0xff;
    return `${header}.${payload}.${bytes.toString('base64url')}`;
  }

  const discovery = (): Promise<SandboxReply> => {
    oidcCounters.discovery += 1;
    return withFault(takeOidcFault('discovery'), () =>
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
  };

  const jwks = (): Promise<SandboxReply> => {
    oidcCounters.jwks += 1;
    return withFault(takeOidcFault('jwks'), () => reply.json(200, { keys: keys.map((k) => k.publicJwk) }));
  };

  /** Delivers an authorization answer the way response_mode says. */
  const deliver = (redirectUri: string, mode: string, params: Record<string, string>): SandboxReply => {
    if (mode === 'form_post') return formPostPage(redirectUri, params);
    const back = new URL(redirectUri);
    if (mode === 'fragment') {
      back.hash = new URLSearchParams(params).toString();
    } else {
      for (const [k, v] of Object.entries(params)) back.searchParams.set(k, v);
    }
    return reply.redirect(back.toString());
  };

  const authorize = async (req: SandboxRequest): Promise<SandboxReply> => {
    const p = req.params;
    const client = engine.findClient(p['client_id']);
    const redirectUri = p['redirect_uri'];
    if (!client || !redirectUri || !/^https?:\/\//.test(redirectUri)) {
      // IdentityServer shows its own error page when it cannot trust the redirect URI.
      return reply.html(400, '<h1>Sorry, there was an error : unauthorized_client</h1><p>Unknown client or invalid redirect_uri.</p>');
    }
    const responseType = splitScope(p['response_type']).sort().join(' ');
    const hybrid = responseType === 'code id_token';
    const mode = p['response_mode'] ?? (hybrid ? 'fragment' : 'query');
    if (!RESPONSE_MODES.includes(mode)) return reply.html(400, '<h1>Sorry, there was an error : invalid_request</h1><p>Invalid response_mode.</p>');
    const withState = (params: Record<string, string>) => (p['state'] === undefined ? params : { ...params, state: p['state'] });
    const fail = (error: string, deliverMode = mode) => deliver(redirectUri, deliverMode, withState({ error }));
    if (!RESPONSE_TYPES.includes(responseType)) return fail('unsupported_response_type', 'query');
    // OpenID Connect: a hybrid answer (it holds an id_token) never travels in the query string.
    if (hybrid && mode === 'query') return fail('invalid_request', 'fragment');
    const scopes = splitScope(p['scope']);
    if (scopes.length === 0 || scopes.some((s) => !SCOPES.includes(s))) return fail('invalid_scope');
    if (hybrid && !scopes.includes('openid')) return fail('invalid_scope');
    if (hybrid && !p['nonce']) return fail('invalid_request');
    const challenge = p['code_challenge'];
    if (challenge !== undefined && p['code_challenge_method'] !== 'S256') return fail('invalid_request');
    if (challenge === undefined && p['code_challenge_method'] !== undefined) return fail('invalid_request');

    let user = engine.settings.autoApprove ? engine.users[0] : undefined;
    if (!user) {
      const { username: _u, password: _p, decision: _d, ...hidden } = p;
      if (req.method !== 'POST' || p['decision'] === undefined) {
        engine.counters.authorize += 1;
        return loginPage(title, '/connect/authorize', hidden, engine.users);
      }
      if (p['decision'] === 'deny') return fail('access_denied');
      user = engine.login(p['username'], p['password']);
      if (!user) return loginPage(title, '/connect/authorize', hidden, engine.users, true);
    } else {
      engine.counters.authorize += 1;
    }
    const extra: Record<string, string> = { authTime: String(Math.floor(Date.now() / 1000)) };
    if (p['nonce'] !== undefined) extra['nonce'] = p['nonce'];
    const grant: Grant = { clientId: client.clientId, userId: user.id, scope: scopes.join(' '), extra };
    const code = engine.issueCode(grant, redirectUri, challenge, 64);
    const params: Record<string, string> = { code };
    if (hybrid) {
      params['id_token'] = await idToken(grant, { ...(p['nonce'] === undefined ? {} : { nonce: p['nonce'] }), code });
      issued.push({ channel: 'callback', code, idToken: params['id_token'] });
    } else {
      issued.push({ channel: 'callback', code });
    }
    params['scope'] = grant.scope;
    return deliver(redirectUri, mode, withState(params));
  };

  const tokenEndpoint = async (req: SandboxRequest): Promise<SandboxReply> => {
    if (req.params['grant_type'] === 'authorization_code') await engine.delayCodeExchange();
    return withFault(engine.takeFault('token'), async () => {
      engine.counters.token += 1;
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
        body['id_token'] = await idToken(grant, {
          ...(nonce === undefined ? {} : { nonce }),
          accessToken: issuedTokens.accessToken,
        });
      }
      body['access_token'] = issuedTokens.accessToken;
      body['expires_in'] = issuedTokens.expiresIn;
      body['token_type'] = 'Bearer';
      if (issuedTokens.refreshToken !== undefined) body['refresh_token'] = issuedTokens.refreshToken;
      body['scope'] = grant.scope;
      issued.push({
        channel: 'token',
        accessToken: issuedTokens.accessToken,
        ...(issuedTokens.refreshToken === undefined ? {} : { refreshToken: issuedTokens.refreshToken }),
        ...(typeof body['id_token'] === 'string' ? { idToken: body['id_token'] } : {}),
      });
      const answer = knobs.mutateTokenAnswer ? knobs.mutateTokenAnswer(body) : body;
      if (typeof answer === 'string') return { status: 200, headers: { 'content-type': 'application/json;charset=UTF-8', ...noStore }, body: answer };
      return reply.json(200, answer, noStore);
    });
  };

  const invalidToken = (): SandboxReply => ({ status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' }, body: '' });

  const userinfo = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('userinfo'), () => {
      engine.counters.userinfo += 1;
      const grant = engine.verifyAccessToken(bearerToken(req.headers));
      if (!grant) return invalidToken();
      const scopes = splitScope(grant.scope);
      if (grant.userId === '' || !scopes.includes('openid')) {
        return { status: 403, headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' }, body: '' };
      }
      const user = cnblogsUser(grant.userId);
      if (!user || !scopes.includes('profile')) return reply.json(200, { sub: grant.userId });
      return reply.json(200, {
        sub: user.id,
        name: user.name,
        picture: user.avatar,
        website: `https://www.cnblogs.com/${user.blogApp}/`,
        blog_id: String(user.blogId),
        account_id: String(user.spaceUserId),
      });
    });

  const revocation = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('revoke'), () => {
      engine.counters.revoke += 1;
      const { clientId, clientSecret } = clientCredentials(req);
      if (!engine.authenticateClient(clientId, clientSecret)) return reply.json(400, { error: 'invalid_client' });
      const hint = req.body['token_type_hint'];
      if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') return reply.json(400, { error: 'unsupported_token_type' });
      if (!req.body['token']) return reply.json(400, { error: 'invalid_request' });
      engine.revoke(req.body['token']);
      return { status: 200, body: '' };
    });

  const api = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('api'), () => {
      engine.counters.api += 1;
      const token = bearerToken(req.headers);
      if (token === undefined) return { status: 401, headers: { 'www-authenticate': 'Bearer' }, body: '' };
      const grant = engine.verifyAccessToken(token);
      if (!grant || !splitScope(grant.scope).includes('CnBlogsApi')) return invalidToken();
      const path = req.url.pathname;
      // User APIs need a user's token: an app-only (client_credentials) token gets 403.
      const user = grant.userId === '' ? undefined : cnblogsUser(grant.userId);
      if (path === '/api/users' || path === '/api/users/v2') {
        if (!user) return { status: 403, body: '' };
        if (path === '/api/users') {
          return reply.json(200, {
            UserId: user.id,
            SpaceUserID: user.spaceUserId,
            BlogId: user.blogId,
            DisplayName: user.name,
            Face: user.avatar.replace('/avatar/', '/face/'),
            Avatar: user.avatar,
            Seniority: '3年',
            BlogApp: user.blogApp,
            FollowingCount: 4,
            FollowerCount: 2,
            IsVip: false,
            Joined: '2021-03-01T10:00:00',
          });
        }
        return reply.json(200, {
          userId: user.id,
          spaceUserId: user.spaceUserId,
          blogId: user.blogId,
          displayName: user.name,
          face: user.avatar.replace('/avatar/', '/face/'),
          avatar: user.avatar,
          seniority: '3年',
          blogApp: user.blogApp,
          followingCount: 4,
          followerCount: 2,
          isVip: false,
          joined: '2021-03-01T10:00:00',
        });
      }
      const posts = /^\/api\/blogs\/([^/]+)\/posts$/.exec(path);
      if (posts) {
        const blogApp = decodeURIComponent(posts[1]!);
        const owner = (engine.users as CnblogsSandboxUser[]).find((u) => u.blogApp === blogApp);
        if (!owner) return reply.json(404, { Message: 'Blog not found' });
        const pageIndex = Math.max(1, Number(req.url.searchParams.get('pageIndex') ?? '1') || 1);
        return reply.json(
          200,
          pageIndex > 1
            ? []
            : [
                {
                  Id: 18000001,
                  Title: 'Hello from the sandbox',
                  Url: `https://www.cnblogs.com/${owner.blogApp}/p/18000001`,
                  Description: 'A sandbox post.',
                  Author: owner.name,
                  BlogApp: owner.blogApp,
                  Avatar: owner.avatar,
                  PostDate: '2024-01-01T10:00:00',
                  ViewCount: 10,
                  CommentCount: 1,
                  DiggCount: 2,
                },
              ],
        );
      }
      return reply.json(404, { Message: 'No HTTP resource was found that matches the request URI.' });
    });

  const running = await listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if (path === '/.well-known/openid-configuration' && req.method === 'GET') return discovery();
      if (path === '/.well-known/openid-configuration/jwks' && req.method === 'GET') return jwks();
      if (path === '/connect/authorize' && (req.method === 'GET' || req.method === 'POST')) return authorize(req);
      if (path === '/connect/token') return tokenEndpoint(req);
      if (path === '/connect/userinfo' && (req.method === 'GET' || req.method === 'POST')) return userinfo(req);
      if (path === '/connect/revocation' && req.method === 'POST') return revocation(req);
      if (path.startsWith('/api/')) return api(req);
      return undefined;
    },
    options,
  );
  issuer = running.url;

  return {
    url: running.url,
    port: running.port,
    engine,
    close: () => running.close(),
    issuer,
    get signingKeyId() {
      return keys[keys.length - 1]!.kid;
    },
    get idTokenTamper() {
      return knobs.idTokenTamper;
    },
    set idTokenTamper(value: IdTokenTamper | null) {
      knobs.idTokenTamper = value;
    },
    get idTokenTtlSeconds() {
      return knobs.idTokenTtlSeconds;
    },
    set idTokenTtlSeconds(value: number) {
      knobs.idTokenTtlSeconds = value;
    },
    get mutateTokenAnswer() {
      return knobs.mutateTokenAnswer;
    },
    set mutateTokenAnswer(value: ((body: Record<string, unknown>) => unknown) | null) {
      knobs.mutateTokenAnswer = value;
    },
    oidcCounters,
    issued,
    async rotateSigningKey() {
      const next = await newSigningKey();
      keys = [...keys.slice(-1), next];
      return next.kid;
    },
    injectOidcFault(target: CnblogsSandboxFaultTarget, fault: Fault) {
      const list = oidcFaults.get(target) ?? [];
      list.push({ ...fault, times: fault.times ?? 1 });
      oidcFaults.set(target, list);
    },
  };
}
