// Benchmark: what the guard (token read + decrypt + freshness check) and a refresh storm cost.
// Run: npm run build && node bench/guard.mjs [requests=20000] [concurrency=32]
// Starts its own redis-server on a free port (never the machine's shared 6379) and a sandbox provider.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import express from 'express';
import session from 'express-session';
import passport from 'passport';
import { RedisStore } from 'connect-redis';
import { Redis } from 'ioredis';
import { defineProvider, MemoryBackend, OAuthKeeperStrategy, oauthKeeper, RedisBackend, TokenStore } from 'oauth-keeper';
import { startOAuth2Sandbox } from 'oauth-keeper/sandbox';
import http from 'node:http';

/** A tiny keep-alive client: { statusCode, headers } after reading the whole body. */
function request(url, { headers = {}, dispatcher } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: dispatcher }, (res) => {
      res.resume();
      res.on('end', () => resolve({ statusCode: res.statusCode, headers: res.headers, body: { dump: async () => undefined } }));
    });
    req.on('error', reject);
  });
}

const TOTAL = Number(process.argv[2] ?? 20000);
const CONCURRENCY = Number(process.argv[3] ?? 32);

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const client = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 });
  for (;;) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { client, stop: () => child.kill() };
}

async function buildApp(kind, sandbox, redis) {
  const provider = defineProvider({ name: 'example', authorizationURL: `${sandbox.url}/authorize`, tokenURL: `${sandbox.url}/token`, scope: ['read'] });
  const store = new TokenStore({ backend: kind === 'memory' ? new MemoryBackend() : new RedisBackend({ client: redis }), encryptionKeys: [randomBytes(32)], prefix: `bench-${kind}:` });
  const pp = new passport.Passport();
  pp.serializeUser((u, d) => d(null, u));
  pp.deserializeUser((u, d) => d(null, u));
  const keeper = oauthKeeper({ passport: pp, store, strategies: [new OAuthKeeperStrategy(provider, { clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/example/callback' })] });
  const app = express();
  app.use(session({ secret: 's', resave: false, saveUninitialized: false, ...(kind === 'memory' ? {} : { store: new RedisStore({ client: redis, prefix: `bench-${kind}:sess:` }) }) }));
  app.use(pp.initialize());
  app.use(keeper.middleware());
  app.get('/plain', (_req, res) => res.json({ ok: true }));
  app.get('/guarded', keeper.ensureAuthorized('example', { unauthorized: 'status' }), (req, res) => res.json({ ok: req.oauthToken.scope }));
  const server = await new Promise((r) => {
    const s = app.listen(0, '127.0.0.1', () => r(s));
  });
  return { url: `http://127.0.0.1:${server.address().port}`, server, keeper, store };
}

async function login(url, dispatcher) {
  let cookie = '';
  const keep = (res) => {
    const set = res.headers['set-cookie'];
    if (set) cookie = (Array.isArray(set) ? set : [set]).map((c) => c.split(';')[0]).join('; ');
  };
  const start = await request(`${url}/auth/example`, { dispatcher });
  keep(start);
  await start.body.dump();
  const atProvider = await fetch(start.headers.location, { redirect: 'manual' });
  const cb = new URL(atProvider.headers.get('location'));
  const done = await request(`${url}${cb.pathname}${cb.search}`, { headers: { cookie }, dispatcher });
  keep(done);
  await done.body.dump();
  return cookie;
}

async function load(url, path, cookie, dispatcher, total = TOTAL, concurrency = CONCURRENCY) {
  const latencies = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        const t0 = performance.now();
        const res = await request(`${url}${path}`, { headers: { cookie, accept: 'application/json' }, dispatcher });
        await res.body.dump();
        if (res.statusCode !== 200) failures += 1;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))].toFixed(2);
  return { rps: Math.round(latencies.length / seconds), p50: pct(50), p99: pct(99), failures };
}

const sandbox = await startOAuth2Sandbox({ autoApprove: true });
const redis = await startRedis();
const dispatcher = new http.Agent({ keepAlive: true, maxSockets: 512 });
console.log(`node ${process.version}, ${TOTAL} requests, concurrency ${CONCURRENCY}`);
for (const kind of ['memory', 'redis']) {
  const { url, server, store } = await buildApp(kind, sandbox, redis.client);
  const cookie = await login(url, dispatcher);
  await load(url, '/guarded', cookie, dispatcher, 2000); // warm-up
  const plain = await load(url, '/plain', cookie, dispatcher);
  const guarded = await load(url, '/guarded', cookie, dispatcher);
  console.log(`${kind.padEnd(6)} session + no guard : ${String(plain.rps).padStart(6)} req/s  p50 ${plain.p50} ms  p99 ${plain.p99} ms  failures ${plain.failures}`);
  console.log(`${kind.padEnd(6)} session + guard    : ${String(guarded.rps).padStart(6)} req/s  p50 ${guarded.p50} ms  p99 ${guarded.p99} ms  failures ${guarded.failures}`);

  // Refresh storm: 500 concurrent requests on an expired token in one process.
  const keys = kind === 'redis' ? await redis.client.keys('bench-redis:tok:*') : null;
  const owner = keys ? /\{(.+)\}/.exec(keys[0])[1] : null;
  if (owner) {
    const stored = await store.get(owner, 'example');
    await store.put(owner, 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation);
    const before = sandbox.engine.counters.refresh;
    const storm = await load(url, '/guarded', cookie, dispatcher, 500, 500);
    console.log(`${kind.padEnd(6)} refresh storm      : 500 concurrent on an expired token -> ${sandbox.engine.counters.refresh - before} refresh, p50 ${storm.p50} ms  p99 ${storm.p99} ms  failures ${storm.failures}`);
  }
  server.closeAllConnections();
  server.close();
}
dispatcher.destroy();
await sandbox.close();
redis.client.disconnect();
redis.stop();
