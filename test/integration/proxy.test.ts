import { request as httpRequest } from 'node:http';
import express from 'express';
import type { Request } from 'express';
import { ErrorCodes, OAuthKeeperStrategy, type Keeper } from '../../src/index';
import { createOAuthFetch } from '../../src/middleware/fetch';
import { ownerOf } from '../../src/passport/session';
import { createProxy } from '../../src/middleware/proxy';
import { createTestApp, login, type TestApp } from '../helpers/app';
import {
  cookieRoute,
  echoProvider,
  escapeVectors,
  expectRequestHygiene,
  expectResponseHygiene,
  gate,
  HOSTILE_REQUEST_HEADERS,
  hostileRedirect,
  json,
  raw,
  sessionCookie,
  startRecorder,
  type Agent,
  type Recorder,
} from '../helpers/proxy';

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

type Upstream = Recorder;

/**
 * A downstream API of our own: records what it receives, accepts the sandbox's access
 * tokens (verified by the sandbox engine, so expiring them there works), echoes.
 */
function startUpstream(verify: () => (token: string | undefined) => boolean): Promise<Upstream> {
  return startRecorder({}, (req, res, seen) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!verify()(token)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end(JSON.stringify({ error: 'invalid_token' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: seen.method, url: seen.url, body: seen.body.toString('utf8'), length: seen.body.length }));
  });
}

async function storedAccessToken(t: TestApp, agent: Agent, provider: string): Promise<string> {
  const owner = ((await agent.get('/_owner').expect(200)).body as { owner: string }).owner;
  const stored = await t.store.get(owner, provider);
  return stored!.tokenSet.accessToken;
}

function testRoutes(app: express.Express): void {
  cookieRoute(app);
  app.get('/_owner', (req, res) => {
    res.json({ owner: ownerOf(req, false) ?? null });
  });
}

/** Answers what an oauthFetch call gave, or the error it threw. */
function fetchRoute(keeper: Keeper, provider: string, input: (req: Request) => string, init?: (req: Request) => RequestInit & { body?: string }) {
  return async (req: Request, res: express.Response) => {
    const oauthFetch = createOAuthFetch(keeper, req);
    try {
      const response = await oauthFetch(provider, input(req), init?.(req));
      res.json({ status: response.status, url: response.url, type: response.headers.get('content-type'), body: await response.text() });
    } catch (error) {
      const e = error as { code?: string; status?: number; message?: string };
      res.status(e.status ?? 500).json({ error: e.code, message: e.message });
    }
  };
}

// ---------------------------------------------------------------------------
// the example provider against the OAuth2 sandbox
// ---------------------------------------------------------------------------

describe('proxy to the example provider (OAuth2 sandbox /api)', () => {
  let t: TestApp;
  beforeEach(async () => {
    t = await createTestApp({
      keeper: { refresh: { maxRetries: 0, retryDelayMs: 1, retryAfterSeconds: 7 } },
      routes: (app, keeper) => {
        testRoutes(app);
        app.use('/api/example', keeper.ensureAuthorized('example', { unauthorized: 'status' }), createProxy(keeper, 'example'));
        // Without the guard, so the proxy's own refresh and error answers show.
        app.use('/raw/example', createProxy(keeper, 'example'));
        app.get('/fetch', fetchRoute(keeper, 'example', (req) => String(req.query['input'])));
      },
    });
  });
  afterEach(async () => {
    await t.close();
  });

  it('forwards under the API base with the session token', async () => {
    const agent = t.agent();
    await login(agent);
    const res = await agent.get('/api/example/things/1?x=1&y=two').expect(200);
    expect(res.body).toMatchObject({ ok: true, method: 'GET', path: '/api/things/1', query: { x: '1', y: 'two' }, user: '1001' });
    expect(t.sandbox.engine.counters.refresh).toBe(0);
  });

  it('a rejected token is refreshed exactly once and the request retried', async () => {
    const agent = t.agent();
    await login(agent);
    t.sandbox.engine.expireAccessTokens();
    const res = await agent.get('/api/example/things').expect(200);
    expect(res.body).toMatchObject({ ok: true, path: '/api/things' });
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(t.sandbox.engine.counters.api).toBe(2);
    // The refreshed token is used from now on: no further refresh.
    await agent.get('/api/example/more').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('an upstream 401 once (injected) gives exactly one refresh and a 200', async () => {
    const agent = t.agent();
    await login(agent);
    t.sandbox.engine.injectFault('api', { status: 401, body: '{"error":"invalid_token"}' });
    await agent.get('/raw/example/things').expect(200);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('without a session token the proxy answers 401 JSON naming the login route', async () => {
    const res = await t.agent().get('/raw/example/things').expect(401);
    expect(res.body).toMatchObject({ error: ErrorCodes.AUTHORIZATION_REQUIRED, provider: 'example', loginUrl: '/auth/example' });
    expect(res.headers['www-authenticate']).toContain('error="authorization_required"');
    expect(t.sandbox.engine.counters.api).toBe(0);
  });

  it('a refused refresh after a rejection answers 401 reauthorization_required', async () => {
    const agent = t.agent();
    await login(agent);
    t.sandbox.engine.expireAccessTokens();
    t.sandbox.engine.injectFault('token', { status: 400, body: '{"error":"invalid_grant"}' });
    const res = await agent.get('/raw/example/things').set('accept', 'application/json').expect(401);
    expect(res.body).toMatchObject({ error: ErrorCodes.REAUTHORIZATION_REQUIRED, provider: 'example' });
    expect(res.headers['www-authenticate']).toContain('error="reauthorization_required"');
    expect(t.sandbox.engine.counters.api).toBe(1);
  });

  it('an expired token that cannot be refreshed now answers 503 with Retry-After', async () => {
    const agent = t.agent();
    await login(agent);
    const owner = ((await agent.get('/_owner').expect(200)).body as { owner: string }).owner;
    const stored = (await t.store.get(owner, 'example'))!;
    await t.store.put(owner, 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 });
    t.sandbox.engine.injectFault('token', { status: 503, times: 5 });
    const res = await agent.get('/raw/example/things').expect(503);
    expect(res.body).toMatchObject({ error: ErrorCodes.REFRESH_UNAVAILABLE, provider: 'example' });
    expect(res.headers['retry-after']).toBe('7');
    expect(t.sandbox.engine.counters.api).toBe(0);
    expect(JSON.stringify(res.body)).not.toContain(stored.tokenSet.accessToken);
  });

  describe('never leaves the API host and base path', () => {
    const vectors = escapeVectors('/raw/example');

    it.each(vectors)('refuses %s with 400 JSON, and the upstream is never called', async (_name, path) => {
      const agent = t.agent();
      await login(agent);
      const cookie = await sessionCookie(agent);
      const before = { ...t.sandbox.engine.counters };
      const res = await raw(t.url, path, { headers: { cookie, accept: 'application/json' } });
      expect(res.status).toBe(400);
      expect(json(res)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID, provider: 'example' });
      expect(t.sandbox.engine.counters).toEqual(before);
    });

    it('refuses an absolute-form request target', async () => {
      const agent = t.agent();
      await login(agent);
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, 'http://evil.example/raw/example/things', { headers: { cookie } });
      expect(res.status).toBe(400);
      expect(json(res)).toMatchObject({ error: ErrorCodes.API_REQUEST_INVALID });
      expect(t.sandbox.engine.counters.api).toBe(0);
    });

    it('accepts the base itself and ordinary paths', async () => {
      const agent = t.agent();
      await login(agent);
      const cookie = await sessionCookie(agent);
      const res = await raw(t.url, '/raw/example/a/b%20c/d.json?redirect=http://x.example/../y', { headers: { cookie } });
      expect(res.status).toBe(200);
      expect(json(res)).toMatchObject({ path: '/api/a/b%20c/d.json', query: { redirect: 'http://x.example/../y' } });
    });
  });

  describe('oauthFetch', () => {
    it('resolves a path under the API base and returns a standard Response', async () => {
      const agent = t.agent();
      await login(agent);
      const res = await agent.get('/fetch').query({ input: '/things?y=2' }).expect(200);
      expect(res.body.status).toBe(200);
      expect(res.body.url).toBe(`${t.sandbox.url}/api/things?y=2`);
      expect(JSON.parse(res.body.body)).toMatchObject({ path: '/api/things', query: { y: '2' }, user: '1001' });
    });

    it('accepts an absolute URL only under the API base', async () => {
      const agent = t.agent();
      await login(agent);
      const ok = await agent.get('/fetch').query({ input: `${t.sandbox.url}/api/abs` }).expect(200);
      expect(JSON.parse(ok.body.body)).toMatchObject({ path: '/api/abs' });
      for (const input of [
        `${t.sandbox.url}/token`,
        `${t.sandbox.url}/apix`,
        'http://evil.example/api/x',
        `//127.0.0.1:${t.sandbox.port}/api/x`,
        `${t.sandbox.url}/api/%2e%2e/token`,
        `${t.sandbox.url}/api/x/..%2f..%2ftoken`,
        `http://user@127.0.0.1:${t.sandbox.port}/api/x`,
        '../token',
        '@evil.example',
      ]) {
        const res = await agent.get('/fetch').query({ input }).expect(400);
        expect(res.body.error).toBe(ErrorCodes.API_REQUEST_INVALID);
      }
      expect(t.sandbox.engine.counters.api).toBe(1);
    });

    it('refreshes once and retries once when the token is rejected', async () => {
      const agent = t.agent();
      await login(agent);
      t.sandbox.engine.expireAccessTokens();
      const res = await agent.get('/fetch').query({ input: 'things' }).expect(200);
      expect(res.body.status).toBe(200);
      expect(t.sandbox.engine.counters.refresh).toBe(1);
    });

    it('rejects with AUTHORIZATION_REQUIRED without a session token', async () => {
      const res = await t.agent().get('/fetch').query({ input: '/things' }).expect(401);
      expect(res.body.error).toBe(ErrorCodes.AUTHORIZATION_REQUIRED);
    });
  });
});

// ---------------------------------------------------------------------------
// our own upstream: what exactly goes over the wire
// ---------------------------------------------------------------------------

describe('proxy to an upstream of our own', () => {
  let t: TestApp;
  let upstream: Upstream;
  beforeEach(async () => {
    let verify: (token: string | undefined) => boolean = () => false;
    upstream = await startUpstream(() => verify);
    t = await createTestApp({
      strategy: (sandbox) =>
        new OAuthKeeperStrategy(echoProvider, {
          clientID: 'sandbox-client',
          clientSecret: 'sandbox-secret',
          callbackURL: '/auth/echo/callback',
          baseURL: sandbox.url,
          apiURL: `${upstream.url}/v1`,
        }),
      routes: (app, keeper) => {
        testRoutes(app);
        app.use('/api/echo', keeper.ensureAuthorized('echo', { unauthorized: 'status' }), createProxy(keeper, 'echo', { maxBufferedBodyBytes: 1024 }));
        app.use('/json/echo', express.json(), express.urlencoded({ extended: true }), createProxy(keeper, 'echo'));
        app.use('/slow/echo', createProxy(keeper, 'echo', { timeoutMs: 50 }));
        app.use('/only-get/echo', createProxy(keeper, 'echo', { allowedMethods: ['GET'] }));
        app.use('/allow/echo', createProxy(keeper, 'echo', { forwardHeaders: { allow: ['x-wanted'] } }));
        app.post(
          '/fetch-post',
          fetchRoute(
            keeper,
            'echo',
            () => '/items',
            () => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' }),
          ),
        );
      },
    });
    verify = (token) => t.sandbox.engine.verifyAccessToken(token) !== undefined;
  });
  afterEach(async () => {
    await t.close();
    await upstream.close();
  });

  it('attaches the stored token as Bearer and forwards neither the cookie nor hop-by-hop headers', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const cookie = await sessionCookie(agent);
    const token = await storedAccessToken(t, agent, 'echo');
    const res = await raw(t.url, '/api/echo/who?x=1', {
      method: 'POST',
      body: 'hello',
      headers: {
        'content-type': 'text/plain',
        ...HOSTILE_REQUEST_HEADERS,
        cookie,
        authorization: 'Basic YXBwOmFwcC1zZWNyZXQ=',
        'x-custom': 'passes',
        accept: 'application/json',
      },
    });
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    expectRequestHygiene(upstream.seen[0]!, { url: '/v1/who?x=1', authorization: `Bearer ${token}`, host: new URL(upstream.url).host, cookie });
  });

  it('passes back neither Set-Cookie nor hop-by-hop headers, and rewrites a Location under the base', async () => {
    upstream.route = (req, res) => {
      if (req.url !== '/v1/cookies') return false;
      return hostileRedirect(res, `${upstream.url}/v1/elsewhere?page=2`);
    };
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const res = await agent.get('/api/echo/cookies').redirects(0).expect(302);
    expectResponseHygiene(res.headers);
    expect(res.headers['location']).toBe('/api/echo/elsewhere?page=2');
  });

  it('replays a JSON body on the retry after a refresh', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    t.sandbox.engine.expireAccessTokens();
    const res = await agent.post('/api/echo/items').send({ name: 'widget', tags: ['a', 'b'] }).expect(200);
    expect(JSON.parse(res.body.body)).toEqual({ name: 'widget', tags: ['a', 'b'] });
    expect(t.sandbox.engine.counters.refresh).toBe(1);
    expect(upstream.seen).toHaveLength(2);
    const [first, second] = upstream.seen;
    expect(first!.body.toString()).toBe(second!.body.toString());
    expect(second!.headers['content-type']).toMatch(/application\/json/);
    expect(second!.headers['content-length']).toBe(String(second!.body.length));
    expect(first!.headers.authorization).not.toBe(second!.headers.authorization);
  });

  it('streams a body beyond maxBufferedBodyBytes, without retry (the token is still refreshed for next time)', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const big = 'x'.repeat(5000);
    const ok = await agent.post('/api/echo/upload').set('content-type', 'text/plain').send(big).expect(200);
    expect(ok.body.length).toBe(5000);

    t.sandbox.engine.expireAccessTokens();
    upstream.seen.length = 0;
    const rejected = await agent.post('/api/echo/upload').set('content-type', 'text/plain').send(big).expect(401);
    expect(rejected.body).toEqual({ error: 'invalid_token' });
    expect(upstream.seen).toHaveLength(1);
    expect(upstream.seen[0]!.body.toString()).toBe(big);
    expect(t.sandbox.engine.counters.refresh).toBe(1);

    const again = await agent.post('/api/echo/upload').set('content-type', 'text/plain').send(big).expect(200);
    expect(again.body.length).toBe(5000);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });

  it('re-serializes a body that express.json() / urlencoded() already parsed', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const asJson = await agent.post('/json/echo/items').send({ a: 1, b: [1, 2], c: { d: 'é' } }).expect(200);
    expect(JSON.parse(asJson.body.body)).toEqual({ a: 1, b: [1, 2], c: { d: 'é' } });
    const jsonSeen = upstream.seen.at(-1)!;
    expect(jsonSeen.headers['content-length']).toBe(String(jsonSeen.body.length));

    const asForm = await agent.post('/json/echo/form').type('form').send('a=1&b=two&c%5Bd%5D=3').expect(200);
    expect(new URLSearchParams(asForm.body.body).get('b')).toBe('two');
    expect(new URLSearchParams(asForm.body.body).get('c[d]')).toBe('3');
  });

  it('streams the answer: the first chunk reaches the client before the upstream finishes', async () => {
    const release = gate();
    let released = false;
    upstream.route = (req, res) => {
      if (req.url !== '/v1/stream') return false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-chunk\n');
      void release.promise.then(() => {
        released = true;
        res.end('the rest\n');
      });
      return true;
    };
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const cookie = await sessionCookie(agent);
    const firstChunk = gate<string>();
    const ended = gate<string>();
    const { hostname, port } = new URL(t.url);
    const client = httpRequest({ host: hostname, port, path: '/api/echo/stream', headers: { cookie } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        if (text.includes('first-chunk')) firstChunk.open(text);
      });
      res.on('end', () => ended.open(text));
    });
    client.end();
    expect(await firstChunk.promise).toBe('first-chunk\n');
    expect(released).toBe(false);
    release.open();
    expect(await ended.promise).toBe('first-chunk\nthe rest\n');
  });

  it('aborts the upstream call when the client goes away', async () => {
    const upstreamClosed = gate<{ finished: boolean; destroyed: boolean }>();
    upstream.route = (req, res) => {
      if (req.url !== '/v1/endless') return false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('tick\n');
      upstream.hanging.push(res);
      res.on('close', () => upstreamClosed.open({ finished: res.writableFinished, destroyed: res.destroyed }));
      return true;
    };
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const cookie = await sessionCookie(agent);
    const { hostname, port } = new URL(t.url);
    const firstChunk = gate<string>();
    const client = httpRequest({ host: hostname, port, path: '/api/echo/endless', headers: { cookie } }, (res) => {
      res.once('data', (chunk: Buffer) => {
        firstChunk.open(chunk.toString('utf8'));
        client.destroy();
      });
    });
    client.on('error', () => undefined);
    client.end();
    // The client got the streamed start of the answer, then went away.
    expect(await firstChunk.promise).toBe('tick\n');
    expect(client.destroyed).toBe(true);
    // The upstream never ended its answer: its connection was closed under it, by the proxy aborting the call.
    const closed = await upstreamClosed.promise;
    expect(closed).toEqual({ finished: false, destroyed: true });
    expect(upstream.seen.filter((seen) => seen.url === '/v1/endless')).toHaveLength(1);
  });

  it('answers 502 JSON when the upstream cannot be reached, without the token', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const token = await storedAccessToken(t, agent, 'echo');
    await upstream.close();
    const res = await agent.get('/api/echo/things').expect(502);
    expect(res.headers['content-type']).toMatch(/json/);
    expect(res.body).toMatchObject({ error: ErrorCodes.API_UPSTREAM_FAILED, provider: 'echo' });
    expect(res.text).not.toContain(token);
  });

  it('answers 504 JSON when the upstream does not answer in time', async () => {
    upstream.route = (req, res) => {
      if (req.url !== '/v1/hang') return false;
      upstream.hanging.push(res);
      return true;
    };
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const token = await storedAccessToken(t, agent, 'echo');
    const res = await agent.get('/slow/echo/hang').expect(504);
    expect(res.headers['content-type']).toMatch(/json/);
    expect(res.body).toMatchObject({ error: ErrorCodes.API_UPSTREAM_TIMEOUT, provider: 'echo' });
    expect(res.text).not.toContain(token);
  });

  it('answers 405 for methods it does not forward', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    const res = await agent.post('/only-get/echo/items').send({}).expect(405);
    expect(res.headers['allow']).toBe('GET');
    expect(res.body.error).toBe(ErrorCodes.API_REQUEST_INVALID);
    expect(upstream.seen).toHaveLength(0);
  });

  it('forwards only the allowed headers with forwardHeaders: { allow }', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    await agent.post('/allow/echo/x').set('x-wanted', '1').set('x-unwanted', '2').set('content-type', 'text/plain').send('hi').expect(200);
    const seen = upstream.seen.at(-1)!;
    expect(seen.headers['x-wanted']).toBe('1');
    expect(seen.headers['x-unwanted']).toBeUndefined();
    expect(seen.headers['content-type']).toBe('text/plain');
    expect(seen.headers['user-agent']).toBeUndefined();
  });

  it('oauthFetch replays its body on the retry after a refresh', async () => {
    const agent = t.agent();
    await login(agent, '/auth/echo');
    t.sandbox.engine.expireAccessTokens();
    const res = await agent.post('/fetch-post').expect(200);
    expect(res.body.status).toBe(200);
    expect(JSON.parse(JSON.parse(res.body.body).body)).toEqual({ n: 1 });
    expect(upstream.seen.map((s) => s.body.toString())).toEqual(['{"n":1}', '{"n":1}']);
    expect(t.sandbox.engine.counters.refresh).toBe(1);
  });
});
