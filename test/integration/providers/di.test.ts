import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import type { TokenSet } from '../../../src/lib/token-set';
import type { ApiRequest } from '../../../src/provider/types';
import { DiStrategy } from '../../../src/providers/di';
import { startDiSandbox, type DiSandbox, type DiSandboxOptions } from '../../../src/sandbox/di/index';
import { createTestApp, login, startLogin, visitProvider, type TestApp } from '../../helpers/app';

const CLIENT = { clientId: 'di-sandbox-client', clientSecret: 'di-sandbox-secret-7f3a9c' };

interface DiAppOptions {
  sandbox?: DiSandboxOptions;
  clientSecret?: string;
}

function diApp(options: DiAppOptions = {}): Promise<TestApp> {
  return createTestApp({
    startSandbox: () => startDiSandbox({ autoApprove: true, clients: [CLIENT], ...options.sandbox }),
    strategy: (sandbox) =>
      new DiStrategy({
        clientID: CLIENT.clientId,
        clientSecret: options.clientSecret ?? CLIENT.clientSecret,
        callbackURL: '/auth/di/callback',
        baseURL: sandbox.url,
      }),
  });
}

const sandboxOf = (t: TestApp) => t.sandbox as DiSandbox;

/** The session owner of the only stored token set, and that set. */
async function stored(t: TestApp): Promise<{ owner: string; tokenSet: TokenSet; generation: number }> {
  const keys = await t.redis!.keys(`${t.prefix}tok:*`);
  expect(keys).toHaveLength(1);
  const owner = /\{(.+)\}/.exec(keys[0]!)![1]!;
  const entry = await t.store.get(owner, 'di');
  expect(entry).not.toBeNull();
  return { owner, ...entry! };
}

/** Calls the sandbox API the way the proxy will: the di binding attaches the credentials. */
async function callApi(t: TestApp, token: TokenSet, method: 'GET' | 'POST', pathAndQuery: string, form?: string) {
  const strategy = t.strategy as DiStrategy;
  const api = strategy.provider.api!;
  const headers = new Headers({ accept: 'application/json' });
  if (form !== undefined) headers.set('content-type', 'application/x-www-form-urlencoded');
  const request: ApiRequest = {
    method,
    url: new URL(`${api.baseURL(strategy.options)}${pathAndQuery}`),
    headers,
    ...(form === undefined ? {} : { body: Buffer.from(form, 'utf8') }),
  };
  const signed = await api.attach(request, token, strategy.options);
  const response = await fetch(signed.url, { method, headers: signed.headers, ...(signed.body === undefined ? {} : { body: new Uint8Array(signed.body) }) });
  const text = await response.text();
  const body = JSON.parse(text) as Record<string, unknown>;
  return { status: response.status, body, text, rejected: api.isTokenRejected({ status: response.status, headers: response.headers, body }) };
}

const HUAWEI_H04L = encodeURIComponent('申请人=(华为) AND 分类号=(H04L)');

describe.each([
  ['object', 'number'],
  ['array', 'string'],
] as const)('di login against the sandbox (token answer: %s, expires_in: %s)', (shape, expiresInType) => {
  let t: TestApp;
  beforeEach(async () => {
    t = await diApp({ sandbox: { tokenResponseShape: shape, expiresInType, accessTokenTtlSeconds: 604800 } });
  });
  afterEach(async () => {
    await t.close();
  });

  it('logs in, stores the token set, serves the guarded route and calls the API with the right credentials', async () => {
    const sandbox = sandboxOf(t);
    const agent = t.agent();
    expect(await login(agent, '/auth/di')).toBe('/');

    // The code went to the token endpoint in the query string, with an empty body.
    const tokenRequest = sandbox.lastTokenRequest!;
    expect(tokenRequest.method).toBe('POST');
    expect(Object.keys(tokenRequest.query).sort()).toEqual(['client_id', 'client_secret', 'code', 'grant_type', 'redirect_uri']);
    expect(tokenRequest.query['code']).toHaveLength(6);
    expect(tokenRequest.query['redirect_uri']).toBe(`${t.url}/auth/di/callback`);
    expect(tokenRequest.body).toEqual({});
    expect(sandbox.diCounters.tokenParametersInQuery).toBe(1);
    expect(sandbox.engine.counters.authorizationCode).toBe(1);

    const me = await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(me.body).toEqual({ provider: 'di', scope: 'read_cn', user: expect.objectContaining({ provider: 'di', id: '' }) });

    const { tokenSet } = await stored(t);
    expect(tokenSet.tokenType).toBe('bearer');
    expect(tokenSet.scope).toBe('read_cn');
    expect(tokenSet.expiresAt! - tokenSet.obtainedAt).toBe(604800 * 1000);
    expect(tokenSet.refreshToken).toEqual(expect.any(String));

    // GET: credentials in the query string.
    const search = await callApi(t, tokenSet, 'GET', `/patent/search/expression?express=${HUAWEI_H04L}&page=1&page_row=10`);
    expect(search.status).toBe(200);
    expect(search.body).toMatchObject({ errorCode: '000000', total: 2, page: 1 });
    expect((search.body['context'] as { records: Array<{ applicant: string }> }).records.map((r) => r.applicant)).toEqual([
      '华为技术有限公司',
      '华为技术有限公司',
    ]);
    expect(search.rejected).toBe(false);
    expect(sandbox.lastApiRequest).toEqual({
      method: 'GET',
      path: '/api/patent/search/expression',
      query: { express: '申请人=(华为) AND 分类号=(H04L)', page: '1', page_row: '10', client_id: CLIENT.clientId, access_token: tokenSet.accessToken, scope: 'read_cn' },
      body: {},
      contentType: undefined,
    });
    expect(sandbox.diCounters.apiCredentialsInQuery).toBe(1);

    // POST: credentials appended to the form body.
    const trademark = await callApi(t, tokenSet, 'POST', '/trademark/search/expression', `express=${encodeURIComponent('比亚迪')}&page=1`);
    expect(trademark.status).toBe(200);
    expect(trademark.body).toMatchObject({ errorCode: '000000', total: 1 });
    expect(sandbox.lastApiRequest!.query).toEqual({});
    expect(sandbox.lastApiRequest!.body).toEqual({ express: '比亚迪', page: '1', client_id: CLIENT.clientId, access_token: tokenSet.accessToken, scope: 'read_cn' });
    expect(sandbox.diCounters.apiCredentialsInBody).toBe(1);
    expect(sandbox.diCounters.apiCredentialsInHeader).toBe(0);

    const detail = await callApi(t, tokenSet, 'GET', '/patent/detail/catalog?pno=CN111130012A&lang=cn');
    expect(detail.body).toMatchObject({ errorCode: '000000', context: { records: [{ pid: 'PIDCNA0SANDBOX0001' }] } });
  });

  it('passes a business error (HTTP 200 errorCode envelope) through as the answer, not as a rejected token', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const { tokenSet } = await stored(t);
    const missing = await callApi(t, tokenSet, 'GET', '/patent/search/expression?page=1');
    expect(missing.status).toBe(200);
    expect(missing.body).toMatchObject({ errorCode: '100001', message: expect.stringContaining('express') });
    expect(missing.rejected).toBe(false);
    const badRows = await callApi(t, tokenSet, 'GET', `/patent/search/expression?express=x&page_row=7`);
    expect(badRows.body).toMatchObject({ errorCode: '100002' });
    expect(sandboxOf(t).diCounters.apiBusinessErrors).toBe(2);
  });
});

describe('di API refusals', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await diApp();
  });
  afterEach(async () => {
    await t.close();
  });

  it('answers an unknown token with 401 invalid_token (rejected), without echoing the whole token', async () => {
    await login(t.agent(), '/auth/di');
    const { tokenSet } = await stored(t);
    const forged = { ...tokenSet, accessToken: 'c0ffee00-1111-4222-8333-444455556666' };
    const res = await callApi(t, forged, 'GET', '/patent/search/expression?express=x');
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_token', error_description: expect.stringMatching(/^Invalid access token: /) });
    expect(res.text).not.toContain(forged.accessToken);
    expect(res.rejected).toBe(true);
  });

  it('checks client_id and scope against the grant', async () => {
    await login(t.agent(), '/auth/di');
    const { tokenSet } = await stored(t);
    const sandbox = sandboxOf(t);
    const base = `${sandbox.url}/api/patent/search/expression?express=x&access_token=${encodeURIComponent(tokenSet.accessToken)}`;

    const noClient = await fetch(`${base}&scope=read_cn`);
    expect(noClient.status).toBe(403);
    expect(await noClient.json()).toMatchObject({ error: 'access_denied' });

    const otherClient = await fetch(`${base}&scope=read_cn&client_id=someone-else`);
    expect(otherClient.status).toBe(403);
    await otherClient.arrayBuffer();

    const noScope = await fetch(`${base}&client_id=${CLIENT.clientId}`);
    expect(noScope.status).toBe(403);
    expect(await noScope.json()).toMatchObject({ error: 'insufficient_scope', scope: 'read_cn' });

    const otherScope = await callApi(t, { ...tokenSet, scope: 'read_ep' }, 'GET', '/patent/search/expression?express=x');
    expect(otherScope.status).toBe(403);
    expect(otherScope.rejected).toBe(false);

    const noToken = await fetch(`${sandbox.url}/api/patent/search/expression?express=x&client_id=${CLIENT.clientId}&scope=read_cn`);
    expect(noToken.status).toBe(401);
    expect(await noToken.json()).toMatchObject({ error: 'unauthorized' });
    expect(sandbox.diCounters.apiRefused).toBe(5);
  });
});

describe('di refresh with rotation', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await diApp();
  });
  afterEach(async () => {
    await t.close();
  });

  it('refreshes behind the guarded route, keeps the rotated refresh token, and the old one is refused (reuse revokes the grant)', async () => {
    const sandbox = sandboxOf(t);
    const agent = t.agent();
    await login(agent, '/auth/di');
    const before = await stored(t);
    const old = before.tokenSet;

    // Time passes: the provider expires the access token and the stored set says so too.
    sandbox.engine.expireAccessTokens();
    await t.store.put(before.owner, 'di', { ...old, expiresAt: Date.now() - 1000 }, before.generation);
    expect((await callApi(t, old, 'GET', '/patent/search/expression?express=x')).rejected).toBe(true);

    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(sandbox.engine.counters.refresh).toBe(1);
    const refreshRequest = sandbox.lastTokenRequest!;
    expect(Object.keys(refreshRequest.query).sort()).toEqual(['client_id', 'client_secret', 'grant_type', 'refresh_token']);
    expect(refreshRequest.query['grant_type']).toBe('refresh_token');
    expect(refreshRequest.body).toEqual({});

    const after = (await stored(t)).tokenSet;
    expect(after.accessToken).not.toBe(old.accessToken);
    expect(after.refreshToken).toEqual(expect.any(String));
    expect(after.refreshToken).not.toBe(old.refreshToken);
    expect(after.tokenType).toBe('bearer');
    const fresh = await callApi(t, after, 'GET', `/patent/search/expression?express=${HUAWEI_H04L}`);
    expect(fresh.body).toMatchObject({ errorCode: '000000', total: 2 });

    // The rotated-away refresh token is refused; Spring-style invalid_grant, nothing secret in the error.
    const error = (await (t.strategy as DiStrategy).tokens.refresh(old).catch((e: unknown) => e)) as OAuthKeeperError;
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect(error.code).toBe(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(error.oauthError).toBe('invalid_grant');
    const shown = `${error.message} ${JSON.stringify(error)}`;
    for (const secret of [old.refreshToken!, after.refreshToken!, CLIENT.clientSecret]) expect(shown).not.toContain(secret);
    expect(sandbox.engine.counters.refreshReuse).toBe(1);
    // Reuse detection revoked the whole grant: the new access token is now rejected as well.
    expect((await callApi(t, after, 'GET', '/patent/search/expression?express=x')).rejected).toBe(true);
  });

  it('a refresh by the token client alone rotates, and the new refresh token works once more', async () => {
    await login(t.agent(), '/auth/di');
    const first = (await stored(t)).tokenSet;
    const tokens = (t.strategy as DiStrategy).tokens;
    const second = await tokens.refresh(first);
    expect(second.refreshToken).not.toBe(first.refreshToken);
    const third = await tokens.refresh(second);
    expect(third.refreshToken).not.toBe(second.refreshToken);
    expect(third.scope).toBe('read_cn');
    expect(sandboxOf(t).engine.counters.refresh).toBe(2);
  });
});

describe('di token endpoint errors', () => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('a code already redeemed gives invalid_grant: 502 TOKEN_ENDPOINT_FAILED, with no code, token or secret in the answer', async () => {
    t = await diApp();
    const agent = t.agent();
    const callback = await startLogin(agent, '/auth/di');
    const code = new URL(callback, t.url).searchParams.get('code')!;
    expect(code).toHaveLength(6);

    // Someone else redeems the code first (over the documented query-string wire).
    const steal = new URL(`${t.sandbox.url}/oauth/token`);
    for (const [k, v] of Object.entries({
      client_id: CLIENT.clientId,
      client_secret: CLIENT.clientSecret,
      grant_type: 'authorization_code',
      code,
      redirect_uri: `${t.url}/auth/di/callback`,
    })) {
      steal.searchParams.set(k, v);
    }
    const stolen = await fetch(steal, { method: 'POST' });
    expect(stolen.status).toBe(200);
    expect(stolen.headers.get('cache-control')).toBe('no-store');
    expect(stolen.headers.get('pragma')).toBe('no-cache');
    const stolenToken = ((await stolen.json()) as { access_token: string }).access_token;

    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body).toEqual({
      error: ErrorCodes.TOKEN_ENDPOINT_FAILED,
      message: expect.stringContaining('HTTP 400'),
      provider: 'di',
      oauthError: 'invalid_grant',
    });
    for (const secret of [code, stolenToken, CLIENT.clientSecret]) expect(res.text).not.toContain(secret);
    expect(await t.redis!.keys(`${t.prefix}tok:*`)).toHaveLength(0);
  });

  it('a wrong client secret gives invalid_client (HTTP 401 at the platform) without echoing the secret', async () => {
    const wrongSecret = 'not-the-secret-91b2';
    t = await diApp({ clientSecret: wrongSecret });
    const agent = t.agent();
    const callback = await startLogin(agent, '/auth/di');
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body).toMatchObject({ error: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'invalid_client', provider: 'di' });
    expect(res.body.message).toMatch(/HTTP 401.*Check the client id, secret/);
    expect(res.text).not.toContain(wrongSecret);
    expect(res.text).not.toContain(CLIENT.clientSecret);
  });

  it('an injected 503 is reported as transient, and a browser gets a page without secrets', async () => {
    t = await diApp();
    const agent = t.agent();
    const callback = await startLogin(agent, '/auth/di');
    t.sandbox.engine.injectFault('token', { status: 503 });
    const res = await agent.get(callback).set('accept', 'text/html').expect(502);
    expect(res.text).toContain(ErrorCodes.TOKEN_ENDPOINT_FAILED);
    expect(res.text).toContain('may work on a later try');
    expect(res.text).not.toContain(CLIENT.clientSecret);
    expect(res.text).not.toContain(new URL(callback, t.url).searchParams.get('code')!);
  });
});

describe('di sandbox login page', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await diApp({ sandbox: { autoApprove: false } });
  });
  afterEach(async () => {
    await t.close();
  });

  async function authorizePage(agent: ReturnType<TestApp['agent']>): Promise<{ action: string; fields: URLSearchParams }> {
    const start = await agent.get('/auth/di').expect(302);
    const location = new URL(start.headers['location'] as string);
    expect(location.pathname).toBe('/oauth/authorize');
    expect(location.searchParams.get('response_type')).toBe('code');
    expect(location.searchParams.get('scope')).toBe('read_cn');
    expect(location.searchParams.has('code_challenge')).toBe(false);
    const page = await fetch(location);
    expect(page.status).toBe(200);
    const html = await page.text();
    const fields = new URLSearchParams();
    for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields.set(m[1]!, m[2]!.replace(/&#38;/g, '&'));
    const action = /<form method="post" action="([^"]+)"/.exec(html)![1]!;
    return { action: new URL(action, location).toString(), fields };
  }

  it('signs in on the page, approves, and completes the login', async () => {
    const agent = t.agent();
    const { action, fields } = await authorizePage(agent);
    fields.set('username', 'alice');
    fields.set('password', 'wonderland');
    fields.set('decision', 'approve');
    const approved = await fetch(action, { method: 'POST', body: fields, redirect: 'manual' });
    expect(approved.status).toBe(302);
    const back = new URL(approved.headers.get('location')!);
    expect(back.searchParams.get('code')).toHaveLength(6);
    expect(back.searchParams.get('state')).toBe(fields.get('state'));
    await agent.get(back.pathname + back.search).expect(303);
    await agent.get('/me').set('accept', 'application/json').expect(200);
  });

  it('a denial comes back as access_denied and the app answers 403', async () => {
    const agent = t.agent();
    const { action, fields } = await authorizePage(agent);
    fields.set('decision', 'deny');
    const denied = await fetch(action, { method: 'POST', body: fields, redirect: 'manual' });
    const back = new URL(denied.headers.get('location')!);
    expect(back.searchParams.get('error')).toBe('access_denied');
    const res = await agent.get(back.pathname + back.search).set('accept', 'application/json').expect(403);
    expect(res.body).toMatchObject({ error: ErrorCodes.PROVIDER_ERROR, oauthError: 'access_denied', provider: 'di' });
  });
});

describe('di sandbox wire protocol', () => {
  let sandbox: DiSandbox;
  beforeEach(async () => {
    sandbox = await startDiSandbox({ autoApprove: true, clients: [CLIENT] });
  });
  afterEach(async () => {
    await sandbox.close();
  });

  async function code(scope = 'read_cn', redirectUri = 'http://app.test/cb'): Promise<string> {
    const url = new URL(`${sandbox.url}/oauth/authorize`);
    url.search = new URLSearchParams({ client_id: CLIENT.clientId, redirect_uri: redirectUri, response_type: 'code', scope, state: 's1' }).toString();
    const back = new URL(await visitProvider(url.toString()));
    expect(back.searchParams.get('state')).toBe('s1');
    return back.searchParams.get('code')!;
  }

  it('reads the token parameters from a form body too, as Spring does, and switches shape and lifetime type on demand', async () => {
    sandbox.wire.tokenResponseShape = 'array';
    sandbox.wire.expiresInType = 'string';
    const form = new URLSearchParams({
      client_id: CLIENT.clientId,
      client_secret: CLIENT.clientSecret,
      grant_type: 'authorization_code',
      code: await code('read_cn read_ep'),
      redirect_uri: 'http://app.test/cb',
    });
    const res = await fetch(`${sandbox.url}/oauth/token`, { method: 'POST', body: form });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Array<Record<string, unknown>>;
    expect(Array.isArray(body)).toBe(true);
    expect(body[0]).toEqual({
      access_token: expect.any(String),
      token_type: 'bearer',
      refresh_token: expect.any(String),
      expires_in: '3600',
      scope: 'read_cn read_ep',
    });
    expect(sandbox.diCounters.tokenParametersInBody).toBe(1);
  });

  it("answers Spring's errors: missing client, bad secret, bad code, redirect mismatch, GET, unknown grant", async () => {
    const post = async (params: Record<string, string>, method = 'POST') => {
      const url = new URL(`${sandbox.url}/oauth/token`);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      const res = await fetch(url, { method });
      return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
    };
    const client = { client_id: CLIENT.clientId, client_secret: CLIENT.clientSecret };

    expect(await post({ grant_type: 'authorization_code', code: 'AAAAAA' })).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
    const bad = await post({ ...client, client_secret: 'wrong', grant_type: 'authorization_code', code: 'AAAAAA' });
    expect(bad).toMatchObject({ status: 401, body: { error: 'invalid_client', error_description: 'Bad client credentials' } });
    expect(bad.headers.get('www-authenticate')).toMatch(/^Form realm="oauth2\/client"/);
    expect(bad.headers.get('cache-control')).toBe('no-store');
    expect(await post({ ...client, grant_type: 'authorization_code', code: 'ZZZZZZ', redirect_uri: 'http://app.test/cb' })).toMatchObject({
      status: 400,
      body: { error: 'invalid_grant', error_description: 'Invalid authorization code: ZZZZZZ' },
    });
    const mismatch = await post({ ...client, grant_type: 'authorization_code', code: await code(), redirect_uri: 'http://elsewhere.test/cb' });
    expect(mismatch).toMatchObject({ status: 400, body: { error: 'invalid_grant', error_description: 'Redirect URI mismatch.' } });
    expect(await post({ ...client, grant_type: 'authorization_code' }, 'GET')).toMatchObject({ status: 405, body: { error: 'method_not_allowed' } });
    expect(await post({ ...client, grant_type: 'password' })).toMatchObject({ status: 400, body: { error: 'unsupported_grant_type' } });
    const refresh = await post({ ...client, grant_type: 'refresh_token', refresh_token: 'a3b28576-5c31-4a13-b90b-e9a3696983d6' });
    expect(refresh).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(JSON.stringify(refresh.body)).not.toContain('a3b28576-5c31-4a13-b90b-e9a3696983d6');
  });

  it('refuses an unknown scope at the authorization endpoint and answers response_type=token in the fragment', async () => {
    const url = new URL(`${sandbox.url}/oauth/authorize`);
    url.search = new URLSearchParams({ client_id: CLIENT.clientId, redirect_uri: 'http://app.test/cb', response_type: 'code', scope: 'write_all', state: 's' }).toString();
    const refused = new URL(await visitProvider(url.toString()));
    expect(refused.searchParams.get('error')).toBe('invalid_scope');

    url.searchParams.set('response_type', 'token');
    url.searchParams.set('scope', 'read_cn');
    const implicit = new URL(await visitProvider(url.toString()));
    expect(implicit.search).toBe('');
    const fragment = new URLSearchParams(implicit.hash.slice(1));
    expect(fragment.get('token_type')).toBe('bearer');
    expect(fragment.get('state')).toBe('s');
    expect(fragment.has('refresh_token')).toBe(false);
    expect(sandbox.engine.verifyAccessToken(fragment.get('access_token')!)).toMatchObject({ clientId: CLIENT.clientId, scope: 'read_cn' });
  });

  it('hands back the live token of the same client, user and scope when reuse is on, as Spring does', async () => {
    sandbox.wire.reuseUnexpiredTokens = true;
    const redeem = async () => {
      const url = new URL(`${sandbox.url}/oauth/token`);
      url.search = new URLSearchParams({
        client_id: CLIENT.clientId,
        client_secret: CLIENT.clientSecret,
        grant_type: 'authorization_code',
        code: await code(),
        redirect_uri: 'http://app.test/cb',
      }).toString();
      return (await (await fetch(url, { method: 'POST' })).json()) as { access_token: string; refresh_token: string; expires_in: number };
    };
    const first = await redeem();
    const second = await redeem();
    expect(second.access_token).toBe(first.access_token);
    expect(second.refresh_token).toBe(first.refresh_token);
    expect(second.expires_in).toBeLessThanOrEqual(first.expires_in);
  });

  it('applies an injected API fault', async () => {
    sandbox.engine.injectFault('api', { status: 502, body: '{"error":"bad_gateway"}' });
    const res = await fetch(`${sandbox.url}/api/patent/search/expression?express=x`);
    expect(res.status).toBe(502);
    expect(await res.json()).toEqual({ error: 'bad_gateway' });
    const next = await fetch(`${sandbox.url}/api/patent/search/expression?express=x`);
    expect(next.status).toBe(401);
    await next.arrayBuffer();
  });
});
