import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { Request } from 'express';
import { defineProvider, ErrorCodes, OAuthKeeperError, type ApiResponseHead, type ApiSpec, type ProviderOptions, type TokenSet } from '../../../../src/index';
import { ApiClient } from '../../../../src/lib/api/client';
import type { ApiKeeper } from '../../../../src/lib/api/types';
import { createOAuthFetch } from '../../../../src/middleware/fetch';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

interface Upstream {
  url: string;
  seen: Seen[];
  reply: (seen: Seen, res: ServerResponse) => void;
  close(): Promise<void>;
}

async function startUpstream(): Promise<Upstream> {
  const upstream: Upstream = { url: '', seen: [], reply: (_s, res) => res.end('{}'), close: async () => undefined };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      upstream.seen.push(seen);
      upstream.reply(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstream.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return upstream;
}

function tokenSet(accessToken: string): TokenSet {
  return { accessToken, tokenType: 'Bearer', expiresAt: null, extras: {}, obtainedAt: 0 };
}

interface Options extends ProviderOptions {
  apiURL: string;
}

function provider(api: Partial<ApiSpec<Options>> = {}) {
  return defineProvider<Options>({
    name: 'acme',
    authorizationURL: 'https://id.acme.example/authorize',
    tokenURL: 'https://id.acme.example/token',
    api: { baseURL: (o) => o.apiURL, ...api },
  });
}

/** A keeper stand-in: the provider's definition and a scripted refresher. */
function fakeKeeper(definition: ReturnType<typeof provider>, apiURL: string, tokens: Array<TokenSet | null | Error>) {
  const calls: Array<string | undefined> = [];
  const next = async (rejected?: string) => {
    calls.push(rejected);
    const answer = tokens.shift();
    if (answer instanceof Error) throw answer;
    return answer ?? null;
  };
  const keeper = {
    strategy: () => ({ name: 'acme', provider: definition, options: { clientID: 'c', callbackURL: '/cb', apiURL }, tokens: { name: 'acme' } }),
    refresher: {
      retryAfterSeconds: 5,
      forRequest: () => next(),
      replaceRejected: (_request: object, _owner: string, _client: unknown, rejected: string) => next(rejected),
    },
  } as unknown as ApiKeeper;
  return { keeper, calls };
}

const req = { session: { oauthKeeper: { owner: 'owner-1' } } } as unknown as Request;
/** The session an API call is made for: its owner, and the request its token set is read once for. */
const session = { owner: 'owner-1', request: req };

function text(body: Buffer | Readable | null): Promise<string> {
  if (body === null) return Promise.resolve('');
  if (Buffer.isBuffer(body)) return Promise.resolve(body.toString('utf8'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.on('data', (c: Buffer) => chunks.push(c));
    body.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    body.on('error', reject);
  });
}

describe('ApiClient', () => {
  let upstream: Upstream;
  beforeEach(async () => {
    upstream = await startUpstream();
  });
  afterEach(async () => {
    await upstream.close();
  });

  describe('with a readResponse binding (signed gateway answers)', () => {
    // A gateway that always answers HTTP 200 with a signed envelope; "token rejected" is a code inside.
    const gateway = provider({
      attach: (request, token) => {
        const headers = new Headers(request.headers);
        headers.set('x-app-token', token.accessToken);
        return { ...request, method: 'POST', headers, body: Buffer.from(JSON.stringify({ biz: request.body?.toString() ?? '' })) };
      },
      readResponse: (raw) => {
        if (raw.headers.get('x-sign') !== 'good') {
          throw new OAuthKeeperError(ErrorCodes.RESPONSE_SIGNATURE_INVALID, 'The acme answer signature does not verify.', { provider: 'acme' });
        }
        const envelope = JSON.parse(raw.body.toString()) as { response: unknown };
        return { status: raw.status, headers: raw.headers, body: Buffer.from(JSON.stringify(envelope.response)) };
      },
      isTokenRejected: (response: ApiResponseHead) => (response.body as { code?: string } | undefined)?.code === 'invalid-token',
    });

    beforeEach(() => {
      upstream.reply = (seen, res) => {
        const valid = seen.headers['x-app-token'] === 'new';
        res.writeHead(200, { 'content-type': 'application/json', 'x-sign': 'good' });
        res.end(JSON.stringify({ response: valid ? { code: 'ok', echo: JSON.parse(seen.body) } : { code: 'invalid-token' } }));
      };
    });

    it('reads the answer through readResponse, refreshes once on a rejection in the body, and retries with the same body', async () => {
      const { keeper, calls } = fakeKeeper(gateway, upstream.url, [tokenSet('old'), tokenSet('new')]);
      const client = new ApiClient(keeper, 'acme');
      const result = await client.call(session, { method: 'POST', url: client.resolve('/goods.get'), headers: new Headers(), body: Buffer.from('payload') });
      expect(result.retried).toBe(true);
      expect(Buffer.isBuffer(result.body)).toBe(true);
      expect(JSON.parse(await text(result.body))).toEqual({ code: 'ok', echo: { biz: 'payload' } });
      expect(calls).toEqual([undefined, 'old']);
      expect(upstream.seen.map((s) => s.headers['x-app-token'])).toEqual(['old', 'new']);
      expect(upstream.seen.every((s) => s.headers['accept-encoding'] === 'identity')).toBe(true);
    });

    it('retries only once: a second rejection is returned as it is', async () => {
      const { keeper, calls } = fakeKeeper(gateway, upstream.url, [tokenSet('old'), tokenSet('newer')]);
      const client = new ApiClient(keeper, 'acme');
      const result = await client.call(session, { method: 'POST', url: client.resolve('/x'), headers: new Headers() });
      expect(result.retried).toBe(true);
      expect(JSON.parse(await text(result.body))).toEqual({ code: 'invalid-token' });
      expect(upstream.seen).toHaveLength(2);
      expect(calls).toHaveLength(2);
    });

    it('does not retry when the refresh gives the same token back (refresh unavailable, token still valid)', async () => {
      const { keeper } = fakeKeeper(gateway, upstream.url, [tokenSet('old'), tokenSet('old')]);
      const client = new ApiClient(keeper, 'acme');
      const result = await client.call(session, { method: 'POST', url: client.resolve('/x'), headers: new Headers() });
      expect(result.retried).toBe(false);
      expect(upstream.seen).toHaveLength(1);
    });

    it('refuses an answer readResponse refuses', async () => {
      upstream.reply = (_seen, res) => {
        res.writeHead(200, { 'x-sign': 'forged' });
        res.end('{"response":{"code":"ok"}}');
      };
      const { keeper } = fakeKeeper(gateway, upstream.url, [tokenSet('new')]);
      const client = new ApiClient(keeper, 'acme');
      await expect(client.call(session, { method: 'POST', url: client.resolve('/x'), headers: new Headers() })).rejects.toMatchObject({
        code: ErrorCodes.RESPONSE_SIGNATURE_INVALID,
      });
    });

    it('refuses a streamed body when the binding needs the whole body, before calling', async () => {
      const { keeper } = fakeKeeper(gateway, upstream.url, [tokenSet('new')]);
      const client = new ApiClient(keeper, 'acme', { maxBufferedBodyBytes: 10 });
      const body = Readable.from([Buffer.from('0123456789'), Buffer.from('abcdef')]);
      await expect(client.call(session, { method: 'POST', url: client.resolve('/x'), headers: new Headers(), body })).rejects.toMatchObject({
        code: ErrorCodes.API_REQUEST_INVALID,
        status: 413,
      });
      expect(upstream.seen).toHaveLength(0);
    });

    it('propagates a refused refresh and a missing token set', async () => {
      const reauth = new OAuthKeeperError(ErrorCodes.REAUTHORIZATION_REQUIRED, 'The acme refresh was refused.', { provider: 'acme' });
      const first = fakeKeeper(gateway, upstream.url, [tokenSet('old'), reauth]);
      const client = new ApiClient(first.keeper, 'acme');
      await expect(client.call(session, { method: 'GET', url: client.resolve('/x'), headers: new Headers() })).rejects.toBe(reauth);
      const second = fakeKeeper(gateway, upstream.url, [tokenSet('old'), null]);
      const other = new ApiClient(second.keeper, 'acme');
      await expect(other.call(session, { method: 'GET', url: other.resolve('/x'), headers: new Headers() })).rejects.toMatchObject({
        code: ErrorCodes.AUTHORIZATION_REQUIRED,
      });
    });
  });

  describe('with the default binding (Bearer, 401 = rejected, streamed answers)', () => {
    it('shows isTokenRejected the parsed body of a small error answer, gzip included, and no body for a success', async () => {
      const seenHeads: ApiResponseHead[] = [];
      const definition = provider({
        isTokenRejected: (head) => {
          seenHeads.push(head);
          return false;
        },
      });
      upstream.reply = (seen, res) => {
        if (seen.url === '/v1/gz') {
          res.writeHead(400, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
          res.end(gzipSync('{"error":"bad"}'));
        } else if (seen.url === '/v1/text') {
          res.writeHead(403, { 'content-type': 'text/plain' });
          res.end('nope');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
        }
      };
      const { keeper } = fakeKeeper(definition, `${upstream.url}/v1`, [tokenSet('a'), tokenSet('a'), tokenSet('a')]);
      const client = new ApiClient(keeper, 'acme');
      const gz = await client.call(session, { method: 'GET', url: client.resolve('/gz'), headers: new Headers() });
      const plain = await client.call(session, { method: 'GET', url: client.resolve('/text'), headers: new Headers() });
      const ok = await client.call(session, { method: 'GET', url: client.resolve('/ok'), headers: new Headers() });
      expect(seenHeads.map((h) => h.body)).toEqual([{ error: 'bad' }, 'nope', undefined]);
      // The inspected answer is handed on decoded (it was checked for credentials), the success as a stream.
      expect(Buffer.isBuffer(gz.body)).toBe(true);
      expect(gz.headers.get('content-encoding')).toBeNull();
      expect(await text(gz.body)).toBe('{"error":"bad"}');
      expect(await text(plain.body)).toBe('nope');
      expect(ok.body).toBeInstanceOf(Readable);
      expect(await text(ok.body)).toBe('{"ok":true}');
    });

    it('streams an error answer too large to inspect, without its body', async () => {
      const seenHeads: ApiResponseHead[] = [];
      const definition = provider({ isTokenRejected: (head) => (seenHeads.push(head), false) });
      const big = 'e'.repeat(70 * 1024);
      upstream.reply = (_seen, res) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(big);
      };
      const { keeper } = fakeKeeper(definition, upstream.url, [tokenSet('a')]);
      const client = new ApiClient(keeper, 'acme');
      const result = await client.call(session, { method: 'GET', url: client.resolve('/x'), headers: new Headers() });
      expect(seenHeads[0]!.body).toBeUndefined();
      expect(await text(result.body)).toBe(big);
    });

    it('rejects with the signal reason when the caller aborts before the answer', async () => {
      let arrived!: () => void;
      const inHand = new Promise<void>((resolve) => {
        arrived = resolve;
      });
      const closed = new Promise<void>((resolve) => {
        upstream.reply = (_seen, res) => {
          res.on('close', () => resolve());
          arrived();
        };
      });
      const { keeper } = fakeKeeper(provider(), upstream.url, [tokenSet('a')]);
      const client = new ApiClient(keeper, 'acme');
      const controller = new AbortController();
      const pending = client.call(session, { method: 'GET', url: client.resolve('/x'), headers: new Headers(), signal: controller.signal });
      await inHand;
      const reason = new Error('client gone');
      controller.abort(reason);
      await expect(pending).rejects.toBe(reason);
      await closed;
    });

    it('needs a session owner and a stored token', async () => {
      const { keeper, calls } = fakeKeeper(provider(), upstream.url, [null]);
      const client = new ApiClient(keeper, 'acme');
      const anonymous = { owner: undefined, request: {} };
      await expect(client.call(anonymous, { method: 'GET', url: client.resolve('/x'), headers: new Headers() })).rejects.toMatchObject({
        code: ErrorCodes.AUTHORIZATION_REQUIRED,
        status: 401,
      });
      expect(calls).toHaveLength(0);
      await expect(client.call(session, { method: 'GET', url: client.resolve('/x'), headers: new Headers() })).rejects.toMatchObject({
        code: ErrorCodes.AUTHORIZATION_REQUIRED,
      });
      expect(upstream.seen).toHaveLength(0);
    });
  });

  describe('configuration', () => {
    it('names the fix when the provider has no API binding', () => {
      const bare = defineProvider({ name: 'bare', authorizationURL: 'https://x.example/a', tokenURL: 'https://x.example/t' });
      const keeper = { strategy: () => ({ provider: bare, options: {}, tokens: {} }), refresher: {} } as unknown as ApiKeeper;
      expect(() => new ApiClient(keeper, 'bare')).toThrow(/api: \{ baseURL \}/);
    });

    it.each(['not a url', 'ftp://files.example/api', 'https://api.example/v1?key=1', 'https://u:p@api.example/v1'])('refuses the API base URL %j', (apiURL) => {
      const { keeper } = fakeKeeper(provider(), apiURL, []);
      expect(() => new ApiClient(keeper, 'acme')).toThrow(OAuthKeeperError);
    });

    it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses timeoutMs %p', (timeoutMs) => {
      const { keeper } = fakeKeeper(provider(), 'https://api.example/v1', []);
      expect(() => new ApiClient(keeper, 'acme', { timeoutMs })).toThrow(/timeoutMs/);
    });
  });
});

describe('createOAuthFetch', () => {
  let upstream: Upstream;
  beforeEach(async () => {
    upstream = await startUpstream();
  });
  afterEach(async () => {
    await upstream.close();
  });

  it('returns a standard Response, decoding gzip as fetch does', async () => {
    upstream.reply = (seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify({ auth: seen.headers.authorization, url: seen.url })));
    };
    const { keeper } = fakeKeeper(provider(), `${upstream.url}/api`, [tokenSet('tok')]);
    const response = await createOAuthFetch(keeper, req)('acme', 'users?page=2');
    expect(response).toBeInstanceOf(Response);
    expect(response.headers.get('content-encoding')).toBeNull();
    expect(response.url).toBe(`${upstream.url}/api/users?page=2`);
    // The credentials the client attached never come back, not even through oauthFetch: masked, same length.
    expect(await response.json()).toEqual({ auth: '*'.repeat('Bearer tok'.length), url: '/api/users?page=2' });
  });

  it('sends fetch body types with their default content type', async () => {
    upstream.reply = (seen, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ type: seen.headers['content-type'], body: seen.body }));
    };
    const { keeper } = fakeKeeper(provider(), upstream.url, [tokenSet('t'), tokenSet('t'), tokenSet('t'), tokenSet('t')]);
    const oauthFetch = createOAuthFetch(keeper, req);
    const form = await (await oauthFetch('acme', '/f', { method: 'POST', body: new URLSearchParams({ a: '1' }) })).json();
    expect(form).toEqual({ type: 'application/x-www-form-urlencoded;charset=UTF-8', body: 'a=1' });
    const plain = await (await oauthFetch('acme', '/p', { method: 'PUT', body: 'hi' })).json();
    expect(plain).toEqual({ type: 'text/plain;charset=UTF-8', body: 'hi' });
    const formData = new FormData();
    formData.set('field', 'value');
    const multipart = (await (await oauthFetch('acme', '/m', { method: 'POST', body: formData })).json()) as { type: string; body: string };
    expect(multipart.type).toMatch(/^multipart\/form-data; boundary=/);
    expect(multipart.body).toContain('name="field"');
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed'));
        controller.close();
      },
    });
    const streamed = await (await oauthFetch('acme', '/s', { method: 'POST', body: stream, headers: { 'content-type': 'text/plain' } })).json();
    expect(streamed).toEqual({ type: 'text/plain', body: 'streamed' });
  });

  it('gives a HEAD or 204 answer a null body, and does not follow redirects', async () => {
    upstream.reply = (seen, res) => {
      if (seen.url === '/gone') {
        res.writeHead(302, { location: 'https://elsewhere.example/' });
        res.end();
        return;
      }
      res.writeHead(seen.method === 'HEAD' ? 200 : 204);
      res.end();
    };
    const { keeper } = fakeKeeper(provider(), upstream.url, [tokenSet('t'), tokenSet('t'), tokenSet('t')]);
    const oauthFetch = createOAuthFetch(keeper, req);
    expect((await oauthFetch('acme', '/h', { method: 'HEAD' })).body).toBeNull();
    expect((await oauthFetch('acme', '/n', { method: 'DELETE' })).status).toBe(204);
    const redirect = await oauthFetch('acme', '/gone');
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('https://elsewhere.example/');
    expect(upstream.seen).toHaveLength(3);
  });

  it('rejects with API_REQUEST_INVALID for a target outside the base or a GET with a body', async () => {
    const { keeper } = fakeKeeper(provider(), `${upstream.url}/api`, [tokenSet('t')]);
    const oauthFetch = createOAuthFetch(keeper, req);
    await expect(oauthFetch('acme', 'https://evil.example/api/x')).rejects.toMatchObject({ code: ErrorCodes.API_REQUEST_INVALID });
    await expect(oauthFetch('acme', '/x', { body: 'no' })).rejects.toMatchObject({ code: ErrorCodes.API_REQUEST_INVALID });
    expect(upstream.seen).toHaveLength(0);
  });
});
