// Starting the pieces of a figure: sandbox, upstream, and servers each with a Redis of their own.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { buildDir } from './build.mjs';
import { get, login } from './load.mjs';
import { cpuMicros, placement, spawnNode } from './proc.mjs';
import { startRedis } from './redis.mjs';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
export const SERVERS = {
  app: here('../servers/app.mjs'),
  sandbox: here('../servers/sandbox.mjs'),
  upstream: here('../servers/upstream.mjs'),
  transport: here('../servers/transport.mjs'),
};

export const TOKEN_KEY = randomBytes(32).toString('base64');
export const SESSION_SECRET = randomBytes(24).toString('base64');

export async function startSandbox(settings = {}) {
  const proc = await spawnNode(SERVERS.sandbox, { kind: 'sandbox', settings, keeperDir: buildDir() }, { core: placement.loadCore });
  return { ...proc, url: proc.info.url, counters: () => proc.ask('counters') };
}

export async function startUpstream() {
  const proc = await spawnNode(SERVERS.upstream, { kind: 'upstream' }, { core: placement.loadCore });
  return { ...proc, url: proc.info.url, connections: () => proc.ask('connections') };
}

/**
 * One server of `kind` on the server core with its own redis-server (or `redis` when shared,
 * as the storm's instances share one). `loginAs`: follow a real login and keep the cookie.
 */
export async function startApp(kind, { sandbox, upstream, redis, login: doLogin = true } = {}) {
  const ownRedis = redis ? null : await startRedis();
  const r = redis ?? ownRedis;
  const proc = await spawnNode(SERVERS.app, {
    kind,
    redisUrl: r.url,
    sandboxUrl: sandbox?.url,
    upstreamUrl: upstream?.url,
    tokenKey: TOKEN_KEY,
    sessionSecret: SESSION_SECRET,
    keeperDir: buildDir(),
  });
  const app = {
    kind,
    url: proc.info.url,
    pid: proc.pid,
    redis: r,
    proc,
    cookie: '',
    cpu() {
      try {
        return cpuMicros(proc.pid);
      } catch {
        throw new Error(`the ${kind} server (pid ${proc.pid}) is gone: exit ${proc.child.exitCode ?? proc.child.signalCode}`);
      }
    },
    requests: () => proc.ask('requests'),
    async stop() {
      await proc.stop();
      if (ownRedis) await ownRedis.stop();
    },
  };
  if (doLogin && kind !== 'raw' && kind !== 'express') {
    const start = kind === 'session' ? `${app.url}/login` : `${app.url}/auth/example?returnTo=/me`;
    app.cookie = (await login(start)).cookie;
    const check = await get(`${app.url}/me`, { headers: { cookie: app.cookie, accept: 'application/json' } });
    if (check.status !== 200) throw new Error(`${kind}: GET /me after login answered ${check.status} ${check.body}`);
  }
  return app;
}
