import { createTestApp, login, startLogin, visitProvider, type TestApp } from '../helpers/app';

describe('login through the keeper, tokens in Redis', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp();
  });
  afterEach(async () => {
    await t.close();
  });

  it('completes a login, stores the token set encrypted and serves the guarded route', async () => {
    const agent = t.agent();
    const landed = await login(agent);
    expect(landed).toBe('/');
    const me = await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(me.body).toEqual({ provider: 'example', scope: 'read', user: expect.objectContaining({ provider: 'example', id: '1001' }) });
    expect(t.sandbox.engine.counters.authorizationCode).toBe(1);
  });

  it('leaves no access or refresh token in plaintext anywhere in Redis', async () => {
    const seen: { access?: string; refresh?: string } = {};
    const agent = t.agent();
    await login(agent);
    // Read the real token values back through the store, then scan every key and value in Redis.
    const keys = await t.redis!.keys(`${t.prefix}*`);
    const tokenKey = keys.find((k) => k.includes(':tok:'))!;
    expect(tokenKey).toBeDefined();
    const owner = /\{(.+)\}/.exec(tokenKey)![1]!;
    const stored = await t.store.get(owner, 'example');
    seen.access = stored!.tokenSet.accessToken;
    seen.refresh = stored!.tokenSet.refreshToken!;
    expect(seen.access.length).toBeGreaterThan(10);
    expect(seen.refresh.length).toBeGreaterThan(10);

    const allKeys = await t.redis!.keys('*');
    expect(allKeys.length).toBeGreaterThanOrEqual(2); // the session and the token set at least
    for (const key of allKeys) {
      const type = await t.redis!.type(key);
      const values: string[] = [key];
      if (type === 'string') values.push((await t.redis!.get(key)) ?? '');
      else if (type === 'hash') values.push(...Object.entries(await t.redis!.hgetall(key)).flat());
      else if (type === 'list') values.push(...(await t.redis!.lrange(key, 0, -1)));
      else if (type === 'set') values.push(...(await t.redis!.smembers(key)));
      else if (type === 'zset') values.push(...(await t.redis!.zrange(key, 0, -1)));
      for (const value of values) {
        expect(value).not.toContain(seen.access);
        expect(value).not.toContain(seen.refresh);
      }
    }
    // The session itself holds no token material either, only the owner id.
    const sessionKeys = allKeys.filter((k) => k.startsWith(`${t.prefix}sess:`));
    expect(sessionKeys).toHaveLength(1);
    const sessionJson = JSON.parse((await t.redis!.get(sessionKeys[0]!))!);
    expect(Object.keys(sessionJson.oauthKeeper).sort()).toEqual(['owner', 'tx']);
  });

  it('completes two logins started in two tabs of one browser session', async () => {
    const agent = t.agent();
    const callbackA = await startLogin(agent);
    const callbackB = await startLogin(agent);
    expect(callbackA).not.toBe(callbackB);
    await agent.get(callbackB).expect(303);
    await agent.get(callbackA).expect(303);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.authorizationCode).toBe(2);
  });

  it('regenerates the session id at login and keeps the pending returnTo', async () => {
    const agent = t.agent();
    const start = await agent.get('/auth/example?returnTo=%2Fpage%3Fx%3D1').expect(302);
    const before = /connect\.sid=([^;]+)/.exec(String(start.headers['set-cookie']))![1];
    const callback = new URL(await visitProvider(start.headers['location'] as string));
    const done = await agent.get(callback.pathname + callback.search).expect(303);
    expect(done.headers['location']).toBe('/page?x=1');
    const after = /connect\.sid=([^;]+)/.exec(String(done.headers['set-cookie']))![1];
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    // The old session id no longer exists in the store.
    const oldId = decodeURIComponent(before!).slice(2).split('.')[0];
    expect(await t.redis!.exists(`${t.prefix}sess:${oldId}`)).toBe(0);
  });

  it('answers a guarded JSON request without a token with 401, WWW-Authenticate and a JSON body', async () => {
    const res = await t.agent().get('/me').set('accept', 'application/json').expect(401);
    expect(res.headers['www-authenticate']).toMatch(/^OAuthKeeper realm="example", error="authorization_required", login_uri="\/auth\/example"$/);
    expect(res.body).toEqual({
      error: 'OAUTH_KEEPER_AUTHORIZATION_REQUIRED',
      message: expect.stringContaining('/auth/example'),
      provider: 'example',
      loginUrl: '/auth/example',
    });
  });

  it('redirects a guarded page navigation to login with returnTo, and lands back there after login', async () => {
    const agent = t.agent();
    const nav = await agent.get('/page?tab=2').set('accept', 'text/html,application/xhtml+xml').expect(302);
    expect(nav.headers['location']).toBe('/auth/example?returnTo=%2Fpage%3Ftab%3D2');
    const start = await agent.get(nav.headers['location'] as string).expect(302);
    const callback = new URL(await visitProvider(start.headers['location'] as string));
    const done = await agent.get(callback.pathname + callback.search).expect(303);
    expect(done.headers['location']).toBe('/page?tab=2');
    const page = await agent.get('/page?tab=2').set('sec-fetch-mode', 'navigate').expect(200);
    expect(page.text).toContain('guarded page');
  });

  it('treats Sec-Fetch-Mode: navigate as a browser even without an HTML Accept header', async () => {
    const res = await t.agent().get('/page').set('sec-fetch-mode', 'navigate').expect(302);
    expect(res.headers['location']).toBe('/auth/example?returnTo=%2Fpage');
    await t.agent().get('/page').set('sec-fetch-mode', 'cors').set('accept', 'text/html').expect(401);
  });

  it('logout revokes, clears the tokens and destroys the session', async () => {
    const agent = t.agent();
    await login(agent);
    const tokenKeys = await t.redis!.keys(`${t.prefix}tok:*`);
    expect(tokenKeys).toHaveLength(1);
    const res = await agent.post('/logout').set('origin', t.url).expect(204);
    expect(String(res.headers['set-cookie'])).toMatch(/connect\.sid=;/);
    expect(await t.redis!.keys(`${t.prefix}tok:*`)).toHaveLength(0);
    expect(await t.redis!.keys(`${t.prefix}sess:*`)).toHaveLength(0);
    expect(t.sandbox.engine.counters.revoke).toBe(1);
    await agent.get('/me').set('accept', 'application/json').expect(401);
  });

  it('refuses a cross-origin logout and keeps the session', async () => {
    const agent = t.agent();
    await login(agent);
    const res = await agent.post('/logout').set('origin', 'https://evil.example').set('accept', 'application/json').expect(403);
    expect(res.body.error).toBe('OAUTH_KEEPER_CROSS_ORIGIN_REQUEST');
    await agent.get('/me').set('accept', 'application/json').expect(200);
  });

  it.each([
    ['state', (callback: string) => `${callback}&state=forged`],
    ['state, forged first', (callback: string) => callback.replace('?', '?state=forged&')],
    ['code', (callback: string) => `${callback}&code=other`],
  ])('refuses a callback that carries %s twice, and the login can still complete', async (_name, tamper) => {
    const agent = t.agent();
    const callback = await startLogin(agent);
    const res = await agent.get(tamper(callback)).set('accept', 'application/json').expect(400);
    expect(res.body.error).toBe('OAUTH_KEEPER_CALLBACK_INVALID');
    expect(t.sandbox.engine.counters.authorizationCode).toBe(0);
    // The genuine callback was not consumed by the refused one.
    await agent.get(callback).expect(303);
  });
});
