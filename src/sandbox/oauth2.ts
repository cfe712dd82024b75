import { SandboxEngine, type SandboxClient, type SandboxSettings, type SandboxUser } from './engine.js';
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

export interface OAuth2SandboxOptions extends Partial<SandboxSettings>, SandboxServerOptions {
  users?: SandboxUser[];
  clients?: SandboxClient[];
  /** Display name on the login page. Default "OAuth 2.0 sandbox". */
  title?: string;
}

/**
 * A plain RFC 6749 authorization server: `/authorize` (login page), `/token`
 * (code, refresh; Basic or post client auth; PKCE), `/userinfo`, `/revoke` (RFC 7009)
 * and a Bearer-protected `/api/*` that echoes who called it.
 */
export async function startOAuth2Sandbox(options: OAuth2SandboxOptions = {}): Promise<RunningSandbox> {
  const engine = new SandboxEngine(options);
  const title = options.title ?? 'OAuth 2.0 sandbox';

  const authorize = (req: SandboxRequest): SandboxReply => {
    const p = req.params;
    const client = engine.findClient(p['client_id']);
    const redirectUri = p['redirect_uri'];
    if (!client || !redirectUri) return reply.html(400, '<h1>invalid_request</h1><p>Unknown client_id or missing redirect_uri.</p>');
    const back = new URL(redirectUri);
    const finish = (params: Record<string, string>) => {
      for (const [k, v] of Object.entries(params)) back.searchParams.set(k, v);
      if (p['state'] !== undefined) back.searchParams.set('state', p['state']);
      return reply.redirect(back.toString());
    };
    if (p['response_type'] !== 'code') return finish({ error: 'unsupported_response_type' });
    let user = engine.settings.autoApprove ? engine.users[0] : undefined;
    if (!user) {
      if (req.method !== 'POST' || p['decision'] === undefined) {
        engine.counters.authorize += 1;
        const { username: _u, password: _p, decision: _d, ...hidden } = p;
        return loginPage(title, '/authorize', hidden, engine.users);
      }
      if (p['decision'] === 'deny') return finish({ error: 'access_denied', error_description: 'The user denied the request' });
      user = engine.login(p['username'], p['password']);
      if (!user) {
        const { username: _u, password: _p, decision: _d, ...hidden } = p;
        return loginPage(title, '/authorize', hidden, engine.users, true);
      }
    } else {
      engine.counters.authorize += 1;
    }
    const code = engine.issueCode(
      { clientId: client.clientId, userId: user.id, scope: p['scope'] ?? '', extra: {} },
      redirectUri,
      p['code_challenge_method'] === 'S256' ? p['code_challenge'] : undefined,
    );
    return finish({ code });
  };

  const tokenEndpoint = async (req: SandboxRequest): Promise<SandboxReply> => {
    if (req.params['grant_type'] === 'authorization_code') await engine.delayCodeExchange();
    return withFault(engine.takeFault('token'), () => {
      engine.counters.token += 1;
      const { clientId, clientSecret } = clientCredentials(req);
      const client = engine.authenticateClient(clientId, clientSecret);
      if (!client) return reply.json(401, { error: 'invalid_client' });
      const p = req.body;
      const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };
      let issued;
      if (p['grant_type'] === 'authorization_code') {
        engine.counters.authorizationCode += 1;
        const grant = engine.redeemCode(p['code'] ?? '', client.clientId, p['redirect_uri'], p['code_verifier']);
        if ('error' in grant) return reply.json(400, { error: grant.error, error_description: grant.description }, noStore);
        issued = engine.issueTokens(grant);
      } else if (p['grant_type'] === 'refresh_token') {
        engine.counters.refresh += 1;
        const result = engine.refresh(p['refresh_token'] ?? '', client.clientId);
        if ('error' in result) return reply.json(400, { error: result.error, error_description: result.description }, noStore);
        issued = result;
      } else {
        return reply.json(400, { error: 'unsupported_grant_type' }, noStore);
      }
      return reply.json(
        200,
        {
          access_token: issued.accessToken,
          token_type: 'Bearer',
          expires_in: issued.expiresIn,
          ...(issued.refreshToken === undefined ? {} : { refresh_token: issued.refreshToken }),
          scope: issued.grant.scope,
          user_id: issued.grant.userId,
        },
        noStore,
      );
    });
  };

  const userinfo = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('userinfo'), () => {
      engine.counters.userinfo += 1;
      const grant = engine.verifyAccessToken(bearerToken(req.headers));
      if (!grant) return reply.json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      const user = engine.userById(grant.userId);
      return reply.json(200, { sub: grant.userId, name: user?.name, preferred_username: user?.username });
    });

  const revoke = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('revoke'), () => {
      engine.counters.revoke += 1;
      const { clientId, clientSecret } = clientCredentials(req);
      if (!engine.authenticateClient(clientId, clientSecret)) return reply.json(401, { error: 'invalid_client' });
      if (req.body['token']) engine.revoke(req.body['token']);
      return { status: 200, body: '' };
    });

  const api = (req: SandboxRequest): Promise<SandboxReply> =>
    withFault(engine.takeFault('api'), () => {
      engine.counters.api += 1;
      const grant = engine.verifyAccessToken(bearerToken(req.headers));
      if (!grant) return reply.json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' });
      return reply.json(200, { ok: true, method: req.method, path: req.url.pathname, query: Object.fromEntries(req.url.searchParams), user: grant.userId, scope: grant.scope });
    });

  return listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if (path === '/authorize' && (req.method === 'GET' || req.method === 'POST')) return authorize(req);
      if (path === '/token' && req.method === 'POST') return tokenEndpoint(req);
      if (path === '/userinfo') return userinfo(req);
      if (path === '/revoke' && req.method === 'POST') return revoke(req);
      if (path.startsWith('/api/')) return api(req);
      return undefined;
    },
    options,
  );
}
