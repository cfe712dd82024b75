import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Cluster } from 'ioredis';
import type Redis from 'ioredis';
import { RedisBackend, TokenStore } from '../../src/index';
import { startOAuth2Sandbox, type RunningSandbox } from '../../src/sandbox/index';
import { CookieClient } from '../helpers/browser';
import { newRedis, testRedisPort, uniquePrefix } from '../helpers/app';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster';
import { repoRoot, spawnUntil } from '../helpers/processes';
import { until } from '../helpers/until';

interface Instance {
  child: ChildProcess;
  url: string;
}

async function startInstance(env: Record<string, string>): Promise<Instance> {
  const { child, match } = await spawnUntil(process.execPath, [join(repoRoot, 'test/fixtures/instance.mjs')], { env, ready: /ready (\d+)\n/, name: 'instance' });
  return { child, url: `http://127.0.0.1:${match[1]}` };
}

describe.each(['redis', 'cluster'] as const)('refresh across app instances sharing %s', (storage) => {
  let sandbox: RunningSandbox;
  let cluster: RedisCluster | undefined;
  let redis: Redis | Cluster;
  let instances: Instance[] = [];
  const prefix = uniquePrefix('multi');
  const tokenKey = randomBytes(32).toString('base64');

  beforeAll(async () => {
    sandbox = await startOAuth2Sandbox({ autoApprove: true, rotateRefreshTokens: true, detectRefreshReuse: true });
    if (storage === 'cluster') {
      cluster = await startRedisCluster();
      redis = cluster.client();
    } else {
      redis = newRedis();
    }
  });

  afterEach(() => {
    for (const instance of instances) instance.child.kill('SIGKILL');
    instances = [];
  });

  afterAll(async () => {
    await sandbox.close();
    if (cluster) await cluster.stop();
    else await (redis as Redis).quit();
  });

  function instanceEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      SANDBOX_URL: sandbox.url,
      PREFIX: prefix,
      TOKEN_KEY: tokenKey,
      SESSION_SECRET: 'shared-secret',
      ...(cluster ? { CLUSTER_NODES: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') } : { REDIS_PORT: String(testRedisPort()) }),
      ...extra,
    };
  }

  const store = () => new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [tokenKey], prefix });

  async function loginOn(instance: Instance): Promise<{ browser: CookieClient; owner: string }> {
    const browser = new CookieClient();
    const before = new Set(await keysOf(`${prefix}tok:*`));
    const start = await browser.fetch(`${instance.url}/auth/example`);
    const atProvider = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    const callback = new URL(atProvider.headers.get('location')!);
    expect((await browser.fetch(`${instance.url}${callback.pathname}${callback.search}`)).status).toBe(303);
    const added = (await keysOf(`${prefix}tok:*`)).filter((k) => !before.has(k));
    expect(added).toHaveLength(1);
    const owner = /\{(.+)\}/.exec(added[0]!)![1]!;
    return { browser, owner };
  }

  async function keysOf(pattern: string): Promise<string[]> {
    if (!cluster) return (redis as Redis).keys(pattern);
    const nodes = (redis as Cluster).nodes('master');
    return (await Promise.all(nodes.map((n) => n.keys(pattern)))).flat();
  }

  async function expire(owner: string): Promise<void> {
    const s = store();
    const stored = (await s.get(owner, 'example'))!;
    await s.put(owner, 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation);
  }

  it('200 concurrent requests over 3 processes on an expired token: the token endpoint is called once, all succeed', async () => {
    instances = await Promise.all([0, 1, 2].map(() => startInstance(instanceEnv())));
    const { browser, owner } = await loginOn(instances[0]!);
    await expire(owner);
    sandbox.engine.resetCounters();

    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        browser.fetch(`${instances[i % 3]!.url}/token`, { headers: { accept: 'application/json' } }).then(async (r) => ({ status: r.status, body: (await r.json()) as { token: string; pid: number } })),
      ),
    );
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(sandbox.engine.counters.token).toBe(1);
    expect(sandbox.engine.counters.refresh).toBe(1);
    expect(sandbox.engine.counters.refreshReuse).toBe(0);
    // Every request, in every process, used the one refreshed token.
    expect(new Set(answers.map((a) => a.body.token)).size).toBe(1);
    expect(new Set(answers.map((a) => a.body.pid)).size).toBe(3);
    const events = await Promise.all(instances.map(async (i) => (await fetch(`${i.url}/events`)).json() as Promise<{ refreshes: number }>));
    expect(events.reduce((n, e) => n + e.refreshes, 0)).toBe(1);
  });

  it('a lock holder that dies mid-refresh blocks others only until its lease runs out', async () => {
    instances = await Promise.all([0, 1].map(() => startInstance(instanceEnv({ LOCK_LEASE_MS: '400' }))));
    const [holder, survivor] = instances as [Instance, Instance];
    const { browser, owner } = await loginOn(holder);
    await expire(owner);
    sandbox.engine.resetCounters();

    // The holder's refresh reaches a provider that never answers it (until the test is over).
    let release!: () => void;
    const never = new Promise<void>((r) => (release = r));
    sandbox.engine.injectFault('token', { until: never, status: 503 });
    const doomed = browser.fetch(`${holder.url}/token`, { headers: { accept: 'application/json' } }).catch(() => undefined);
    const lockKey = `${prefix}lock:{${owner}}:example`;
    await until(async () => sandbox.engine.pendingFaults('token') === 0 && (await redis.exists(lockKey)) === 1, 'the holder to take the lock and reach the provider');
    holder.child.kill('SIGKILL');
    await doomed;

    const res = await browser.fetch(`${survivor.url}/token`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(sandbox.engine.counters.refresh).toBe(1);
    expect(sandbox.engine.counters.refreshReuse).toBe(0);
    expect(((await (await fetch(`${survivor.url}/events`)).json()) as { lockWaits: number }).lockWaits).toBeGreaterThanOrEqual(1);
    release();
  });
});
