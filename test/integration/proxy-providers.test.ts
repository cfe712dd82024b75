import { generateKeyPairSync } from 'node:crypto';
import { DiStrategy } from '../../src/index';
import { startDiSandbox, type DiSandbox, type RunningSopSandbox } from '../../src/sandbox/index';
import { createTestApp, login, type TestApp } from '../helpers/app';
import { sopSandboxStrategy, startSopSandboxForApp } from '../helpers/providers';

/** The proxy of each built-in provider, mounted as the example app mounts it. */
function mountProxy(name: string) {
  return (app: TestApp['app'], keeper: TestApp['keeper']) => {
    app.use(`/api/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name));
    // The same proxy with a tiny buffer, so that ordinary bodies stream.
    app.use(`/streaming/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name, { maxBufferedBodyBytes: 16 }));
  };
}

describe('proxy: di', () => {
  let t: TestApp;
  let sandbox: DiSandbox;
  beforeEach(async () => {
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startDiSandbox({ autoApprove: true })),
      strategy: (s) => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: s.url }),
      routes: mountProxy('di'),
    });
  });
  afterEach(async () => {
    await t.close();
  });

  it('GET carries client_id, access_token and scope in the query, nothing in headers', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const owner = await t.ownerOf(agent);
    const stored = (await t.store.get(owner, 'di'))!.tokenSet;
    const res = await agent.get('/api/di/patent/search/expression').query({ express: '申请人=(华为)', page: '1' }).expect(200);
    expect(res.body.errorCode).toBe('000000');
    expect(sandbox.lastApiRequest!.query).toMatchObject({ client_id: 'sandbox-client', access_token: stored.accessToken, scope: 'read_cn', express: '申请人=(华为)' });
    expect(sandbox.diCounters.apiCredentialsInQuery).toBe(1);
    expect(sandbox.diCounters.apiCredentialsInHeader).toBe(0);
    expect(JSON.stringify(res.headers)).not.toContain(stored.accessToken);
  });

  it('POST form carries them in the form body', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    await agent.post('/api/di/patent/search/expression').type('form').send({ express: '分类号=(H04L)' }).expect(200);
    expect(sandbox.lastApiRequest!.body).toMatchObject({ client_id: 'sandbox-client', scope: 'read_cn', express: '分类号=(H04L)' });
    expect(sandbox.lastApiRequest!.body['access_token']).toBeDefined();
    expect(sandbox.diCounters.apiCredentialsInBody).toBe(1);
  });

  it('a POST body too large to buffer streams, with the credentials in the query', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const body = JSON.stringify({ note: 'x'.repeat(4096) });
    await agent.post('/streaming/di/patent/search/expression?express=x').set('content-type', 'application/json').send(body).expect(200);
    expect(sandbox.lastApiRequest!.method).toBe('POST');
    expect(sandbox.lastApiRequest!.query).toMatchObject({ client_id: 'sandbox-client', scope: 'read_cn', express: 'x' });
    expect(sandbox.diCounters.apiCredentialsInQuery).toBe(1);
  });

  it('a form POST too large to buffer is refused (413): its credentials belong in the body', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const res = await agent.post('/streaming/di/patent/search/expression').type('form').send({ express: 'x'.repeat(4096) }).expect(413);
    expect(res.body.error).toBe('OAUTH_KEEPER_API_REQUEST_INVALID');
    expect(sandbox.lastApiRequest).toBeUndefined();
  });

  it('a business error passes through untouched, without a refresh', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const res = await agent.get('/api/di/patent/search/expression').expect(200);
    expect(res.body.errorCode).not.toBe('000000');
    expect(t.sandbox.engine.counters.refresh).toBe(0);
  });

  it('invalid_token: refreshes once (rotating the refresh token) and retries once', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const owner = await t.ownerOf(agent);
    const before = (await t.store.get(owner, 'di'))!.tokenSet;
    t.sandbox.engine.expireAccessTokens(); // the provider stops accepting it before our expiry says so
    const res = await agent.get('/api/di/patent/search/expression').query({ express: 'x' }).expect(200);
    expect(res.body.errorCode).toBe('000000');
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    const after = (await t.store.get(owner, 'di'))!.tokenSet;
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect(sandbox.lastApiRequest!.query['access_token']).toBe(after.accessToken);
  });
});

describe('proxy: sop', () => {
  let t: TestApp;
  let sandbox: RunningSopSandbox;
  const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  beforeEach(async () => {
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startSopSandboxForApp(appKeys)),
      strategy: (s) => sopSandboxStrategy(s as RunningSopSandbox, appKeys),
      routes: mountProxy('sop'),
    });
  });
  afterEach(async () => {
    await t.close();
  });

  it('POST /api/sop/<method>: a signed gateway call with app_auth_token, the verified node unwrapped', async () => {
    const agent = t.agent();
    await login(agent, '/auth/sop');
    const owner = await t.ownerOf(agent);
    const stored = (await t.store.get(owner, 'sop'))!.tokenSet;
    const res = await agent.post('/api/sop/goods.get').send({ goods_name: 'iphone6' }).expect(200);
    expect(res.body).toMatchObject({ code: '10000', name: 'iphone6', owner_user_id: '1001' });
    expect(res.body.sign).toBeUndefined();
    const sent = sandbox.lastGatewayRequest!;
    expect(sent).toMatchObject({ method: 'goods.get', app_id: 'app-1', app_auth_token: stored.accessToken, sign_type: 'RSA2', charset: 'utf-8', format: 'json', version: '1.0' });
    expect(JSON.parse(sent['biz_content']!)).toEqual({ goods_name: 'iphone6' });
    expect(sent['sign']).toBeDefined();
  });

  it('a tampered response signature is refused with 502, the answer withheld', async () => {
    const agent = t.agent();
    await login(agent, '/auth/sop');
    t.sandbox.engine.injectFault('api', { badSignature: true });
    const res = await agent.post('/api/sop/goods.get').send({}).expect(502);
    expect(res.body.error).toBe('OAUTH_KEEPER_RESPONSE_SIGNATURE_INVALID');
    expect(res.text).not.toContain('iphone6');
  });

  it('20001 aop.app-auth-token-time-out: refreshes once (both tokens rotate) and retries once', async () => {
    const agent = t.agent();
    await login(agent, '/auth/sop');
    const owner = await t.ownerOf(agent);
    const before = (await t.store.get(owner, 'sop'))!.tokenSet;
    expect(before.expiresAt).toBeNull(); // SOP tokens "never expire": refreshed only when rejected
    sandbox.expireAppAuthTokens();
    const res = await agent.post('/api/sop/user.info.get').send({}).expect(200);
    expect(res.body).toMatchObject({ code: '10000', user_id: '1001' });
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    const after = (await t.store.get(owner, 'sop'))!.tokenSet;
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
  });
});
