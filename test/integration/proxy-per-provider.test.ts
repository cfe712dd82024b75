import { createHash, generateKeyPairSync } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Express } from 'express';
import { DiStrategy, ErrorCodes, type Keeper } from '../../src/index';
import { startCnblogsSandbox, startDiSandbox, type CnblogsSandbox, type DiSandbox, type RunningSopSandbox } from '../../src/sandbox/index';
import { createTestApp, login, type TestApp } from '../helpers/app';
import { cnblogsSandboxStrategy, sopSandboxStrategy, startSopSandboxForApp } from '../helpers/providers';
import {
  cookieRoute,
  ESCAPE_VECTORS,
  expectRequestHygiene,
  expectResponseHygiene,
  gate,
  HOSTILE_REQUEST_HEADERS as HOSTILE_HOP_AND_ORIGIN_HEADERS,
  HOSTILE_RESPONSE_HEADERS,
  hostileRedirect,
  NEVER_UPSTREAM as NEVER_UPSTREAM_COMMON,
  raw,
  sessionCookie,
  startRecorder,
  type Agent,
  type Recorder,
  type Seen,
} from '../helpers/proxy';

/**
 * The proxy of each built-in provider (di, cnblogs, sop), mounted as the example app
 * mounts it: credential placement, retry after a rejected token, streaming (or, for sop,
 * the bounded buffering its signature check needs), header hygiene and the host-escape
 * vectors. The generic mechanism is covered by proxy.test.ts; di and sop credential
 * placement and retry by proxy-providers.test.ts.
 *
 * Where a sandbox does not record headers, or to stream, a "front" server of our own sits
 * between the proxy and the sandbox: it records every request as received and forwards it
 * to the sandbox, unless a test route answers it itself.
 */

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

interface Front extends Recorder {
  /** Added to (or replacing) the headers of every forwarded answer while set. */
  extraResponseHeaders: Record<string, string | string[]> | undefined;
}

/** A recording forwarder in front of `target` (plain node:http, body buffered then replayed). */
function startFront(target: () => string): Promise<Front> {
  return startRecorder<Pick<Front, 'extraResponseHeaders'>>({ extraResponseHeaders: undefined }, (req, res, seen, front) => {
    const to = new URL(target());
    const headers: IncomingHttpHeaders = { ...req.headers, host: to.host, 'content-length': String(seen.body.length) };
    delete headers['transfer-encoding'];
    delete headers['connection'];
    const out = httpRequest({ host: to.hostname, port: to.port, method: seen.method, path: seen.url, headers }, (answer) => {
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && name !== 'connection' && name !== 'keep-alive' && name !== 'transfer-encoding') res.setHeader(name, value);
      }
      for (const [name, value] of Object.entries(front.extraResponseHeaders ?? {})) res.setHeader(name, value);
      res.writeHead(answer.statusCode ?? 502);
      answer.pipe(res);
    });
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    out.end(seen.body);
  });
}

async function storedTokens(t: TestApp, agent: Agent, provider: string): Promise<{ accessToken: string; refreshToken: string | null }> {
  const stored = (await t.store.get(await t.ownerOf(agent), provider))!.tokenSet;
  return { accessToken: stored.accessToken, refreshToken: stored.refreshToken ?? null };
}

/** The proxy of `name` at `/api/<name>`, as the example app mounts it, plus `/small/<name>` with `options`. */
function mountProxy(name: string, small: Parameters<Keeper['proxy']>[1] = {}) {
  return (app: Express, keeper: Keeper) => {
    cookieRoute(app);
    app.use(`/api/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name));
    app.use(`/small/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name, small));
  };
}

/** Request headers that must not reach the provider: the common ones, plus the browser's page and the client's address. */
const HOSTILE_REQUEST_HEADERS: Record<string, string> = { ...HOSTILE_HOP_AND_ORIGIN_HEADERS, referer: 'https://app.example/page', 'x-real-ip': '203.0.113.7' };
const NEVER_UPSTREAM = [...NEVER_UPSTREAM_COMMON, 'referer', 'x-real-ip'];

/** A deterministic byte pattern of `size` bytes, different per `seed`. */
function pattern(size: number, seed: string): Buffer {
  const block = Buffer.from(`${seed}:${'0123456789abcdef'.repeat(4)}\n`);
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += block.length) block.copy(out, at, 0, Math.min(block.length, size - at));
  return out;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const STREAM_FIRST = pattern(2 * 1024 * 1024, 'first');
/** The most a chunk's end can be held back: shorter than the longest credential form (an Authorization header value). */
const SCRUB_HOLD = 256;
const STREAM_REST = pattern(2 * 1024 * 1024, 'rest');

/**
 * Serves a large answer in two parts: the first part, then (only once the test opens
 * `release`) the rest. `authorized` checks the request's credentials the provider's way.
 */
function largeAnswerRoute(front: Front, path: string, authorized: (seen: Seen) => boolean, release: Promise<void>, state: { released: boolean }) {
  front.route = (_req, res, seen) => {
    if (new URL(seen.url, 'http://front.invalid').pathname !== path) return false;
    if (!authorized(seen)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end(JSON.stringify({ error: 'invalid_token' }));
      return true;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(STREAM_FIRST.length + STREAM_REST.length) });
    res.write(STREAM_FIRST);
    front.hanging.push(res);
    void release.then(() => {
      state.released = true;
      res.end(STREAM_REST);
    });
    return true;
  };
}

/**
 * GETs `path` and proves the answer streams: every byte of the first part reaches the
 * client while the upstream still holds the rest back, then the whole answer arrives intact.
 */
async function expectStreamed(t: TestApp, cookie: string, path: string, release: { open: (v: void) => void }, state: { released: boolean }): Promise<void> {
  const firstPart = gate<number>();
  const ended = gate<{ status: number; body: Buffer }>();
  const { hostname, port } = new URL(t.url);
  const client = httpRequest({ host: hostname, port, path, headers: { cookie } }, (res) => {
    const chunks: Buffer[] = [];
    let received = 0;
    res.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received >= STREAM_FIRST.length - SCRUB_HOLD) firstPart.open(received);
    });
    res.on('end', () => ended.open({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
  });
  client.on('error', () => undefined);
  client.end();
  // The first part, and nothing more: the upstream has not written the rest yet. (The credential
  // scrubber may hold back a chunk's last bytes when they could begin a secret, until the next chunk.)
  const early = await firstPart.promise;
  expect(early).toBeGreaterThanOrEqual(STREAM_FIRST.length - SCRUB_HOLD);
  expect(early).toBeLessThanOrEqual(STREAM_FIRST.length);
  expect(state.released).toBe(false);
  release.open();
  const done = await ended.promise;
  expect(state.released).toBe(true);
  expect(done.status).toBe(200);
  expect(done.body.length).toBe(STREAM_FIRST.length + STREAM_REST.length);
  expect(sha256(done.body)).toBe(sha256(Buffer.concat([STREAM_FIRST, STREAM_REST])));
}

// ---------------------------------------------------------------------------
// cnblogs
// ---------------------------------------------------------------------------

describe('proxy: cnblogs', () => {
  let t: TestApp;
  let sandbox: CnblogsSandbox;
  let front: Front;
  beforeEach(async () => {
    front = await startFront(() => sandbox.url);
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startCnblogsSandbox({ autoApprove: true })),
      strategy: (s) => cnblogsSandboxStrategy(s.url, { apiURL: `${front.url}/api` }),
      // The small mount's limit is far below the streamed answer: a streamed answer is never read whole.
      routes: mountProxy('cnblogs', { maxBufferedResponseBytes: 64 * 1024 }),
    });
  });
  afterEach(async () => {
    await t.close();
    await front.close();
  });

  it('the API sees Authorization: Bearer <stored access token>, not the app cookie nor the app Authorization', async () => {
    const agent = t.agent();
    await login(agent, '/auth/cnblogs');
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'cnblogs');
    expect(sandbox.issued.at(-1)!.accessToken).toBe(accessToken);
    const res = await agent.get('/api/cnblogs/users').set('authorization', 'Bearer the-apps-own-token').expect(200);
    expect(res.body).toMatchObject({ DisplayName: 'Alice 博客', BlogApp: 'alice-sandbox' });
    expect(front.seen).toHaveLength(1);
    const seen = front.seen[0]!;
    expect(seen.url).toBe('/api/users');
    expect(seen.headers.authorization).toBe(`Bearer ${accessToken}`);
    expect(seen.headers.cookie).toBeUndefined();
    expect(JSON.stringify(seen.headers)).not.toContain(cookie.split('=')[1]!);
    expect(JSON.stringify(seen.headers)).not.toContain('the-apps-own-token');
    expect(seen.url).not.toContain(accessToken);
    expect(JSON.stringify(res.headers)).not.toContain(accessToken);
    expect(t.sandbox.engine.counters.api).toBe(1);
    expect(t.sandbox.engine.counters.refresh).toBe(0);
  });

  it('a rejected token (401): exactly one refresh, the call retried with the new token, 200', async () => {
    const agent = t.agent();
    await login(agent, '/auth/cnblogs');
    const before = await storedTokens(t, agent, 'cnblogs');
    t.sandbox.engine.expireAccessTokens(); // the provider stops accepting it before our expiry says so
    const res = await agent.get('/api/cnblogs/blogs/alice-sandbox/posts').query({ pageIndex: '1' }).expect(200);
    expect(res.body).toEqual([expect.objectContaining({ BlogApp: 'alice-sandbox', Title: 'Hello from the sandbox' })]);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(t.sandbox.engine.counters.api).toBe(2);
    const after = await storedTokens(t, agent, 'cnblogs');
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(front.seen.map((s) => s.headers.authorization)).toEqual([`Bearer ${before.accessToken}`, `Bearer ${after.accessToken}`]);
    expect(front.seen.map((s) => s.url)).toEqual(['/api/blogs/alice-sandbox/posts?pageIndex=1', '/api/blogs/alice-sandbox/posts?pageIndex=1']);
    // The refreshed token is used from now on.
    await agent.get('/api/cnblogs/users').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(front.seen.at(-1)!.headers.authorization).toBe(`Bearer ${after.accessToken}`);
  });

  it('streams a large answer: the first 2 MiB reach the client before the API writes the rest', async () => {
    const agent = t.agent();
    await login(agent, '/auth/cnblogs');
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'cnblogs');
    const release = gate();
    const state = { released: false };
    largeAnswerRoute(front, '/api/export', (seen) => seen.headers.authorization === `Bearer ${accessToken}`, release.promise, state);
    await expectStreamed(t, cookie, '/small/cnblogs/export', release, state);
    expect(front.seen.at(-1)!.url).toBe('/api/export');
  });

  it('header hygiene: no cookie, hop-by-hop or network headers upstream; no Set-Cookie or hop-by-hop back', async () => {
    const agent = t.agent();
    await login(agent, '/auth/cnblogs');
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'cnblogs');
    front.extraResponseHeaders = HOSTILE_RESPONSE_HEADERS;
    const res = await raw(t.url, '/api/cnblogs/users?x=1', {
      headers: { ...HOSTILE_REQUEST_HEADERS, cookie, authorization: 'Basic YXBwOmFwcC1zZWNyZXQ=', 'x-custom': 'passes', accept: 'application/json' },
      method: 'POST',
      body: 'hello',
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ BlogApp: 'alice-sandbox' });
    expectResponseHygiene(res.headers);
    expectRequestHygiene(front.seen.at(-1)!, { url: '/api/users?x=1', authorization: `Bearer ${accessToken}`, host: new URL(front.url).host, cookie, never: NEVER_UPSTREAM });
  });

  it('header hygiene: a redirect under the API base is rewritten under the mount, its cookies dropped', async () => {
    front.route = (req, res) => {
      if (req.url !== '/api/moved') return false;
      return hostileRedirect(res, `${front.url}/api/blogs/alice-sandbox/posts?pageIndex=2`);
    };
    const agent = t.agent();
    await login(agent, '/auth/cnblogs');
    const res = await agent.get('/api/cnblogs/moved').redirects(0).expect(302);
    expectResponseHygiene(res.headers);
    expect(res.headers['location']).toBe('/api/cnblogs/blogs/alice-sandbox/posts?pageIndex=2');
  });

  describe('never leaves the API host and base path', () => {
    it.each(ESCAPE_VECTORS)('refuses %s with 400 JSON; neither the API nor the sandbox is called', async (_name, rest) => {
      const agent = t.agent();
      await login(agent, '/auth/cnblogs');
      const cookie = await sessionCookie(agent);
      const before = { ...t.sandbox.engine.counters };
      const seenBefore = front.seen.length;
      const res = await raw(t.url, `/api/cnblogs${rest}`, { headers: { cookie, accept: 'application/json' } });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'cnblogs' });
      expect(front.seen).toHaveLength(seenBefore);
      expect(t.sandbox.engine.counters).toEqual(before);
    });

    it('refuses an absolute-form request target', async () => {
      const agent = t.agent();
      await login(agent, '/auth/cnblogs');
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, 'http://evil.example/api/cnblogs/users', { headers: { cookie } });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'cnblogs' });
      expect(front.seen).toHaveLength(0);
    });

    it('accepts an ordinary path, with a URL-looking query', async () => {
      const agent = t.agent();
      await login(agent, '/auth/cnblogs');
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, '/api/cnblogs/blogs/alice-sandbox/posts?pageIndex=1&next=http://x.example/../y', { headers: { cookie } });
      expect(res.status).toBe(200);
      expect(front.seen.at(-1)!.url).toBe('/api/blogs/alice-sandbox/posts?pageIndex=1&next=http://x.example/../y');
    });
  });
});

// ---------------------------------------------------------------------------
// di
// ---------------------------------------------------------------------------

describe('proxy: di', () => {
  let t: TestApp;
  let sandbox: DiSandbox;
  let front: Front;
  beforeEach(async () => {
    // di's baseURL serves both /oauth and /api: the front forwards both to the sandbox, and answers test routes itself.
    front = await startFront(() => sandbox.url);
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startDiSandbox({ autoApprove: true })),
      strategy: () => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: front.url }),
      routes: mountProxy('di', { maxBufferedResponseBytes: 64 * 1024 }),
    });
  });
  afterEach(async () => {
    await t.close();
    await front.close();
  });

  it('streams a large answer: the first 2 MiB reach the client before the API writes the rest', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'di');
    const release = gate();
    const state = { released: false };
    const authorized = (seen: Seen) => {
      const query = new URL(seen.url, 'http://front.invalid').searchParams;
      return query.get('access_token') === accessToken && query.get('client_id') === 'sandbox-client' && seen.headers.authorization === undefined;
    };
    largeAnswerRoute(front, '/api/patent/export', authorized, release.promise, state);
    await expectStreamed(t, cookie, '/small/di/patent/export?express=x', release, state);
  });

  it('header hygiene: credentials only as parameters; no app Authorization, cookie, hop-by-hop or network headers upstream', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'di');
    front.seen.length = 0;
    front.extraResponseHeaders = HOSTILE_RESPONSE_HEADERS;
    const res = await raw(t.url, '/api/di/patent/search/expression?express=x', {
      method: 'POST',
      body: 'hello',
      headers: {
        ...HOSTILE_REQUEST_HEADERS,
        cookie,
        // The app's own bearer token must not reach di (which would read a Bearer header first).
        authorization: 'Bearer the-apps-own-token',
        'content-type': 'text/plain',
        'x-custom': 'passes',
        accept: 'application/json',
      },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ errorCode: '000000' });
    expectResponseHygiene(res.headers);
    expect(front.seen).toHaveLength(1);
    const seen = front.seen[0]!;
    const url = new URL(seen.url, 'http://front.invalid');
    expect(url.pathname).toBe('/api/patent/search/expression');
    expect(Object.fromEntries(url.searchParams)).toEqual({ express: 'x', client_id: 'sandbox-client', access_token: accessToken, scope: 'read_cn' });
    expect(seen.body.toString()).toBe('hello');
    expect(seen.headers['content-length']).toBe('5');
    expect(seen.headers['transfer-encoding']).toBeUndefined();
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers.host).toBe(new URL(front.url).host);
    expect(seen.headers['x-custom']).toBe('passes');
    for (const name of NEVER_UPSTREAM) expect(seen.headers[name]).toBeUndefined();
    expect(seen.headers['keep-alive']).not.toBe('timeout=5');
    expect(JSON.stringify(seen.headers)).not.toContain(cookie.split('=')[1]!);
    expect(JSON.stringify(seen.headers)).not.toContain(accessToken);
    expect(sandbox.diCounters.apiCredentialsInHeader).toBe(0);
    expect(sandbox.diCounters.apiCredentialsInQuery).toBe(1);
    expect(JSON.stringify(res.headers)).not.toContain(accessToken);
  });

  it('parameter hygiene: client_id, access_token and scope sent by the caller are dropped, not placed first', async () => {
    const agent = t.agent();
    await login(agent, '/auth/di');
    const { accessToken } = await storedTokens(t, agent, 'di');
    front.seen.length = 0;
    await agent
      .get('/api/di/patent/search/expression')
      .query({ access_token: 'forged', client_id: 'other-client', scope: 'read_ep', express: '华为' })
      .expect(200);
    const query = new URL(front.seen[0]!.url, 'http://front.invalid').searchParams;
    expect(query.getAll('access_token')).toEqual([accessToken]);
    expect(query.getAll('client_id')).toEqual(['sandbox-client']);
    expect(query.getAll('scope')).toEqual(['read_cn']);
    expect(query.get('express')).toBe('华为');
    expect(sandbox.lastApiRequest!.query).toMatchObject({ access_token: accessToken, client_id: 'sandbox-client', scope: 'read_cn' });
  });

  it('header hygiene: a redirect under the API base is rewritten under the mount, its cookies dropped', async () => {
    front.route = (req, res) => {
      if (new URL(req.url ?? '/', 'http://front.invalid').pathname !== '/api/moved') return false;
      return hostileRedirect(res, `${front.url}/api/patent/search/expression?page=2`);
    };
    const agent = t.agent();
    await login(agent, '/auth/di');
    const res = await agent.get('/api/di/moved').redirects(0).expect(302);
    expectResponseHygiene(res.headers);
    expect(res.headers['location']).toBe('/api/di/patent/search/expression?page=2');
  });

  it('a redirect repeating the request query never hands the credentials the binding added back to the browser', async () => {
    front.route = (req, res) => {
      const u = new URL(req.url ?? '/', 'http://front.invalid');
      if (u.pathname !== '/api/slash/') return false;
      res.setHeader('location', `${front.url}/api/slash${u.search}`);
      res.setHeader('x-echo', `token=${u.searchParams.get('access_token')}`);
      res.writeHead(302);
      res.end();
      return true;
    };
    const agent = t.agent();
    await login(agent, '/auth/di');
    const { accessToken } = await storedTokens(t, agent, 'di');
    const res = await agent.get('/api/di/slash/').query({ page: '2' }).redirects(0).expect(302);
    expect(res.headers['location']).toBe('/api/di/slash?page=2');
    expect(res.headers['x-echo']).toBeUndefined();
    expect(JSON.stringify(res.headers)).not.toContain(accessToken);
  });

  describe('never leaves the API host and base path', () => {
    it.each(ESCAPE_VECTORS)('refuses %s with 400 JSON; the API is never called', async (_name, rest) => {
      const agent = t.agent();
      await login(agent, '/auth/di');
      const cookie = await sessionCookie(agent);
      const before = { ...t.sandbox.engine.counters };
      const seenBefore = front.seen.length;
      const res = await raw(t.url, `/api/di${rest}`, { headers: { cookie, accept: 'application/json' } });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'di' });
      expect(front.seen).toHaveLength(seenBefore);
      expect(t.sandbox.engine.counters).toEqual(before);
    });

    it('refuses an absolute-form request target', async () => {
      const agent = t.agent();
      await login(agent, '/auth/di');
      const cookie = await sessionCookie(agent);
      const seenBefore = front.seen.length;
      const res = await raw(t.url, 'http://evil.example/api/di/patent/search/expression', { headers: { cookie } });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'di' });
      expect(front.seen).toHaveLength(seenBefore);
      expect(t.sandbox.engine.counters.api).toBe(0);
    });

    it('accepts an ordinary path, with a URL-looking query', async () => {
      const agent = t.agent();
      await login(agent, '/auth/di');
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, '/api/di/patent/search/expression?express=%E5%8D%8E%E4%B8%BA&next=http://x.example/../oauth/token', { headers: { cookie } });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toMatchObject({ errorCode: '000000', total: 2 });
      expect(sandbox.lastApiRequest!.path).toBe('/api/patent/search/expression');
    });
  });
});

// ---------------------------------------------------------------------------
// sop
// ---------------------------------------------------------------------------

describe('proxy: sop', () => {
  let t: TestApp;
  let sandbox: RunningSopSandbox;
  let front: Front;
  const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const SMALL_LIMIT = 4096;
  beforeEach(async () => {
    // The front stands in for the gateway (token and business calls); the auth pages are the sandbox's own.
    front = await startFront(() => sandbox.url);
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startSopSandboxForApp(appKeys)),
      strategy: (s) => sopSandboxStrategy(s as RunningSopSandbox, appKeys, `${front.url}/`),
      routes: mountProxy('sop', { maxBufferedResponseBytes: SMALL_LIMIT }),
    });
  });
  afterEach(async () => {
    await t.close();
    await front.close();
  });

  async function loginSop(agent: Agent): Promise<void> {
    await login(agent, '/auth/sop');
    front.seen.length = 0;
  }

  it('an answer larger than maxBufferedResponseBytes is refused with 502, never passed through unverified', async () => {
    const agent = t.agent();
    await loginSop(agent);
    const big = 'g'.repeat(2 * SMALL_LIMIT);
    const requestsBefore = sandbox.gatewayCounters.requests;
    const res = await agent.post('/small/sop/goods.get').send({ goods_name: big }).expect(502);
    expect(res.headers['content-type']).toMatch(/json/);
    expect(res.body).toMatchObject({ error: ErrorCodes.API_UPSTREAM_FAILED, provider: 'sop' });
    expect(res.text).not.toContain(big);
    // The gateway did answer, with a good signature: the size alone made it unreadable.
    expect(sandbox.gatewayCounters.requests).toBe(requestsBefore + 1);
    expect(sandbox.lastGatewayResponse!.length).toBeGreaterThan(SMALL_LIMIT);
    expect(sandbox.lastGatewayResponse).toContain(big);
    expect(t.sandbox.engine.counters.refresh).toBe(0);

    // The same mount passes a small answer, and the default limit passes the big one, verified.
    const small = await agent.post('/small/sop/goods.get').send({ goods_name: 'iphone6' }).expect(200);
    expect(small.body).toMatchObject({ code: '10000', name: 'iphone6' });
    const whole = await agent.post('/api/sop/goods.get').send({ goods_name: big }).expect(200);
    expect(whole.body).toMatchObject({ code: '10000', name: big });
    expect(whole.body.sign).toBeUndefined();
  });

  it('header hygiene: the gateway gets only the signed form (nothing of the incoming request\'s headers)', async () => {
    const agent = t.agent();
    await loginSop(agent);
    const cookie = await sessionCookie(agent);
    const { accessToken } = await storedTokens(t, agent, 'sop');
    front.extraResponseHeaders = HOSTILE_RESPONSE_HEADERS;
    const res = await raw(t.url, '/api/sop/goods.get', {
      method: 'POST',
      body: '{"goods_name":"hygiene"}',
      headers: {
        ...HOSTILE_REQUEST_HEADERS,
        cookie,
        authorization: 'Bearer the-apps-own-token',
        'content-type': 'application/json',
        'x-custom': 'not-for-the-gateway',
        accept: 'application/json',
      },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toMatchObject({ code: '10000', name: 'hygiene', owner_user_id: '1001' });
    expectResponseHygiene(res.headers);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['content-length']).toBe(String(Buffer.byteLength(res.text)));

    expect(front.seen).toHaveLength(1);
    const seen = front.seen[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/');
    const names = Object.keys(seen.headers).filter((name) => name !== 'connection').sort();
    expect(names).toEqual(['accept', 'accept-encoding', 'content-length', 'content-type', 'host']);
    expect(seen.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(seen.headers['accept-encoding']).toBe('identity');
    expect(seen.headers.host).toBe(new URL(front.url).host);
    expect(seen.headers['content-length']).toBe(String(seen.body.length));
    expect(seen.headers.connection).not.toMatch(/x-hop-named/);
    const form = new URLSearchParams(seen.body.toString());
    expect(form.get('app_auth_token')).toBe(accessToken);
    expect(JSON.parse(form.get('biz_content')!)).toEqual({ goods_name: 'hygiene' });
    expect(seen.body.toString()).not.toContain(cookie.split('=')[1]!);
    expect(seen.body.toString()).not.toContain('the-apps-own-token');
  });

  describe('never leaves the gateway', () => {
    it.each(ESCAPE_VECTORS)('refuses %s with 400 JSON; the gateway is never called', async (_name, rest) => {
      const agent = t.agent();
      await loginSop(agent);
      const cookie = await sessionCookie(agent);
      const before = { ...t.sandbox.engine.counters };
      const requestsBefore = sandbox.gatewayCounters.requests;
      const res = await raw(t.url, `/api/sop${rest}`, {
        method: 'POST',
        body: '{}',
        headers: { cookie, accept: 'application/json', 'content-type': 'application/json' },
      });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'sop' });
      expect(front.seen).toHaveLength(0);
      expect(sandbox.gatewayCounters.requests).toBe(requestsBefore);
      expect(t.sandbox.engine.counters).toEqual(before);
    });

    it('refuses an absolute-form request target', async () => {
      const agent = t.agent();
      await loginSop(agent);
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, 'http://evil.example/api/sop/goods.get', {
        method: 'POST',
        body: '{}',
        headers: { cookie, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'sop' });
      expect(front.seen).toHaveLength(0);
    });

    it('accepts a method name, with a query', async () => {
      const agent = t.agent();
      await loginSop(agent);
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, '/api/sop/goods.get?version=1.0&next=http://x.example/../y', {
        method: 'POST',
        body: '{"goods_name":"ok"}',
        headers: { cookie, 'content-type': 'application/json' },
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.text)).toMatchObject({ code: '10000', name: 'ok' });
      expect(sandbox.lastGatewayRequest).toMatchObject({ method: 'goods.get', version: '1.0' });
      expect(front.seen.map((s) => s.url)).toEqual(['/']);
    });
  });
});
