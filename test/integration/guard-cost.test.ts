/**
 * What the guarded route costs, counted rather than timed: backend reads per request, and
 * `req.oauthFetch` made only when read. And the store's memo of decrypted values is never
 * more than a memo: across app instances sharing Redis, a token deleted (logout) or rotated
 * (refresh) on one is never served by another afterwards.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import express, { type Request } from 'express';
import type Redis from 'ioredis';
import request from 'supertest';
import { RedisBackend, TokenStore } from '../../src/index';
import { startOAuth2Sandbox, type RunningSandbox } from '../../src/sandbox/index';
import { createTestApp, login, newRedis, testRedisPort, uniquePrefix, type TestApp } from '../helpers/app';
import { CookieClient } from '../helpers/browser';
import { repoRoot, spawnUntil } from '../helpers/processes';

/** What a route saw of `req.oauthFetch` before reading it, and after. */
function fetchState(req: Request): { ownBefore: boolean; type: string; ownAfter: boolean; same: boolean } {
  const ownBefore = Object.prototype.hasOwnProperty.call(req, 'oauthFetch');
  const first = req.oauthFetch;
  return { ownBefore, type: typeof first, ownAfter: Object.prototype.hasOwnProperty.call(req, 'oauthFetch'), same: first === req.oauthFetch };
}

describe('the guarded route: one backend read per request, nothing made that is not used', () => {
  let t: TestApp;
  let reads: jest.SpyInstance;

  beforeAll(async () => {
    t = await createTestApp({
      storage: 'memory',
      routes: (app, keeper) => {
        app.get('/plain', (req, res) => {
          res.json({ own: Object.prototype.hasOwnProperty.call(req, 'oauthFetch') });
        });
        app.get('/state', (req, res) => {
          res.json(fetchState(req));
        });
        app.get('/guard-and-fetch', keeper.ensureAuthorized('example', { unauthorized: 'status' }), async (req, res) => {
          const token = await keeper.token(req, 'example');
          const answer = await req.oauthFetch!('example', '/whoami');
          res.json({ status: answer.status, same: token?.expiresAt?.getTime() === req.oauthToken?.expiresAt?.getTime() });
        });
        app.use('/api', keeper.ensureAuthorized('example', { unauthorized: 'status' }), keeper.proxy('example'));
        const sub = express();
        sub.get('/state', (req, res) => {
          res.json(fetchState(req));
        });
        // After the sub-app passes the request on, the parent app's routes still see req.oauthFetch.
        sub.get('/pass', (_req, _res, next) => next());
        app.use('/sub', sub);
        app.get('/sub/pass', (req, res) => {
          res.json(fetchState(req));
        });
        app.get('/assigned', (req, res) => {
          const stand = async () => new globalThis.Response('stand-in');
          req.oauthFetch = stand;
          res.json({ same: req.oauthFetch === stand });
        });
      },
    });
    reads = jest.spyOn(t.backend, 'read');
  });

  afterAll(async () => {
    reads.mockRestore();
    await t.close();
  });

  it('a route neither guarded nor proxied reads nothing and makes no req.oauthFetch', async () => {
    const agent = t.agent();
    await login(agent);
    reads.mockClear();
    expect((await agent.get('/plain').expect(200)).body).toEqual({ own: false });
    expect(reads).not.toHaveBeenCalled();
  });

  it('req.oauthFetch is made on first read, then the request keeps the same function as its own', async () => {
    const agent = t.agent();
    await login(agent);
    for (const path of ['/state', '/sub/state', '/sub/pass']) {
      expect([path, (await agent.get(path).expect(200)).body]).toEqual([path, { ownBefore: false, type: 'function', ownAfter: true, same: true }]);
    }
    expect((await agent.get('/assigned').expect(200)).body).toEqual({ same: true });
  });

  it('before keeper.middleware() ran, a request has no req.oauthFetch', async () => {
    const app = express();
    app.get('/before', (req, res) => {
      res.json({ type: typeof req.oauthFetch });
    });
    app.use(t.keeper.middleware());
    app.get('/after', (req, res) => {
      res.json({ type: typeof req.oauthFetch });
    });
    expect((await request(app).get('/before').expect(200)).body).toEqual({ type: 'undefined' });
    expect((await request(app).get('/after').expect(200)).body).toEqual({ type: 'function' });
  });

  it('the guard, keeper.token and req.oauthFetch of one request read the token set once', async () => {
    const agent = t.agent();
    await login(agent);
    reads.mockClear();
    expect((await agent.get('/guard-and-fetch').expect(200)).body).toEqual({ status: 200, same: true });
    expect(reads).toHaveBeenCalledTimes(1);
  });

  it('the guard and the proxy of one request read the token set once', async () => {
    const agent = t.agent();
    await login(agent);
    reads.mockClear();
    await agent.get('/api/whoami').expect(200);
    expect(reads).toHaveBeenCalledTimes(1);
  });
});

describe.each(['connect-redis', 'keeper'] as const)('the store reads Redis every time: two instances sharing it, sessions in %s', (sessionStore) => {
  let sandbox: RunningSandbox;
  let redis: Redis;
  const children: ChildProcess[] = [];
  const prefix = uniquePrefix(`cost-${sessionStore}`);
  const tokenKey = randomBytes(32).toString('base64');
  const store = () => new TokenStore({ backend: new RedisBackend({ client: redis }), encryptionKeys: [tokenKey], prefix });
  const hash = (token: string) => createHash('sha256').update(token).digest('hex').slice(0, 16);

  async function instance(): Promise<string> {
    const env = { SANDBOX_URL: sandbox.url, PREFIX: prefix, TOKEN_KEY: tokenKey, SESSION_SECRET: 'shared-secret', REDIS_PORT: String(testRedisPort()), SESSION_STORE: sessionStore };
    const { child, match } = await spawnUntil(process.execPath, [join(repoRoot, 'test/fixtures/instance.mjs')], { env, ready: /ready (\d+)\n/, name: 'instance' });
    children.push(child);
    return `http://127.0.0.1:${match[1]}`;
  }

  async function loginOn(url: string): Promise<{ browser: CookieClient; owner: string }> {
    const browser = new CookieClient();
    const before = new Set(await redis.keys(`${prefix}tok:*`));
    const start = await browser.fetch(`${url}/auth/example`);
    const atProvider = await fetch(start.headers.get('location')!, { redirect: 'manual' });
    const callback = new URL(atProvider.headers.get('location')!);
    expect((await browser.fetch(`${url}${callback.pathname}${callback.search}`)).status).toBe(303);
    const added = (await redis.keys(`${prefix}tok:*`)).filter((k) => !before.has(k));
    expect(added).toHaveLength(1);
    return { browser, owner: /\{(.+)\}/.exec(added[0]!)![1]! };
  }

  const tokenOn = async (browser: CookieClient, url: string) => {
    const answer = await browser.fetch(`${url}/token`, { headers: { accept: 'application/json' } });
    return { status: answer.status, token: answer.status === 200 ? ((await answer.json()) as { token: string }).token : null };
  };

  beforeAll(async () => {
    sandbox = await startOAuth2Sandbox({ autoApprove: true, rotateRefreshTokens: true });
    redis = newRedis();
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await sandbox.close();
    await redis.quit();
  });

  it('a rotation on one instance is served by the other from its next request on; a logout elsewhere ends it at once', async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    const { browser, owner } = await loginOn(a!);
    const first = (await store().get(owner, 'example'))!.tokenSet.accessToken;
    // The other instance reads (and decrypts) the set, twice: the second read is the same value.
    expect(await tokenOn(browser, b!)).toEqual({ status: 200, token: hash(first) });
    expect(await tokenOn(browser, b!)).toEqual({ status: 200, token: hash(first) });

    // Rotation on a: expired, so a's next request refreshes it.
    const stored = (await store().get(owner, 'example'))!;
    await store().put(owner, 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation);
    const rotated = await tokenOn(browser, a!);
    expect(rotated.status).toBe(200);
    expect(rotated.token).not.toBe(hash(first));
    expect(rotated.token).toBe(hash((await store().get(owner, 'example'))!.tokenSet.accessToken));
    expect(await tokenOn(browser, b!)).toEqual(rotated);

    // Logout elsewhere: the set is deleted; the other instance, which read it a moment ago, serves nothing.
    await store().delete(owner, ['example']);
    expect(await tokenOn(browser, b!)).toEqual({ status: 401, token: null });
    expect(await tokenOn(browser, a!)).toEqual({ status: 401, token: null });
  });
});
