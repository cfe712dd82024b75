/**
 * keeper.sessionStore(): a session and its token sets read in one Redis command (MGET), counted
 * rather than timed; and never more than that read: what it hands the keeper belongs to the
 * request's own session read, so overlapping sessions, logins, refreshes and logouts see
 * exactly what Redis holds. (Two instances sharing Redis: test/integration/guard-cost.test.ts.)
 */
import { createHash } from 'node:crypto';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import type { Cluster, Redis } from 'ioredis';
import request from 'supertest';
import { KeeperSessionStore, MemoryBackend, OAuthKeeperError, TokenStore } from '../../src/index';
import { createTestApp, login, newRedis, uniquePrefix, type TestApp } from '../helpers/app';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster';

const hash = (token: string) => createHash('sha256').update(token).digest('hex').slice(0, 16);

/** Routes the tests read: the token of this request (hashed), after an optional overlap-making wait. */
function routes(app: express.Express, keeper: TestApp['keeper']): void {
  app.get('/token', keeper.ensureAuthorized('example', { unauthorized: 'status' }), async (req, res) => {
    const wait = Number(req.query['wait'] ?? 0);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    res.json({ token: hash(req.oauthToken!.accessToken) });
  });
  app.get('/guard-and-fetch', keeper.ensureAuthorized('example', { unauthorized: 'status' }), async (req, res) => {
    const answer = await req.oauthFetch!('example', '/whoami');
    res.json({ status: answer.status, token: hash(req.oauthToken!.accessToken) });
  });
  app.use('/api', keeper.ensureAuthorized('example', { unauthorized: 'status' }), keeper.proxy('example'));
}

describe('keeper.sessionStore(): one Redis command per guarded request', () => {
  let t: TestApp;
  let redis: Redis;
  let spies: Record<'mget' | 'get' | 'read', jest.SpyInstance>;

  beforeAll(async () => {
    t = await createTestApp({ sessionStore: 'keeper', routes });
    redis = t.redis as Redis;
    spies = { mget: jest.spyOn(redis, 'mget'), get: jest.spyOn(redis, 'get'), read: jest.spyOn(t.backend, 'read') };
  });

  afterAll(async () => {
    for (const spy of Object.values(spies)) spy.mockRestore();
    await t.close();
  });

  const counts = () => ({ mget: spies.mget.mock.calls.length, get: spies.get.mock.calls.length, read: spies.read.mock.calls.length });
  const clear = () => Object.values(spies).forEach((spy) => spy.mockClear());

  it('reads session and token set with one MGET: for the guard, and for guard + proxy, and for guard + req.oauthFetch', async () => {
    const agent = t.agent();
    await login(agent);
    const owner = await t.ownerOf(agent);
    const stored = (await t.store.get(owner, 'example'))!;
    for (const path of ['/token', '/api/whoami', '/guard-and-fetch']) {
      clear();
      const answer = await agent.get(path).expect(200);
      if (path !== '/api/whoami') expect(answer.body.token).toBe(hash(stored.tokenSet.accessToken));
      expect([path, counts()]).toEqual([path, { mget: 1, get: 0, read: 0 }]);
      const keys = spies.mget.mock.calls[0] as string[];
      expect(keys).toEqual([`${t.prefix}sess:${keys[0]!.slice(`${t.prefix}sess:`.length)}`, t.store.tokenKey(owner, 'example')]);
    }
  });

  it('a session this process has not seen yet is read with GET, then learned', async () => {
    // A second store on the same Redis (as another instance would have) has never seen this session.
    const agent = t.agent();
    await login(agent);
    const cookie = (await agent.get('/token').expect(200)).request.cookies;
    // A second store of the same keeper and client, as a just-started instance has: it has never seen this session.
    const store = t.keeper.sessionStore({ client: redis, prefix: `${t.prefix}sess:` });
    expect(store).toBeInstanceOf(KeeperSessionStore);
    expect(store.readsTokensWithSession).toBe(true);
    const sid = decodeURIComponent(String(cookie)).match(/connect\.sid=s:([^.]+)\./)?.[1];
    expect(sid).toBeTruthy();
    const read = () => new Promise<unknown>((resolve, reject) => store.get(sid!, (err, sess) => (err ? reject(err) : resolve(sess))));
    clear();
    const first = (await read()) as { oauthKeeper?: { owner?: string } };
    expect(counts()).toEqual({ mget: 0, get: 1, read: 0 });
    expect(first.oauthKeeper?.owner).toBe(await t.ownerOf(agent));
    clear();
    await read();
    expect(counts()).toEqual({ mget: 1, get: 0, read: 0 });
  });

  it('a session written by connect-redis is read by keeper.sessionStore(), and back: switching keeps users signed in', async () => {
    const prefix = uniquePrefix('switch');
    const build = (store: session.Store) => {
      const app = express();
      app.use(session({ store, secret: 'switch-secret', resave: false, saveUninitialized: false }));
      app.get('/set', (req, res) => {
        req.session.oauthKeeper = { owner: 'switch-owner' };
        res.json({ ok: true });
      });
      app.get('/get', (req, res) => {
        res.json({ owner: req.session.oauthKeeper?.owner ?? null });
      });
      return app;
    };
    const connect = build(new RedisStore({ client: redis, prefix: `${prefix}sess:` }));
    const keeperStore = build(t.keeper.sessionStore({ client: redis, prefix: `${prefix}sess:` }));
    const set = await request(connect).get('/set').expect(200);
    const cookie = set.headers['set-cookie']![0]!.split(';')[0]!;
    expect((await request(keeperStore).get('/get').set('cookie', cookie).expect(200)).body).toEqual({ owner: 'switch-owner' });
    const again = await request(keeperStore).get('/set').expect(200);
    const cookie2 = again.headers['set-cookie']![0]!.split(';')[0]!;
    expect((await request(connect).get('/get').set('cookie', cookie2).expect(200)).body).toEqual({ owner: 'switch-owner' });
    expect(await redis.ttl(`${prefix}sess:${decodeURIComponent(cookie2).match(/=s:([^.]+)\./)![1]}`)).toBeGreaterThan(86_000);
  });

  it('after logout the session and its token set are gone; the next request reads nothing stale', async () => {
    const agent = t.agent();
    await login(agent);
    const owner = await t.ownerOf(agent);
    await agent.get('/token').expect(200);
    await agent.post('/logout').set('origin', t.url).expect((res) => expect([204]).toContain(res.status));
    expect(await t.store.get(owner, 'example')).toBeNull();
    await agent.get('/token').expect(401);
  });

  it('a token set rewritten or deleted behind the store (another instance) is what the next request reads', async () => {
    const agent = t.agent();
    await login(agent);
    const owner = await t.ownerOf(agent);
    const before = (await agent.get('/token').expect(200)).body.token as string;
    const stored = (await t.store.get(owner, 'example'))!;
    // Another instance's write (same Redis, same keys): a different access token.
    await t.store.put(owner, 'example', { ...stored.tokenSet, accessToken: 'rotated-elsewhere' }, stored.generation);
    expect((await agent.get('/token').expect(200)).body.token).toBe(hash('rotated-elsewhere'));
    expect(before).not.toBe(hash('rotated-elsewhere'));
    await redis.del(t.store.tokenKey(owner, 'example'));
    await agent.get('/token').expect(401);
  });
});

describe('keeper.sessionStore(): many sessions at once', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ sessionStore: 'keeper', routes, sandbox: { rotateRefreshTokens: true } });
  });

  afterAll(async () => {
    await t.close();
  });

  it('overlapping logins, guarded requests, proxy calls, refreshes and logouts of 12 sessions each see their own token set', async () => {
    const agents = Array.from({ length: 12 }, () => t.agent());
    // Logins overlap: the code exchange is delayed at the provider.
    t.sandbox.engine.settings.codeExchangeDelayMs = [10, 40];
    await Promise.all(agents.map((agent) => login(agent)));
    t.sandbox.engine.settings.codeExchangeDelayMs = 0;
    const owners = await Promise.all(agents.map((agent) => t.ownerOf(agent)));
    expect(new Set(owners).size).toBe(12);
    const expected = async (i: number) => hash((await t.store.get(owners[i]!, 'example'))!.tokenSet.accessToken);

    // Half the sessions expire: their requests refresh while the others' are served; proxy calls are slowed.
    for (let i = 0; i < 12; i += 2) await t.expireToken(owners[i]!);
    t.sandbox.engine.injectFault('api', { delayMs: 25, times: 24 });
    const round = await Promise.all(
      agents.flatMap((agent, i) => [
        agent.get('/token?wait=20').then((res) => ({ i, kind: 'token', status: res.status, token: res.body.token as string })),
        agent.get('/token?wait=5').then((res) => ({ i, kind: 'token', status: res.status, token: res.body.token as string })),
        agent.get('/guard-and-fetch').then((res) => ({ i, kind: 'fetch', status: res.status, token: res.body.token as string })),
        agent.get('/api/whoami').then((res) => ({ i, kind: 'proxy', status: res.status, token: '' })),
      ]),
    );
    expect(round.filter((r) => r.status !== 200)).toEqual([]);
    for (const r of round) {
      if (r.kind !== 'proxy') expect([r.i, r.token]).toEqual([r.i, await expected(r.i)]);
    }
    // One refresh per expired session, none for the others.
    expect(t.sandbox.engine.counters.refresh).toBe(6);

    // Logouts of a third of the sessions overlap the others' requests.
    const leaving = new Set([0, 3, 6, 9]);
    const mixed = await Promise.all(
      agents.map((agent, i) =>
        leaving.has(i)
          ? agent.post('/logout').set('origin', t.url).then((res) => ({ i, status: res.status, token: '' }))
          : agent.get('/token?wait=10').then((res) => ({ i, status: res.status, token: res.body.token as string })),
      ),
    );
    for (const r of mixed) {
      if (leaving.has(r.i)) expect([204]).toContain(r.status);
      else expect([r.i, r.status, r.token]).toEqual([r.i, 200, await expected(r.i)]);
    }
    const after = await Promise.all(agents.map((agent) => agent.get('/token').then((res) => res.status)));
    expect(after).toEqual(agents.map((_, i) => (leaving.has(i) ? 401 : 200)));
  });
});

describe('keeper.sessionStore(): where session and tokens cannot be read together', () => {
  it('with the token sets on another client (or in memory), it reads the session alone and the guard reads the token set', async () => {
    const t = await createTestApp({ sessionStore: 'keeper', routes });
    const other = newRedis();
    try {
      const store = t.keeper.sessionStore({ client: other, prefix: `${t.prefix}sess:` });
      expect(store.readsTokensWithSession).toBe(false);
      const memory = new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [Buffer.alloc(32, 7)] });
      expect(memory.takePrefetched('sid', 'owner', 'example')).toBeUndefined();
    } finally {
      await other.quit();
      await t.close();
    }
  });

  it('on Redis Cluster, sessions are read alone (their keys and the token keys live in different slots), and everything works', async () => {
    let cluster: RedisCluster | undefined;
    let t: TestApp | undefined;
    try {
      cluster = await startRedisCluster();
      t = await createTestApp({ storage: 'cluster', cluster, sessionStore: 'keeper', routes });
      const store = t.keeper.sessionStore({ client: t.redis as Cluster, prefix: `${t.prefix}sess:` });
      expect(store.readsTokensWithSession).toBe(false);
      const agent = t.agent();
      await login(agent);
      const owner = await t.ownerOf(agent);
      const expected = hash((await t.store.get(owner, 'example'))!.tokenSet.accessToken);
      const reads = jest.spyOn(t.backend, 'read');
      expect((await agent.get('/token').expect(200)).body.token).toBe(expected);
      expect(reads).toHaveBeenCalledTimes(1);
      reads.mockRestore();
      await agent.get('/api/whoami').expect(200);
    } finally {
      await t?.close();
      await cluster?.stop();
    }
  });

  it('a Redis that does not answer costs a bounded wait and a 503 with Retry-After, through keeper.errorHandler()', async () => {
    const t = await createTestApp({ sessionStore: 'keeper', routes });
    const stalled = { get: () => new Promise<string | null>(() => undefined), mget: () => new Promise<Array<string | null>>(() => undefined), set: async () => 'OK', expire: async () => 1, del: async () => 1 };
    try {
      const app = express();
      app.use(session({ store: t.keeper.sessionStore({ client: stalled, timeoutMs: 100, retryAfterSeconds: 3 }), secret: 's', resave: false, saveUninitialized: false }));
      app.use(t.keeper.middleware());
      app.get('/set', (req, res) => {
        req.session.oauthKeeper = { owner: 'stalled-owner' };
        res.json({ ok: true });
      });
      app.get('/x', (_req, res) => res.json({ ok: true }));
      app.use(t.keeper.errorHandler());
      // Writes answer: the session is made and its cookie set. Reads never answer.
      const made = await request(app).get('/set').expect(200);
      const cookie = made.headers['set-cookie']![0]!.split(';')[0]!;
      const slow = await request(app).get('/x').set('cookie', cookie).set('accept', 'application/json');
      expect(slow.status).toBe(503);
      expect(slow.headers['retry-after']).toBe('3');
      expect(slow.body.error).toBe('OAUTH_KEEPER_STORE_UNAVAILABLE');
    } finally {
      await t.close();
    }
  });

  it('bad options are refused with a typed error naming the fix', () => {
    expect(() => new KeeperSessionStore({ client: {} as never })).toThrow(OAuthKeeperError);
    expect(() => new KeeperSessionStore({ client: {} as never })).toThrow(/ioredis client/);
    expect(() => new KeeperSessionStore({ client: newRedisLike(), ttlSeconds: 0 })).toThrow(/ttlSeconds/);
    // connect-redis's names are not silently ignored.
    expect(() => new KeeperSessionStore({ client: newRedisLike(), ttl: 3600 } as never)).toThrow(/Unknown keeper.sessionStore option "ttl".*ttlSeconds here/);
    expect(() => new KeeperSessionStore({ client: newRedisLike(), prefx: 'x:' } as never)).toThrow(/did you mean "prefix"/);
  });
});

function newRedisLike() {
  return { get: async () => null, mget: async () => [], set: async () => 'OK', expire: async () => 1, del: async () => 1 };
}
