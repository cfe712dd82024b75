import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type Redis from 'ioredis';
import { RedisBackend, TokenStore } from '../../src/index';
import { startCnblogsSandbox, startDiSandbox, startSopSandbox, type RunningSandbox, type RunningSopSandbox } from '../../src/sandbox/index';
import { newRedis, testRedisPort, uniquePrefix } from '../helpers/app';
import { CookieClient } from '../helpers/browser';
import { repoRoot, spawnUntil } from '../helpers/processes';

/**
 * A worker process (test/fixtures/worker.mjs: tokenKeeper(), no Express, no session)
 * acting for a user whose browser session is gone, and racing two app instances
 * (test/fixtures/owner-app.mjs) on the same owner's rotating refresh tokens. Each runs
 * the built package (`npm run build` first) against real redis-server and the sandboxes.
 */

interface Proc {
  child: ChildProcess;
  url: string;
}

type Sample = { status: number; user?: string | null; error?: string };
const PROVIDERS = ['di', 'cnblogs', 'sop'] as const;
const json = { headers: { accept: 'application/json' } };

describe('background use: a worker process acts for the owner with the web app\'s guarantees', () => {
  const sopKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const prefix = uniquePrefix('worker');
  const tokenKey = randomBytes(32).toString('base64');
  let di: RunningSandbox;
  let cnblogs: RunningSandbox;
  let sop: RunningSopSandbox;
  let redis: Redis;
  let procs: Proc[] = [];

  beforeAll(async () => {
    [di, cnblogs, sop] = await Promise.all([
      startDiSandbox({ autoApprove: true }),
      startCnblogsSandbox({ autoApprove: true }),
      startSopSandbox({ autoApprove: true, apps: [{ appId: 'app-1', publicKey: sopKeys.publicKey }] }),
    ]);
    redis = newRedis();
  });
  afterEach(() => {
    for (const proc of procs) proc.child.kill('SIGKILL');
    procs = [];
  });
  afterAll(async () => {
    await Promise.all([di.close(), cnblogs.close(), sop.close()]);
    await redis.quit();
  });

  const sandboxes = () => ({ di, cnblogs, sop });
  const env = (): Record<string, string> => ({
    REDIS_PORT: String(testRedisPort()),
    PREFIX: prefix,
    TOKEN_KEY: tokenKey,
    SESSION_SECRET: 'shared-secret',
    DI_URL: di.url,
    CNBLOGS_URL: cnblogs.url,
    SOP_URL: sop.url,
    SOP_PRIVATE_KEY: sopKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    SOP_PLATFORM_KEY: String(sop.platformPublicKey),
  });
  const store = () => new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [tokenKey], prefix });

  async function start(fixture: 'owner-app' | 'worker'): Promise<Proc> {
    const { child, match } = await spawnUntil(process.execPath, [join(repoRoot, `test/fixtures/${fixture}.mjs`)], { env: env(), ready: /ready (\d+)\n/, name: fixture });
    const proc = { child, url: `http://127.0.0.1:${match[1]}` };
    procs.push(proc);
    return proc;
  }

  async function get<T>(url: string): Promise<T> {
    const res = await fetch(url, json);
    expect(res.status).toBe(200);
    return (await res.json()) as T;
  }

  /** The app's own sign-in as `account`, then a connection to each of `providers` on `app`. */
  async function connect(browser: CookieClient, app: Proc, account: string, providers: readonly string[]): Promise<void> {
    expect((await browser.fetch(`${app.url}/sign-in/${account}`, { method: 'POST' })).status).toBe(204);
    for (const provider of providers) {
      const start = await browser.fetch(`${app.url}/auth/${provider}`);
      expect(start.status).toBe(302);
      const atProvider = await fetch(start.headers.get('location')!, { redirect: 'manual' });
      const callback = new URL(atProvider.headers.get('location')!);
      const done = await browser.fetch(`${app.url}${callback.pathname}${callback.search}`);
      expect({ provider, status: done.status, body: done.status === 303 ? '' : await done.text() }).toEqual({ provider, status: 303, body: '' });
    }
  }

  /** Rewrites an owner's stored set as if its access token had expired (connectedAt kept). */
  async function expire(owner: string, provider: string): Promise<void> {
    const s = store();
    const stored = (await s.get(owner, provider))!;
    await s.put(owner, provider, { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation, stored.connectedAt);
  }

  it('after the browser session is destroyed, a worker process calls di, cnblogs and sop for the user, refreshing as needed', async () => {
    const [app, worker] = await Promise.all([start('owner-app'), start('worker')]);
    const browser = new CookieClient();
    await connect(browser, app, 'alice', PROVIDERS);
    const seen: Record<string, Sample> = {};
    for (const provider of PROVIDERS) seen[provider] = (await (await browser.fetch(`${app.url}/call/${provider}`, json)).json()) as Sample;
    for (const provider of PROVIDERS) expect(seen[provider]).toEqual({ status: 200, user: expect.any(String) });

    // The session ends: logout destroys it (the default keeps the owner's tokens); no session is left in Redis.
    expect((await browser.fetch(`${app.url}/logout`, { method: 'POST' })).status).toBe(204);
    expect(await redis.keys(`${prefix}sess:*`)).toEqual([]);
    expect((await browser.fetch(`${app.url}/token/di`, json)).status).toBe(401);

    const connections = await get<Array<{ provider: string; expiresAt: string | null }>>(`${worker.url}/connections?owner=alice`);
    expect(connections.map((c) => c.provider)).toEqual(['di', 'cnblogs', 'sop']);
    expect(connections.find((c) => c.provider === 'sop')!.expiresAt).toBeNull(); // sop's permanent app_auth_token

    const first = await get<Record<string, Sample>>(`${worker.url}/run?owner=alice`);
    expect(first).toEqual(seen);

    // Later: di's and cnblogs' access tokens have expired, and the platform no longer takes sop's.
    await expire('u:alice', 'di');
    await expire('u:alice', 'cnblogs');
    sop.expireAppAuthTokens();
    for (const s of Object.values(sandboxes())) s.engine.resetCounters();
    const later = await get<Record<string, Sample>>(`${worker.url}/run?owner=alice`);
    expect(later).toEqual(seen);
    // di and cnblogs refreshed ahead of the call; sop refreshed after the gateway rejected its token, and retried.
    for (const s of Object.values(sandboxes())) expect(s.engine.counters.refresh).toBe(1);
    expect((await get<{ refreshes: number }>(`${worker.url}/events`)).refreshes).toBe(3);
    expect((await get<{ refreshes: number }>(`${app.url}/events`)).refreshes).toBe(0);
  });

  it('token sets a session held before the app knew its user move to the user once the owner option names one', async () => {
    const [app, worker] = await Promise.all([start('owner-app'), start('worker')]);
    const browser = new CookieClient();
    // Connected before the app's own sign-in: the owner option returns undefined, the session owns the set.
    const start0 = await browser.fetch(`${app.url}/auth/di`);
    const callback = new URL((await fetch(start0.headers.get('location')!, { redirect: 'manual' })).headers.get('location')!);
    expect((await browser.fetch(`${app.url}${callback.pathname}${callback.search}`)).status).toBe(303);
    const sessionOwned = (await redis.keys(`${prefix}tok:*`)).filter((k) => !k.includes('{u:'));
    expect(sessionOwned).toHaveLength(1);

    await connect(browser, app, 'carol', ['cnblogs']);
    const connections = await get<Array<{ provider: string }>>(`${worker.url}/connections?owner=carol`);
    expect(connections.map((c) => c.provider)).toEqual(['di', 'cnblogs']);
    expect(await redis.exists(sessionOwned[0]!)).toBe(0);
    expect((await get<Record<string, Sample>>(`${worker.url}/run?owner=carol&providers=di,cnblogs`)).di).toEqual({ status: 200, user: expect.any(String) });
  });

  it('a worker and two app instances rotating the same owner\'s refresh token at the same moment make one refresh, with reuse detection on', async () => {
    const [appA, appB, worker] = await Promise.all([start('owner-app'), start('owner-app'), start('worker')]);
    const first = new CookieClient();
    const second = new CookieClient();
    await connect(first, appA, 'bob', PROVIDERS);
    await connect(second, appB, 'bob', ['di']); // the second browser binds its session to bob; it sees all of bob's sets
    for (const s of [di, cnblogs]) expect(s.engine.settings).toMatchObject({ rotateRefreshTokens: true, detectRefreshReuse: true });

    await expire('u:bob', 'di');
    await expire('u:bob', 'cnblogs');
    for (const s of [di, cnblogs]) {
      s.engine.resetCounters();
      // The one refresh is held 300 ms, so everyone else arrives while it runs.
      s.engine.injectFault('token', { delayMs: 300 });
    }

    const web = (browser: CookieClient, app: Proc, provider: string) =>
      browser.fetch(`${app.url}/token/${provider}`, json).then(async (r) => ({ status: r.status, token: ((await r.json()) as { token?: string }).token }));
    const job = () => get<Record<string, string>>(`${worker.url}/token?owner=bob&providers=di,cnblogs`);
    const jobCalls = () => get<Record<string, Sample>>(`${worker.url}/run?owner=bob&providers=di,cnblogs`);
    const [webAnswers, jobTokens, jobRuns] = await Promise.all([
      Promise.all(
        Array.from({ length: 10 }, (_, i) => [
          web(first, appA, i % 2 ? 'di' : 'cnblogs'),
          web(second, appB, i % 2 ? 'di' : 'cnblogs'),
        ]).flat(),
      ),
      Promise.all(Array.from({ length: 5 }, job)),
      Promise.all(Array.from({ length: 5 }, jobCalls)),
    ]);

    expect(webAnswers.filter((a) => a.status !== 200)).toEqual([]);
    for (const run of jobRuns) expect(run).toEqual({ di: { status: 200, user: expect.any(String) }, cnblogs: { status: 200, user: expect.any(String) } });
    for (const s of [di, cnblogs]) {
      expect(s.engine.counters.refresh).toBe(1);
      expect(s.engine.counters.refreshReuse).toBe(0);
    }
    // Everyone, in every process, uses the one refreshed token of each provider.
    const diTokens = new Set([...webAnswers.filter((_, i) => Math.floor(i / 2) % 2 === 1).map((a) => a.token), ...jobTokens.map((t) => t['di'])]);
    const cnblogsTokens = new Set([...webAnswers.filter((_, i) => Math.floor(i / 2) % 2 === 0).map((a) => a.token), ...jobTokens.map((t) => t['cnblogs'])]);
    expect(diTokens.size).toBe(1);
    expect(cnblogsTokens.size).toBe(1);
    const events = await Promise.all([appA, appB, worker].map((p) => get<{ refreshes: number; lockWaits: number; reauthorizations: number }>(`${p.url}/events`)));
    expect(events.reduce((n, e) => n + e.refreshes, 0)).toBe(2);
    expect(events.reduce((n, e) => n + e.reauthorizations, 0)).toBe(0);
    // The lock was really contended across processes.
    expect(events.reduce((n, e) => n + e.lockWaits, 0)).toBeGreaterThan(0);

    // Nobody was logged out: both browsers and the worker go on.
    for (const [browser, app] of [[first, appA], [second, appB]] as const) {
      for (const provider of PROVIDERS) expect((await web(browser, app, provider)).status).toBe(200);
    }
    expect(await get<Record<string, Sample>>(`${worker.url}/run?owner=bob`)).toEqual({
      di: { status: 200, user: expect.any(String) },
      cnblogs: { status: 200, user: expect.any(String) },
      sop: { status: 200, user: expect.any(String) },
    });
  });
});
