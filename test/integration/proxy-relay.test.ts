import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import express from 'express';
import { defineProvider, ErrorCodes, type ProviderOptions, type TokenSet } from '../../src/index';
import { createProxy, type ProxyKeeper } from '../../src/middleware/proxy';
import { gate } from '../helpers/proxy';

/**
 * The proxy's relay (lib/api/relay.ts): the answer is written from undici's handler straight
 * into the response. What it decides on each answer's head — collect a small error answer,
 * hold one that rejects the token, let anything else flow — and what happens when either
 * side goes away mid-answer. Real servers on both sides, a keeper stand-in with scripted tokens.
 */

interface Options extends ProviderOptions {
  apiURL: string;
}

const FIRST = 'first-access-token-0123456789';
const SECOND = 'second-access-token-9876543210';

interface Upstream {
  url: string;
  /** The Authorization of every request, in order. */
  seen: string[];
  /** Whether each answer was cut off (its response closed before it finished). */
  cut: Array<Promise<boolean>>;
  route: (req: IncomingMessage, res: ServerResponse, token: string) => void;
  server: Server;
}

async function startUpstream(): Promise<Upstream> {
  const upstream: Upstream = { url: '', seen: [], cut: [], route: (_q, res) => res.end('{}'), server: undefined as unknown as Server };
  upstream.server = createServer((req, res) => {
    const authorization = req.headers.authorization ?? '';
    upstream.seen.push(authorization);
    upstream.cut.push(new Promise((resolve) => res.once('close', () => resolve(!res.writableFinished))));
    req.resume();
    req.on('end', () => upstream.route(req, res, authorization.replace(/^Bearer /, '')));
  });
  await new Promise<void>((resolve) => upstream.server.listen(0, '127.0.0.1', () => resolve()));
  upstream.url = `http://127.0.0.1:${(upstream.server.address() as AddressInfo).port}`;
  return upstream;
}

const acme = defineProvider<Options>({
  name: 'acme',
  authorizationURL: 'https://id.acme.example/authorize',
  tokenURL: 'https://id.acme.example/token',
  api: { baseURL: (o) => o.apiURL },
});

const tokenSet = (accessToken: string): TokenSet => ({ accessToken, tokenType: 'Bearer', expiresAt: null, extras: {}, obtainedAt: 0 });

interface App {
  url: string;
  /** The tokens `replaceRejected` hands out, in order (null: none). */
  replacements: Array<TokenSet | null>;
  refreshes: number;
  server: Server;
}

async function startApp(upstream: Upstream, proxyOptions: Parameters<typeof createProxy>[2] = {}): Promise<App> {
  const app: App = { url: '', replacements: [], refreshes: 0, server: undefined as unknown as Server };
  const keeper = {
    strategy: () => ({ provider: acme, options: { clientID: 'c', clientSecret: 'client-secret-value', callbackURL: '/cb', apiURL: `${upstream.url}/v1` }, tokens: {} }),
    refresher: {
      forRequest: async () => tokenSet(FIRST),
      replaceRejected: async () => {
        app.refreshes += 1;
        return app.replacements.shift() ?? null;
      },
    },
    loginURL: () => '/auth/acme',
  } as unknown as ProxyKeeper;
  const web = express();
  web.use((req, _res, next) => {
    (req as unknown as { session: object }).session = { oauthKeeper: { owner: 'owner-1' } };
    next();
  });
  web.use('/api', createProxy(keeper, 'acme', proxyOptions));
  app.server = createServer(web);
  await new Promise<void>((resolve) => app.server.listen(0, '127.0.0.1', () => resolve()));
  app.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  return app;
}

interface Answer {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

function get(base: string, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${path}`, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Writes `total` bytes of `fill` in 64 KiB chunks with backpressure, `token` at `at`, then ends. */
function streamWithToken(res: ServerResponse, total: number, token: string, at: number): void {
  const body = Buffer.alloc(total, 'x');
  body.write(token, at, 'latin1');
  let offset = 0;
  const pump = () => {
    while (offset < total) {
      // Odd-sized chunks, so that the token is split across two of them.
      const piece = body.subarray(offset, Math.min(total, offset + 65_537));
      offset += piece.length;
      if (!res.write(piece)) return void res.once('drain', pump);
    }
    res.end();
  };
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  pump();
}

describe('the proxy relays answers straight into the response', () => {
  let upstream: Upstream;
  let app: App;
  beforeEach(async () => {
    upstream = await startUpstream();
    app = await startApp(upstream);
  });
  afterEach(async () => {
    app.server.closeAllConnections();
    upstream.server.closeAllConnections();
    await new Promise((r) => app.server.close(r));
    await new Promise((r) => upstream.server.close(r));
  });

  it('streams a large answer whole, with its length, masking a token split across chunks', async () => {
    const total = 8 * 1024 * 1024 + 3;
    const at = 65_537 - 5;
    upstream.route = (_req, res, token) => streamWithToken(res, total, token, at);
    const answer = await get(app.url, '/api/big');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-length']).toBe(String(total));
    expect(answer.body.length).toBe(total);
    expect(answer.body.includes(FIRST)).toBe(false);
    expect(answer.body.subarray(at, at + FIRST.length).toString()).toBe('*'.repeat(FIRST.length));
    expect(answer.body.subarray(0, at).every((b) => b === 0x78)).toBe(true);
    expect(answer.body.subarray(at + FIRST.length).every((b) => b === 0x78)).toBe(true);
  });

  it('decodes and masks a compressed streamed answer', async () => {
    upstream.route = (_req, res, token) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
      res.end(gzipSync(`${'a'.repeat(100_000)} ${token} ${'b'.repeat(100_000)}`));
    };
    const answer = await get(app.url, '/api/gzip');
    expect(answer.status).toBe(200);
    expect(answer.headers['content-encoding']).toBeUndefined();
    expect(answer.body.toString()).toBe(`${'a'.repeat(100_000)} ${'*'.repeat(FIRST.length)} ${'b'.repeat(100_000)}`);
  });

  it('refuses an answer in an encoding it cannot check, before anything is sent', async () => {
    upstream.route = (_req, res) => res.writeHead(200, { 'content-encoding': 'zstd' }).end('whatever');
    const answer = await get(app.url, '/api/zstd');
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ error: ErrorCodes.API_UPSTREAM_FAILED, provider: 'acme' });
  });

  it('a small error answer is collected and sent whole, masked, with its new length', async () => {
    upstream.route = (_req, res, token) => res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'bad', echo: token }));
    const answer = await get(app.url, '/api/bad');
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body.toString())).toEqual({ error: 'bad', echo: '*'.repeat(FIRST.length) });
    expect(answer.headers['content-length']).toBe(String(answer.body.length));
    expect(app.refreshes).toBe(0);
  });

  it('a rejected token: the collected first answer is dropped, the retry is relayed', async () => {
    app.replacements.push(tokenSet(SECOND));
    upstream.route = (_req, res, token) => {
      if (token === FIRST) return void res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end('{"error":"invalid_token"}');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, echo: token }));
    };
    const answer = await get(app.url, '/api/retry');
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body.toString())).toEqual({ ok: true, echo: '*'.repeat(SECOND.length) });
    expect(upstream.seen).toEqual([`Bearer ${FIRST}`, `Bearer ${SECOND}`]);
    expect(app.refreshes).toBe(1);
  });

  it('a rejection with a large body is held, then passed on whole when the token cannot be replaced', async () => {
    // The same token back: the refresh could not be done, nothing to retry with.
    app.replacements.push(tokenSet(FIRST));
    const total = 1024 * 1024;
    upstream.route = (_req, res, token) => {
      const body = Buffer.alloc(total, 'e');
      body.write(token, total - 100);
      res.writeHead(401, { 'content-type': 'text/plain', 'content-length': String(total) }).end(body);
    };
    const answer = await get(app.url, '/api/held');
    expect(answer.status).toBe(401);
    expect(answer.body.length).toBe(total);
    expect(answer.body.includes(FIRST)).toBe(false);
    expect(answer.body.subarray(total - 100, total - 100 + FIRST.length).toString()).toBe('*'.repeat(FIRST.length));
    expect(app.refreshes).toBe(1);
    expect(upstream.seen).toHaveLength(1);
  });

  it('no token to retry with after a rejection: 401 authorization_required, the held answer dropped', async () => {
    upstream.route = (_req, res) => res.writeHead(401, { 'content-type': 'text/plain' }).end('nope');
    const answer = await get(app.url, '/api/none');
    expect(answer.status).toBe(401);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ error: ErrorCodes.AUTHORIZATION_REQUIRED, provider: 'acme' });
  });

  it('a held streamed rejection is cut off upstream when the call is retried', async () => {
    app.replacements.push(tokenSet(SECOND));
    upstream.route = (_req, res, token) => {
      if (token === FIRST) {
        // Larger than what is inspected, and never finished: only the proxy can end it.
        res.writeHead(401, { 'content-type': 'text/plain' });
        res.write(Buffer.alloc(128 * 1024, 'r'));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('second');
    };
    const answer = await get(app.url, '/api/cut');
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('second');
    expect(await upstream.cut[0]).toBe(true);
    expect(await upstream.cut[1]).toBe(false);
  });

  it('answers without a body (HEAD, 204) end at once', async () => {
    upstream.route = (req, res) => {
      if (req.method === 'HEAD') return void res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '42' }).end();
      res.writeHead(204, { 'x-kept': 'yes' }).end();
    };
    const head = await get(app.url, '/api/h', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('42');
    expect(head.body.length).toBe(0);
    const empty = await get(app.url, '/api/empty');
    expect(empty.status).toBe(204);
    expect(empty.headers['x-kept']).toBe('yes');
  });

  it('a client that goes away mid-stream aborts the upstream answer', async () => {
    upstream.route = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Endless, with backpressure: it only stops when its connection closes.
      const chunk = Buffer.alloc(64 * 1024, 'z');
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
    };
    const got = gate();
    const client = httpRequest(`${app.url}/api/endless`, (res) => {
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1024 * 1024) {
          got.open();
          client.destroy();
        }
      });
    });
    client.on('error', () => undefined);
    client.end();
    await got.promise;
    expect(await upstream.cut[0]).toBe(true);
  });

  it('an upstream that breaks off mid-stream ends the response, and the proxy keeps serving', async () => {
    upstream.route = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000000' });
      res.write(Buffer.alloc(10_000, 'p'), () => res.destroy());
    };
    const broken = await new Promise<{ aborted: boolean; size: number }>((resolve) => {
      const req = httpRequest(`${app.url}/api/broken`, (res) => {
        let size = 0;
        res.on('data', (c: Buffer) => (size += c.length));
        res.on('aborted', () => resolve({ aborted: true, size }));
        res.on('end', () => resolve({ aborted: false, size }));
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
      req.end();
    });
    expect(broken.aborted).toBe(true);
    expect(broken.size).toBeLessThan(1_000_000);
    upstream.route = (_req, res) => res.end('fine');
    expect((await get(app.url, '/api/after')).body.toString()).toBe('fine');
  });

  it('times out while collecting a slow error answer', async () => {
    app.server.closeAllConnections();
    await new Promise((r) => app.server.close(r));
    app = await startApp(upstream, { timeoutMs: 100 });
    upstream.route = (_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.write('partial');
      // Never finished.
    };
    const answer = await get(app.url, '/api/slow');
    expect(answer.status).toBe(504);
    expect(JSON.parse(answer.body.toString())).toMatchObject({ error: ErrorCodes.API_UPSTREAM_TIMEOUT });
    expect(await upstream.cut[0]).toBe(true);
  });
});

describe('many relayed answers at once', () => {
  it('each gets its own answer, whole', async () => {
    const upstream = await startUpstream();
    const app = await startApp(upstream);
    try {
      upstream.route = (req, res) => {
        const n = new URL(req.url ?? '/', 'http://x').searchParams.get('n') ?? '';
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`${n}:${'y'.repeat(100_000)}`);
      };
      const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => get(app.url, `/api/many?n=${n}`)));
      answers.forEach((answer, n) => expect(answer.body.toString()).toBe(`${n}:${'y'.repeat(100_000)}`));
    } finally {
      app.server.closeAllConnections();
      upstream.server.closeAllConnections();
      await once(app.server.close(), 'close');
      await once(upstream.server.close(), 'close');
    }
  });
});
