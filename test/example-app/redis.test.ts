import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startDiSandbox, type DiSandbox } from '../../src/sandbox/index';
import { CookieClient } from '../helpers/browser';
import { testRedisPort } from '../helpers/app';
import { startExampleApp } from '../helpers/processes';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster';

async function startApp(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const { child, port, output } = await startExampleApp(env);
  return { child, url: `http://127.0.0.1:${port}`, output };
}

describe.each(['REDIS_URL', 'REDIS_CLUSTER_NODES'] as const)('the example app with %s', (variable) => {
  let sandbox: DiSandbox;
  let cluster: RedisCluster | undefined;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    sandbox = await startDiSandbox({ autoApprove: true });
    if (variable === 'REDIS_CLUSTER_NODES') cluster = await startRedisCluster();
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await sandbox.close();
    await cluster?.stop();
  });

  it('two instances on two ports serve the same logged-in user, configured for a "real" di', async () => {
    const env = {
      [variable]: cluster ? cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',') : `redis://127.0.0.1:${testRedisPort()}`,
      SESSION_SECRET: randomBytes(16).toString('hex'),
      TOKEN_KEYS: `${randomBytes(32).toString('base64')},${randomBytes(32).toString('hex')}`,
      DI_CLIENT_ID: 'sandbox-client',
      DI_CLIENT_SECRET: 'sandbox-secret',
      DI_BASE_URL: sandbox.url,
      JOB_INTERVAL_SECONDS: '3600', // the background job's API calls would add to the counted ones
    };
    const a = await startApp(env);
    const b = await startApp(env);
    children.push(a.child, b.child);
    expect(a.output()).toMatch(variable === 'REDIS_URL' ? /Sessions and tokens in Redis \(REDIS_URL\)/ : /Redis Cluster/);
    expect(a.output()).not.toMatch(/di: sandbox provider/); // di is configured for real
    expect(a.output()).not.toMatch(/TOKEN_KEYS is not set/);

    const browser = new CookieClient();
    const start = await browser.fetch(`${a.url}/auth/di?returnTo=%2F`);
    const location = new URL(start.headers.get('location')!);
    expect(location.origin).toBe(sandbox.url);
    const atProvider = await fetch(location, { redirect: 'manual' });
    const callback = new URL(atProvider.headers.get('location')!);
    expect((await browser.fetch(`${a.url}${callback.pathname}${callback.search}`)).status).toBe(303);

    // The other instance knows the user and calls the API with the shared token.
    const me = await browser.fetch(`${b.url}/me/di`, { headers: { accept: 'application/json' } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ provider: 'di', tokenType: 'bearer', scope: 'read_cn' });
    const api = await browser.fetch(`${b.url}/api/di/patent/search/expression?express=${encodeURIComponent('申请人=(华为)')}`, { headers: { accept: 'application/json' } });
    expect(api.status).toBe(200);
    expect(((await api.json()) as { errorCode: string }).errorCode).toBe('000000');
    expect(sandbox.diCounters.apiCredentialsInQuery).toBe(1);

    // Logging out on B logs out on A too: A refuses the very session cookie it issued.
    const issued = new Map(browser.cookies);
    const out = await browser.fetch(`${b.url}/logout`, { method: 'POST', headers: { origin: b.url, accept: 'application/json' } });
    expect(out.status).toBe(204);
    for (const [k, v] of issued) browser.cookies.set(k, v);
    expect((await browser.fetch(`${a.url}/me/di`, { headers: { accept: 'application/json' } })).status).toBe(401);
  });
});
