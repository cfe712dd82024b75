import { createVerify, type KeyObject } from 'node:crypto';
import { ErrorCodes, OAuthKeeperError } from '../../../src/errors';
import type { TokenSet } from '../../../src/lib/token-set';
import type { ApiRawResponse, ApiRequest } from '../../../src/provider/types';
import { callSopGateway, chinaTimestamp, signSopParameters, SopStrategy, type SopOptions } from '../../../src/providers/sop/index';
import { startSopSandbox, type RunningSopSandbox, type SopSandboxOptions } from '../../../src/sandbox/sop';
import { createTestApp, login, startLogin, visitProvider, type TestApp } from '../../helpers/app';
import { rsaKeyPair, type RsaKeyPair } from '../../helpers/keys';

const APP_ID = '2019032617262200001';

/** The request-signature check, written again from the protocol text for these tests. */
function signedPerSpec(params: Readonly<Record<string, string>>, publicKey: KeyObject): boolean {
  const content = Object.keys(params)
    .filter((k) => k !== 'sign')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createVerify(params['sign_type'] === 'RSA' ? 'RSA-SHA1' : 'RSA-SHA256')
    .update(content, 'utf8')
    .verify(publicKey, params['sign'] ?? '', 'base64');
}

let app: RsaKeyPair;
let stranger: RsaKeyPair;

beforeAll(() => {
  app = rsaKeyPair();
  stranger = rsaKeyPair();
});

interface Setup {
  t: TestApp;
  sandbox: RunningSopSandbox;
  strategy: SopStrategy;
}

async function setup(sandboxOptions: Partial<SopSandboxOptions> = {}, strategyOptions: Partial<SopOptions> = {}): Promise<Setup> {
  let sandbox: RunningSopSandbox | undefined;
  const t = await createTestApp({
    startSandbox: async () => {
      sandbox = await startSopSandbox({ apps: [{ appId: APP_ID, publicKey: app.publicPem }], autoApprove: true, ...sandboxOptions });
      return sandbox;
    },
    strategy: () =>
      new SopStrategy({
        clientID: APP_ID,
        callbackURL: '/auth/sop/callback',
        authURL: sandbox!.url,
        gatewayURL: `${sandbox!.url}/`,
        privateKey: app.privatePem,
        platformPublicKey: sandbox!.platformPublicKey,
        ...strategyOptions,
      }),
  });
  return { t, sandbox: sandbox!, strategy: t.strategy as SopStrategy };
}

async function storedTokens(t: TestApp): Promise<{ owner: string; tokenSet: TokenSet }> {
  const keys = await t.redis!.keys(`${t.prefix}tok:*`);
  expect(keys).toHaveLength(1);
  const owner = /\{(.+)\}/.exec(keys[0]!)![1]!;
  const stored = await t.store.get(owner, 'sop');
  return { owner, tokenSet: stored!.tokenSet };
}

/** What the API proxy does with a business call: attach, send, read. */
async function businessCall(
  strategy: SopStrategy,
  tokenSet: TokenSet,
  method: string,
  body?: string,
): Promise<{ attached: ApiRequest; out: ApiRawResponse; node: Record<string, unknown> }> {
  const api = strategy.provider.api!;
  const request: ApiRequest = {
    method: 'POST',
    url: new URL(`${api.baseURL(strategy.options).replace(/\/$/, '')}/${method}`),
    headers: new Headers({ 'content-type': 'application/json' }),
    ...(body === undefined ? {} : { body: Buffer.from(body) }),
  };
  const attached = await api.attach(request, tokenSet, strategy.options);
  const response = await fetch(attached.url, {
    method: attached.method,
    headers: attached.headers,
    ...(attached.body === undefined ? {} : { body: new Uint8Array(attached.body) }),
  });
  const raw: ApiRawResponse = { status: response.status, headers: response.headers, body: Buffer.from(await response.arrayBuffer()) };
  const out = await api.readResponse!(raw, attached, strategy.options);
  return { attached, out, node: JSON.parse(out.body.toString('utf8')) as Record<string, unknown> };
}

describe('sop: login, tokens and business calls against the SOP sandbox', () => {
  let s: Setup;
  afterEach(async () => {
    await s?.t.close();
  });

  it('logs in through appToAppAuth, exchanges the code through the signed gateway and calls a business method', async () => {
    s = await setup();
    const { t, sandbox, strategy } = s;
    const agent = t.agent();

    const start = await agent.get('/auth/sop').expect(302);
    const authorize = new URL(start.headers['location'] as string);
    expect(`${authorize.origin}${authorize.pathname}`).toBe(`${sandbox.url}/oauth2/appToAppAuth`);
    expect([...authorize.searchParams.keys()].sort()).toEqual(['app_id', 'redirect_uri']);
    expect(authorize.searchParams.get('app_id')).toBe(APP_ID);
    const redirectUri = new URL(authorize.searchParams.get('redirect_uri')!);
    expect(redirectUri.pathname).toBe('/auth/sop/callback');
    const state = redirectUri.searchParams.get('oauth_keeper_state');
    expect(state).toMatch(/^[A-Za-z0-9_-]{40,}$/);

    const callback = new URL(await visitProvider(authorize.toString()));
    expect(callback.searchParams.get('oauth_keeper_state')).toBe(state);
    expect(callback.searchParams.get('app_id')).toBe(APP_ID);
    const code = callback.searchParams.get('code')!;
    expect(code).toMatch(/^[0-9a-f]{32}$/);

    const done = await agent.get(callback.pathname + callback.search).expect(303);
    expect(done.headers['location']).toBe('/');

    // The exchange was one signed gateway call, exactly as specified.
    const sent = sandbox.lastGatewayRequest!;
    expect(sent).toMatchObject({
      app_id: APP_ID,
      method: 'open.auth.token.app',
      format: 'json',
      charset: 'utf-8',
      sign_type: 'RSA2',
      version: '1.0',
      biz_content: JSON.stringify({ grant_type: 'authorization_code', code }),
    });
    expect(sent['timestamp']).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(sent['app_auth_token']).toBeUndefined();
    expect(Object.values(sent)).not.toContain('');
    expect(signedPerSpec(sent, app.publicKey)).toBe(true);
    expect(sandbox.gatewayCounters).toMatchObject({ badSignatures: 0, gatewayErrors: 0 });

    const { tokenSet } = await storedTokens(t);
    expect(tokenSet).toMatchObject({
      tokenType: 'app_auth_token',
      expiresAt: null,
      refreshTokenExpiresAt: null,
      extras: { user_id: '1001' },
    });
    expect(tokenSet.accessToken.length).toBeGreaterThan(10);
    expect(tokenSet.refreshToken!.length).toBeGreaterThan(10);

    const me = await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(me.body).toEqual({ provider: 'sop', user: expect.objectContaining({ provider: 'sop', id: '1001' }) });

    const { node, out } = await businessCall(strategy, tokenSet, 'goods.get', '{"goods_name":"iphone6"}');
    expect(out.status).toBe(200);
    expect(node).toEqual({ request_id: expect.any(String), code: '10000', msg: 'Success', name: 'iphone6', price: '5999.00', owner_user_id: '1001' });
    const call = sandbox.lastGatewayRequest!;
    expect(call).toMatchObject({ method: 'goods.get', app_auth_token: tokenSet.accessToken, biz_content: '{"goods_name":"iphone6"}' });
    expect(signedPerSpec(call, app.publicKey)).toBe(true);

    const user = await businessCall(strategy, tokenSet, 'user.info.get');
    expect(user.node).toMatchObject({ code: '10000', user_id: '1001', nick_name: 'Alice Sandbox' });
    expect(sandbox.lastGatewayRequest!['biz_content']).toBe('{}');
  });

  it('logs in with RSA (SHA1withRSA) signatures too', async () => {
    s = await setup({}, { signType: 'RSA' });
    await login(s.t.agent(), '/auth/sop');
    expect(s.sandbox.lastGatewayRequest!['sign_type']).toBe('RSA');
    expect(signedPerSpec(s.sandbox.lastGatewayRequest!, app.publicKey)).toBe(true);
    await storedTokens(s.t);
  });

  it('goes through the login page when the user signs in by hand, and maps a denial', async () => {
    s = await setup({ autoApprove: false });
    const { t, sandbox } = s;
    const agent = t.agent();
    const start = await agent.get('/auth/sop').expect(302);
    const page = await fetch(start.headers['location'] as string);
    const html = await page.text();
    expect(html).toContain('action="/oauth2/authorize"');
    const authorize = new URL(start.headers['location'] as string);
    const form = new URLSearchParams({
      app_id: authorize.searchParams.get('app_id')!,
      redirect_uri: authorize.searchParams.get('redirect_uri')!,
      username: 'alice',
      password: 'wonderland',
      decision: 'approve',
    });
    const approved = await fetch(`${sandbox.url}/oauth2/authorize`, { method: 'POST', body: form, redirect: 'manual' });
    expect(approved.status).toBe(302);
    const callback = new URL(approved.headers.get('location')!);
    await agent.get(callback.pathname + callback.search).expect(303);
    await agent.get('/me').set('accept', 'application/json').expect(200);

    const again = await agent.get('/auth/sop').expect(302);
    const againUrl = new URL(again.headers['location'] as string);
    form.set('redirect_uri', againUrl.searchParams.get('redirect_uri')!);
    form.set('decision', 'deny');
    const denied = await fetch(`${sandbox.url}/oauth2/authorize`, { method: 'POST', body: form, redirect: 'manual' });
    const deniedCallback = new URL(denied.headers.get('location')!);
    expect(deniedCallback.searchParams.get('error')).toBe('access_denied');
    const res = await agent.get(deniedCallback.pathname + deniedCallback.search).set('accept', 'application/json').expect(403);
    expect(res.body.error).toBe(ErrorCodes.PROVIDER_ERROR);
  });

  it('refuses a callback whose app_id is not this app, before any exchange', async () => {
    s = await setup();
    const { t, sandbox } = s;
    const agent = t.agent();
    const callback = new URL(await startLogin(agent, '/auth/sop'), t.url);
    callback.searchParams.set('app_id', '2019032617262200999');
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe(ErrorCodes.CALLBACK_INVALID);
    expect(sandbox.engine.counters.token).toBe(0);
    expect(await t.redis!.keys(`${t.prefix}tok:*`)).toHaveLength(0);
  });

  it('refuses a callback without the state bound in redirect_uri', async () => {
    s = await setup();
    const agent = s.t.agent();
    const callback = new URL(await startLogin(agent, '/auth/sop'), s.t.url);
    callback.searchParams.set('oauth_keeper_state', 'forged');
    const res = await agent.get(callback.pathname + callback.search).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe(ErrorCodes.STATE_MISMATCH);
    expect(s.sandbox.engine.counters.token).toBe(0);
  });

  it('refuses a token answer with a tampered signature, and leaks nothing of it', async () => {
    s = await setup();
    const { t, sandbox } = s;
    sandbox.engine.injectFault('token', { badSignature: true });
    const agent = t.agent();
    const callback = await startLogin(agent, '/auth/sop');
    const res = await agent.get(callback).set('accept', 'application/json').expect(502);
    expect(res.body).toEqual({ error: ErrorCodes.RESPONSE_SIGNATURE_INVALID, message: expect.any(String), provider: 'sop' });
    // The refused answer did carry tokens: none of it may reach the browser.
    const answer = JSON.parse(sandbox.lastGatewayResponse!) as { open_auth_token_app_response: Record<string, string>; sign: string };
    const node = answer.open_auth_token_app_response;
    expect(node['app_auth_token']).toBeDefined();
    for (const secret of [node['app_auth_token']!, node['app_refresh_token']!, answer.sign, node['request_id']!]) {
      expect(res.text).not.toContain(secret);
    }
    expect(res.text).not.toContain('user_id');
    expect(await t.redis!.keys(`${t.prefix}tok:*`)).toHaveLength(0);
    await agent.get('/me').set('accept', 'application/json').expect(401);
  });

  it('refuses a token answer without a signature', async () => {
    s = await setup();
    const unsigned = '{"open_auth_token_app_response":{"code":"10000","msg":"Success","app_auth_token":"forged-token","app_refresh_token":"forged-refresh","user_id":"1","expires_in":-1,"re_expires_in":-3}}';
    s.sandbox.engine.injectFault('token', { body: unsigned });
    const agent = s.t.agent();
    const res = await agent.get(await startLogin(agent, '/auth/sop')).set('accept', 'application/json').expect(502);
    expect(res.body.error).toBe(ErrorCodes.RESPONSE_SIGNATURE_INVALID);
    expect(res.text).not.toContain('forged-token');
  });

  it('refreshes through open.auth.token.app, rotating both tokens', async () => {
    s = await setup();
    const { t, sandbox, strategy } = s;
    await login(t.agent(), '/auth/sop');
    const { owner, tokenSet: before } = await storedTokens(t);

    const after = (await t.keeper.refresher.getFresh(owner, strategy.tokens, before.accessToken))!;
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).toBeDefined();
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(after).toMatchObject({ expiresAt: null, refreshTokenExpiresAt: null, extras: { user_id: '1001' } });
    expect(sandbox.lastGatewayRequest!['biz_content']).toBe(JSON.stringify({ grant_type: 'refresh_token', refresh_token: before.refreshToken }));
    expect(signedPerSpec(sandbox.lastGatewayRequest!, app.publicKey)).toBe(true);
    expect((await storedTokens(t)).tokenSet.accessToken).toBe(after.accessToken);

    const { node } = await businessCall(strategy, after, 'goods.get', '{}');
    expect(node['code']).toBe('10000');

    // The rotated-away refresh token is spent: the auth service refuses it inside a 10000 envelope.
    const reuse = await strategy.tokens.refresh(before).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(OAuthKeeperError);
    expect(reuse).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'invalid_grant', transient: false });
    expect(sandbox.engine.counters.refreshReuse).toBe(1);
  });

  it('reports real lifetimes when the sandbox sends them', async () => {
    s = await setup({ negativeLifetimes: false, accessTokenTtlSeconds: 7200, refreshTokenTtlSeconds: 86400 });
    const before = Date.now();
    await login(s.t.agent(), '/auth/sop');
    const { tokenSet } = await storedTokens(s.t);
    expect(tokenSet.expiresAt).toBeGreaterThanOrEqual(before + 7200_000);
    expect(tokenSet.refreshTokenExpiresAt).toBeGreaterThanOrEqual(before + 86_400_000);
  });

  it('recognizes 20001 answers as token rejections', async () => {
    s = await setup();
    const { t, sandbox, strategy } = s;
    await login(t.agent(), '/auth/sop');
    const { tokenSet } = await storedTokens(t);
    const api = strategy.provider.api!;
    const rejected = (node: Record<string, unknown>, status: number) => api.isTokenRejected({ status, headers: new Headers(), body: node });

    const fine = await businessCall(strategy, tokenSet, 'goods.get');
    expect(rejected(fine.node, fine.out.status)).toBe(false);

    const unknown = await businessCall(strategy, { ...tokenSet, accessToken: 'not-a-token' }, 'goods.get');
    expect(unknown.out.status).toBe(200);
    expect(unknown.node).toMatchObject({ code: '20001', sub_code: 'aop.invalid-app-auth-token' });
    expect(rejected(unknown.node, unknown.out.status)).toBe(true);

    sandbox.expireAppAuthTokens();
    const expired = await businessCall(strategy, tokenSet, 'goods.get');
    expect(expired.node).toMatchObject({ code: '20001', sub_code: 'aop.app-auth-token-time-out' });
    expect(rejected(expired.node, expired.out.status)).toBe(true);
  });

  it('calls the gateway directly with callSopGateway', async () => {
    s = await setup();
    const { t, sandbox, strategy } = s;
    await login(t.agent(), '/auth/sop');
    const { tokenSet } = await storedTokens(t);
    const node = await callSopGateway(strategy.options, 'goods.get', { goods_name: '手机' }, { appAuthToken: tokenSet.accessToken });
    expect(node).toMatchObject({ code: '10000', name: '手机' });
    expect(sandbox.lastGatewayRequest!['biz_content']).toBe('{"goods_name":"手机"}');
    expect(signedPerSpec(sandbox.lastGatewayRequest!, app.publicKey)).toBe(true);
    const refused = await callSopGateway(strategy.options, 'user.info.get', {});
    expect(refused).toMatchObject({ code: '20001', sub_code: 'aop.invalid-app-auth-token' });
    const unknown = await callSopGateway(strategy.options, 'no.such.method', {}, { appAuthToken: tokenSet.accessToken });
    expect(unknown).toMatchObject({ code: '40002', sub_code: 'isv.invalid-method' });
    sandbox.engine.injectFault('api', { badSignature: true });
    await expect(callSopGateway(strategy.options, 'goods.get', {}, { appAuthToken: tokenSet.accessToken })).rejects.toMatchObject({
      code: ErrorCodes.RESPONSE_SIGNATURE_INVALID,
    });
  });

  it('refuses a business answer with a tampered signature', async () => {
    s = await setup();
    const { t, sandbox, strategy } = s;
    await login(t.agent(), '/auth/sop');
    const { tokenSet } = await storedTokens(t);
    sandbox.engine.injectFault('api', { badSignature: true });
    await expect(businessCall(strategy, tokenSet, 'goods.get')).rejects.toMatchObject({ code: ErrorCodes.RESPONSE_SIGNATURE_INVALID });
    const next = await businessCall(strategy, tokenSet, 'goods.get');
    expect(next.node['code']).toBe('10000');
  });

  it('maps the gateway refusing a request signature or a stale timestamp', async () => {
    s = await setup();
    const { sandbox } = s;
    const wrongKey = new SopStrategy({ ...(s.strategy.options as SopOptions), privateKey: stranger.privatePem });
    const failure = await wrongKey.tokens
      .exchangeCode({ code: '0'.repeat(32), redirectUri: `${s.t.url}/auth/sop/callback`, callback: { all: {} } })
      .catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: ErrorCodes.TOKEN_ENDPOINT_FAILED, oauthError: 'isv.invalid-signature', transient: false });
    expect(sandbox.gatewayCounters.badSignatures).toBe(1);

    const stale = signSopParameters(
      {
        app_id: APP_ID,
        method: 'open.auth.token.app',
        format: 'json',
        charset: 'utf-8',
        sign_type: 'RSA2',
        timestamp: chinaTimestamp(new Date(Date.now() - 301_000)),
        version: '1.0',
        biz_content: '{"grant_type":"authorization_code","code":"x"}',
      },
      app.privatePem,
    );
    const answer = await fetch(`${sandbox.url}/`, { method: 'POST', body: new URLSearchParams(stale) });
    expect(answer.status).toBe(200);
    expect(JSON.parse(await answer.text()).open_auth_token_app_response).toMatchObject({ code: '40002', sub_code: 'isv.invalid-timestamp' });

    const noMethod = await fetch(`${sandbox.url}/`, { method: 'POST', body: new URLSearchParams({ app_id: APP_ID }) });
    expect(JSON.parse(await noMethod.text()).error_response).toMatchObject({ code: '40001', sub_code: 'isv.missing-method' });
  });
});

describe('a sop strategy under a name of its own', () => {
  it('names itself, not "sop", in the errors of its API binding and gateway calls', async () => {
    const { t, strategy } = await setup({}, { name: 'sop-prod', callbackURL: '/auth/sop-prod/callback' });
    try {
      expect(strategy.name).toBe('sop-prod');
      const agent = t.agent();
      await login(agent, '/auth/sop-prod');
      const owner = (await t.redis!.keys(`${t.prefix}tok:*`))[0]!.match(/\{(.+)\}/)![1]!;
      const { tokenSet } = (await t.store.get(owner, 'sop-prod'))!;
      // The API binding refuses a call without a method name: the error names the strategy.
      const binding = strategy.provider.api!;
      expect(() => binding.attach({ method: 'POST', url: new URL(`${strategy.options.gatewayURL}`), headers: new Headers() }, tokenSet, strategy.options)).toThrow(
        expect.objectContaining({ code: ErrorCodes.API_REQUEST_INVALID, provider: 'sop-prod' }),
      );
      await expect(callSopGateway(strategy.options, 'not a method', {})).rejects.toMatchObject({ provider: 'sop-prod' });
    } finally {
      await t.close();
    }
  });
});
