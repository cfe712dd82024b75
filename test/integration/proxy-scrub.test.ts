import type { ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { Express } from 'express';
import { DiStrategy, OAuthKeeperStrategy, type Keeper } from '../../src/index';
import type { DiSandbox } from '../../src/sandbox/index';
import { startDiSandbox } from '../../src/sandbox/index';
import { createTestApp, login, type TestApp } from '../helpers/app';
import { cookieRoute, echoProvider, raw, sessionCookie, startRecorder, type Recorder, type RawAnswer } from '../helpers/proxy';

/**
 * Nothing the package attached to an API call — the access token, the client secret, an
 * Authorization header — reaches the browser, whatever the upstream does with it: echo it
 * in a JSON body, a header, a gzip body, a percent-encoded form, a streamed body split one
 * byte per chunk, a small (inspected) or large (streamed) error answer. And the case that
 * happens for real: di's Spring resource server answering `Invalid access token: <token>`.
 */

const FILLER = 'f'.repeat(100 * 1024);
/** 10 MiB of zeros in about 10 KiB of gzip. */
const BOMB = gzipSync(Buffer.alloc(10 * 1024 * 1024));

/** Writes `text` one byte per chunk, each on its own turn of the event loop, then ends. */
function trickle(res: ServerResponse, text: string): void {
  const bytes = Buffer.from(text);
  let at = 0;
  const next = () => {
    if (at >= bytes.length) return void res.end();
    res.write(bytes.subarray(at, at + 1));
    at += 1;
    setImmediate(next);
  };
  next();
}

/** Upstream routes that each hand the credentials they received back in another way. */
function echoRoutes(upstream: Recorder): void {
  upstream.route = (req, res, seen) => {
    const authorization = String(seen.headers.authorization ?? '');
    const token = authorization.replace(/^Bearer /, '');
    const json = JSON.stringify({ authorization, token, note: `Invalid access token: ${token}` });
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    switch (path) {
      case '/json':
        res.writeHead(200, { 'content-type': 'application/json' }).end(json);
        return true;
      case '/header':
        res.writeHead(200, { 'x-echo': authorization, 'x-token': token, 'x-kept': 'yes' }).end('ok');
        return true;
      case '/gzip':
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(gzipSync(json));
        return true;
      case '/encoded':
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`token=${encodeURIComponent(token)}&escaped=${JSON.stringify(token)}`);
        return true;
      case '/trickle':
        res.writeHead(200, { 'content-type': 'text/plain' });
        trickle(res, `${'a'.repeat(50)}${authorization}${'b'.repeat(50)}${token}`);
        return true;
      case '/big':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(FILLER + json + FILLER)) }).end(FILLER + json + FILLER);
        return true;
      case '/error':
        res.writeHead(400, { 'content-type': 'application/json' }).end(json);
        return true;
      case '/bomb':
        res.writeHead(400, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(BOMB);
        return true;
      case '/big-error':
        res.writeHead(500, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(FILLER + json)) }).end(FILLER + json);
        return true;
      default:
        return false;
    }
  };
}

function mount(name: string) {
  return (app: Express, keeper: Keeper) => {
    cookieRoute(app);
    app.use(`/api/${name}`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), keeper.proxy(name));
    app.get(`/fetch/${name}/*rest`, keeper.ensureAuthorized(name, { unauthorized: 'status' }), async (req, res) => {
      const answer = await req.oauthFetch!(name, req.path.slice(`/fetch/${name}`.length));
      res.status(answer.status).type('text').send(await answer.text());
    });
  };
}

function expectNoSecret(answer: RawAnswer, secrets: string[]): void {
  const seen = JSON.stringify(answer.headers) + answer.text;
  for (const secret of secrets) {
    expect(seen).not.toContain(secret);
    expect(seen).not.toContain(encodeURIComponent(secret));
  }
}

describe('credentials echoed by the upstream never reach the browser', () => {
  let t: TestApp;
  let upstream: Recorder;
  let cookie: string;
  let secrets: string[];

  beforeAll(async () => {
    upstream = await startRecorder({}, (_req, res) => res.writeHead(404).end());
    echoRoutes(upstream);
    t = await createTestApp({
      strategy: (s) =>
        new OAuthKeeperStrategy(echoProvider, {
          clientID: 'sandbox-client',
          clientSecret: 'sandbox-secret',
          callbackURL: '/auth/echo/callback',
          baseURL: s.url,
          apiURL: upstream.url,
        }),
      routes: mount('echo'),
    });
    const agent = t.agent();
    await login(agent, '/auth/echo');
    cookie = await sessionCookie(agent);
    const stored = (await t.store.get(await t.ownerOf(agent), 'echo'))!.tokenSet;
    secrets = [stored.accessToken, `Bearer ${stored.accessToken}`, stored.refreshToken!];
  });
  afterAll(async () => {
    await t.close();
    await upstream.close();
  });

  it.each(['/json', '/gzip', '/encoded', '/trickle', '/big', '/error', '/big-error'])('through the proxy: %s', async (path) => {
    const before = upstream.seen.length;
    const answer = await raw(t.url, `/api/echo${path}`, { headers: { cookie, accept: 'application/json' } });
    expect(upstream.seen.length).toBe(before + 1);
    // The upstream did receive the token, and did echo it.
    expect(upstream.seen.at(-1)!.headers.authorization).toBe(secrets[1]);
    expectNoSecret(answer, secrets);
    // Masked in place, same length: the answer's framing still holds, the rest is intact.
    expect(answer.text).toContain('*'.repeat(secrets[0]!.length));
    if (path === '/big' || path === '/big-error') expect(answer.text.startsWith(FILLER)).toBe(true);
  });

  it('a 10 MiB gzip bomb is cut at the decoding limit: a typed 502, never 10 MiB in memory or on the wire', async () => {
    const answer = await raw(t.url, '/api/echo/bomb', { headers: { cookie, accept: 'application/json' } });
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.text)).toMatchObject({ error: 'OAUTH_KEEPER_API_UPSTREAM_FAILED', provider: 'echo' });
    expect(answer.text.length).toBeLessThan(1024);
  });

  it('through the proxy: response headers holding a credential are dropped, others kept', async () => {
    const answer = await raw(t.url, '/api/echo/header', { headers: { cookie } });
    expect(answer.status).toBe(200);
    expectNoSecret(answer, secrets);
    expect(answer.headers['x-echo']).toBeUndefined();
    expect(answer.headers['x-token']).toBeUndefined();
    expect(answer.headers['x-kept']).toBe('yes');
  });

  it.each(['/json', '/gzip', '/trickle', '/big'])('through req.oauthFetch: %s', async (path) => {
    const answer = await raw(t.url, `/fetch/echo${path}`, { headers: { cookie } });
    expect(answer.status).toBe(200);
    expectNoSecret(answer, secrets);
  });
});

describe("di: Spring's invalid_token answer, which holds the whole token, reaches the browser masked", () => {
  let t: TestApp;
  let sandbox: DiSandbox;
  afterEach(async () => {
    await t.close();
  });

  it('a refused token that could not be replaced in this request is passed on without the token', async () => {
    t = await createTestApp({
      startSandbox: async () => (sandbox = await startDiSandbox({ autoApprove: true, echoTokensInErrors: true })),
      strategy: (s) => new DiStrategy({ clientID: 'sandbox-client', clientSecret: 'sandbox-secret', callbackURL: '/auth/di/callback', baseURL: s.url }),
      routes: mount('di'),
    });
    const agent = t.agent();
    await login(agent, '/auth/di');
    const owner = await t.ownerOf(agent);
    const stored = (await t.store.get(owner, 'di'))!.tokenSet;
    // The token is due for refresh (inside the skew) but still valid here; the refresh fails for a
    // while, so the guard goes on with it; and the platform refuses it, echoing it whole.
    await t.expireToken(owner, Date.now() + 30_000);
    sandbox.engine.expireAccessTokens();
    sandbox.engine.injectFault('token', { status: 500, times: 10 });
    const answer = await raw(t.url, '/api/di/patent/search/expression?express=x', { headers: { cookie: await sessionCookie(agent), accept: 'application/json' } });
    expect(answer.status).toBe(401);
    const body = JSON.parse(answer.text) as { error: string; error_description: string };
    expect(body.error).toBe('invalid_token');
    expect(body.error_description).toBe(`Invalid access token: ${'*'.repeat(stored.accessToken.length)}`);
    expectNoSecret(answer, [stored.accessToken, stored.refreshToken!]);
    // Spring's WWW-Authenticate repeats the description: that header is dropped.
    expect(answer.headers['www-authenticate']).toBeUndefined();
    // A fault never costs the stored tokens.
    expect((await t.store.get(owner, 'di'))!.tokenSet.refreshToken).toBe(stored.refreshToken);
  });
});
