import { defineProvider, ErrorCodes, OAuthKeeperStrategy, OAuthKeeperError, type ProviderOptions } from '../../src/index';
import { standardTokenRequest } from '../../src/provider/index';
import type { RefreshEvents } from '../../src/lib/refresh';
import { createTestApp, login, type TestApp, type TestAppOptions } from '../helpers/app';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster';
import { until } from '../helpers/until';

type Storage = 'redis' | 'cluster';

/** Records every refresh event the keeper emits. */
function record(t: TestApp): Array<[keyof RefreshEvents, unknown]> {
  const seen: Array<[keyof RefreshEvents, unknown]> = [];
  for (const name of ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait'] as const) {
    t.keeper.events.on(name, (event: unknown) => seen.push([name, event]));
  }
  return seen;
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

describe.each<Storage>(['redis', 'cluster'])('transparent refresh on %s', (storage) => {
  let cluster: RedisCluster | undefined;
  let t: TestApp;
  const base = (): TestAppOptions => ({ storage, ...(cluster ? { cluster } : {}), keeper: { refresh: { retryDelayMs: 5 } } });

  beforeAll(async () => {
    if (storage === 'cluster') cluster = await startRedisCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  afterEach(async () => {
    await t?.close();
  });

  async function loggedIn(options: TestAppOptions = {}) {
    t = await createTestApp({ ...base(), ...options });
    const agent = t.agent();
    await login(agent);
    return { agent, owner: await t.ownerOf(agent) };
  }

  it('refreshes ahead of expiry inside the skew window, once, and rotates the refresh token', async () => {
    const { agent, owner } = await loggedIn();
    const before = (await t.store.get(owner, 'example'))!.tokenSet;
    await t.expireToken(owner, Date.now() + 30_000); // within the default 60 s skew
    await agent.get('/me').set('accept', 'application/json').expect(200);
    const after = (await t.store.get(owner, 'example'))!.tokenSet;
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('does not refresh a token that never expires', async () => {
    const { agent, owner } = await loggedIn();
    await t.expireToken(owner, null);
    for (let i = 0; i < 3; i += 1) await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(0);
  });

  it('shares one refresh among 50 concurrent requests in one process', async () => {
    const { agent, owner } = await loggedIn();
    const events = record(t);
    await t.expireToken(owner);
    const answers = await Promise.all(Array.from({ length: 50 }, () => agent.get('/me').set('accept', 'application/json')));
    expect(answers.map((a) => a.status)).toEqual(Array(50).fill(200));
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(t.sandbox.engine.counters.refreshReuse).toBe(0);
    expect(events.filter(([n]) => n === 'refresh:success')).toHaveLength(1);
  });

  it('a slow request saving its session after a refresh cannot bring back the old tokens (express-openid-connect #408)', async () => {
    const slow = gate();
    const entered = gate();
    const { agent, owner } = await loggedIn({
      routes: (app) => {
        app.get('/slow', async (req, res) => {
          // Loads the session, changes it, and finishes only after another request has refreshed.
          (req.session as unknown as { visits?: number }).visits = 1;
          entered.open();
          await slow.promise;
          res.json({ ok: true });
        });
      },
    });
    await t.expireToken(owner);
    const slowRequest = agent.get('/slow').then((r) => r);
    await entered.promise;
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    const rotated = (await t.store.get(owner, 'example'))!.tokenSet;
    slow.open();
    expect((await slowRequest).status).toBe(200);

    // The slow request's session save changed nothing about the tokens...
    expect((await t.store.get(owner, 'example'))!.tokenSet.refreshToken).toBe(rotated.refreshToken);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    // ...and the next refresh spends the rotated refresh token, not a reused old one.
    await t.expireToken(owner);
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(2);
    expect(t.sandbox.engine.counters.refreshReuse).toBe(0);
  });

  it('a refresh that finishes after a newer login cannot overwrite it', async () => {
    const held = gate();
    const { agent, owner } = await loggedIn();
    await t.expireToken(owner);
    t.sandbox.engine.injectFault('token', { until: held.promise });
    const pending = agent.get('/me').set('accept', 'application/json').then((r) => r);
    // While that refresh is held at the provider, the user logs in again in another tab.
    await until(() => t.sandbox.engine.pendingFaults('token') === 0, 'the refresh to reach the provider');
    await login(agent);
    const fromLogin = (await t.store.get(owner, 'example'))!.tokenSet;
    held.open();
    expect((await pending).status).toBe(200);
    const finalSet = (await t.store.get(owner, 'example'))!.tokenSet;
    expect(finalSet.accessToken).toBe(fromLogin.accessToken);
    expect(finalSet.refreshToken).toBe(fromLogin.refreshToken);
  });

  it('invalid_grant: clears the tokens and asks for re-authorization (401 for APIs, redirect for browsers)', async () => {
    const { agent, owner } = await loggedIn();
    const events = record(t);
    const stored = (await t.store.get(owner, 'example'))!.tokenSet;
    t.sandbox.engine.revoke(stored.refreshToken!);
    await t.expireToken(owner);
    const api = await agent.get('/me').set('accept', 'application/json').expect(401);
    expect(api.body).toMatchObject({ error: ErrorCodes.REAUTHORIZATION_REQUIRED, oauthError: 'invalid_grant', provider: 'example', loginUrl: '/auth/example' });
    expect(api.headers['www-authenticate']).toContain('error="reauthorization_required"');
    expect(JSON.stringify(api.body)).not.toContain(stored.refreshToken!);
    expect(await t.store.get(owner, 'example')).toBeNull();
    expect(events.some(([n, e]) => n === 'refresh:failure' && (e as { transient: boolean }).transient === false)).toBe(true);
    const page = await agent.get('/page').set('accept', 'text/html').expect(302);
    expect(page.headers['location']).toBe('/auth/example?returnTo=%2Fpage');
  });

  it('transient failure with the token still valid: keeps using it', async () => {
    const { agent, owner } = await loggedIn();
    const events = record(t);
    const current = (await t.store.get(owner, 'example'))!.tokenSet;
    await t.expireToken(owner, Date.now() + 30_000);
    t.sandbox.engine.injectFault('token', { status: 503, times: 3 });
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect((await t.store.get(owner, 'example'))!.tokenSet.accessToken).toBe(current.accessToken);
    expect(events.filter(([n]) => n === 'refresh:retry')).toHaveLength(2);
    expect(events.find(([n]) => n === 'refresh:failure')![1]).toMatchObject({ transient: true, retries: 2 });
  });

  it('transient failure with the token expired: 503 with Retry-After, tokens kept', async () => {
    const { agent, owner } = await loggedIn();
    await t.expireToken(owner);
    t.sandbox.engine.injectFault('token', { status: 502, times: 3 });
    const res = await agent.get('/me').set('accept', 'application/json').expect(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body.error).toBe(ErrorCodes.REFRESH_UNAVAILABLE);
    expect(await t.store.get(owner, 'example')).not.toBeNull();
    // The provider recovers: the next request refreshes.
    await agent.get('/me').set('accept', 'application/json').expect(200);
  });

  it('transient failure once: retried with backoff, then succeeds', async () => {
    const { agent, owner } = await loggedIn();
    const events = record(t);
    await t.expireToken(owner);
    t.sandbox.engine.injectFault('token', { status: 500 });
    await agent.get('/me').set('accept', 'application/json').expect(200);
    expect(events.filter(([n]) => n === 'refresh:retry')).toEqual([['refresh:retry', { provider: 'example', attempt: 1, delayMs: 5 }]]);
    expect(events.find(([n]) => n === 'refresh:success')![1]).toMatchObject({ retries: 1 });
  });
});

describe('invalid_grant after another instance rotated', () => {
  it('re-reads the store and uses the other instance\u2019s token instead of logging out', async () => {
    let t!: TestApp;
    let rotateElsewhere: (() => Promise<void>) | undefined;
    interface Opts extends ProviderOptions {
      baseURL: string;
    }
    const racing = defineProvider<Opts>({
      name: 'example',
      authorizationURL: (o) => `${o.baseURL}/authorize`,
      tokenURL: (o) => `${o.baseURL}/token`,
      hooks: {
        requestToken: async (options, grant) => {
          if (grant.grantType === 'refresh_token' && rotateElsewhere) {
            // Another instance refreshed first (its lease had lapsed): our refresh token is now spent.
            await rotateElsewhere();
            throw new OAuthKeeperError(ErrorCodes.TOKEN_ENDPOINT_FAILED, 'spent', { oauthError: 'invalid_grant', grantInvalid: true });
          }
          return standardTokenRequest({ provider: 'example', url: `${options.baseURL}/token`, clientAuthentication: 'client_secret_post', parameterPlacement: 'body' }, options, grant);
        },
      },
    });
    t = await createTestApp({
      storage: 'memory',
      strategy: (sandbox) => new OAuthKeeperStrategy(racing, { clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/example/callback', baseURL: sandbox.url }),
    });
    try {
      const agent = t.agent();
      await login(agent);
      const owner = await t.ownerOf(agent);
      await t.expireToken(owner);
      const stored = await t.store.get(owner, 'example');
      rotateElsewhere = async () => {
        await t.store.put(owner, 'example', { ...stored!.tokenSet, accessToken: 'rotated-elsewhere', expiresAt: Date.now() + 3600_000 }, stored!.generation);
      };
      await agent.get('/me').set('accept', 'application/json').expect(200);
      expect((await t.store.get(owner, 'example'))!.tokenSet.accessToken).toBe('rotated-elsewhere');
    } finally {
      await t.close();
    }
  });
});

