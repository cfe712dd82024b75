import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Agent, MockAgent, type Dispatcher } from 'undici';
import { defineProvider, type ProviderOptions, type TokenSet } from '../../../../src/index';
import { ApiClient } from '../../../../src/lib/api/client';
import { ApiTransport } from '../../../../src/lib/api/transport';
import type { ApiCallResult, ApiKeeper } from '../../../../src/lib/api/types';

/**
 * The transport under the API client: a keep-alive pool per keeper whose idle connections
 * never keep the process alive and that `close()` ends; or the app's own dispatcher.
 */

interface Options extends ProviderOptions {
  apiURL: string;
}

const acme = defineProvider<Options>({
  name: 'acme',
  authorizationURL: 'https://id.acme.example/authorize',
  tokenURL: 'https://id.acme.example/token',
  api: { baseURL: (o) => o.apiURL },
});

const token: TokenSet = { accessToken: 'access-token-1234', tokenType: 'Bearer', expiresAt: null, extras: {}, obtainedAt: 0 };

/** A keeper with one token and the given transport (none: the shared pool). */
function keeperWith(apiURL: string, apiTransport?: ApiTransport): ApiKeeper {
  return {
    strategy: () => ({ provider: acme, options: { clientID: 'c', callbackURL: '/cb', apiURL }, tokens: {} }),
    refresher: { forRequest: async () => token, replaceRejected: async () => null },
    ...(apiTransport ? { apiTransport } : {}),
  } as unknown as ApiKeeper;
}

interface Upstream {
  url: string;
  /** The server side of every connection made to it. */
  sockets: Socket[];
  /** Answers held back while `holding`. */
  hold: ServerResponse[];
  holding: boolean;
  server: Server;
}

/** An upstream that counts its connections; its own sockets are unref'd so that only the client's are counted. */
async function startUpstream(): Promise<Upstream> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (upstream.holding) upstream.hold.push(res);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
    });
  });
  const upstream: Upstream = { url: '', sockets: [], hold: [], holding: false, server };
  server.on('connection', (socket) => {
    socket.unref();
    upstream.sockets.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return upstream;
}

/** TCP sockets that keep the event loop alive (unref'd ones are not listed). */
function refedSockets(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === 'TCPSocketWrap').length;
}

async function drain(result: ApiCallResult): Promise<string> {
  const body = result.body;
  if (body === null || Buffer.isBuffer(body)) return body?.toString('utf8') ?? '';
  let text = '';
  for await (const chunk of body) text += (chunk as Buffer).toString('utf8');
  return text;
}

const session = { owner: 'owner-1' };
const get = (client: ApiClient, path: string) => client.call(session, { method: 'GET', url: client.resolve(path), headers: new Headers() });

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('the API transport', () => {
  let upstream: Upstream;
  let baseline: number;
  beforeAll(async () => {
    // Sockets of the test run's own start-up (the redis-server readiness check) close first.
    for (let i = 0; i < 200 && refedSockets() > 0; i += 1) await tick(10);
    baseline = refedSockets();
  });
  beforeEach(async () => {
    // What an earlier test closed is gone before this one counts.
    while (refedSockets() > baseline) await tick(5);
    upstream = await startUpstream();
  });
  afterEach(async () => {
    for (const res of upstream.hold) res.destroy();
    upstream.server.closeAllConnections();
    upstream.server.close();
    await once(upstream.server, 'close');
  });

  it('keeps connections alive across calls, never holds the process with them while idle, and closes them on close()', async () => {
    const transport = new ApiTransport();
    const client = new ApiClient(keeperWith(upstream.url, transport), 'acme');
    const before = refedSockets();

    const calls = 6;
    for (let i = 0; i < calls; i += 1) expect(JSON.parse(await drain(await get(client, `/n${i}`)))).toEqual({ path: `/n${i}` });
    // Reused, not one connection per call (undici may open a second while the first is checked for reuse).
    expect(upstream.sockets.length).toBeLessThanOrEqual(2);
    const kept = upstream.sockets.length;
    expect(upstream.sockets.every((socket) => !socket.destroyed)).toBe(true);
    // Idle: the kept-alive client sockets are open, and do not keep the event loop alive.
    await tick();
    expect(refedSockets()).toBe(before);

    // The count does see a client socket while a call is on it.
    upstream.holding = true;
    const pending = get(client, '/held');
    while (upstream.hold.length === 0) await tick(5);
    expect(refedSockets()).toBe(before + 1);
    upstream.hold[0]!.writeHead(200).end('{}');
    await drain(await pending);
    expect(upstream.sockets).toHaveLength(kept);

    const closed = Promise.all(upstream.sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
    await transport.close();
    await closed;
    // A call after close() opens a new connection.
    upstream.holding = false;
    await drain(await get(client, '/again'));
    expect(upstream.sockets).toHaveLength(kept + 1);
    await transport.close();
  });

  it('a keeper stand-in without a transport of its own uses a shared pool, idle connections unref\'d as well', async () => {
    const client = new ApiClient(keeperWith(upstream.url), 'acme');
    const before = refedSockets();
    await drain(await get(client, '/shared'));
    await tick();
    expect(refedSockets()).toBe(before);
  });

  it('sends every call through a given dispatcher, and leaves closing it to the app', async () => {
    const seen: string[] = [];
    const agent = new Agent();
    const recording = agent.compose((dispatch) => (options, handler) => {
      seen.push(`${options.method} ${String(options.origin)}${options.path}`);
      return dispatch(options, handler);
    });
    const transport = new ApiTransport(recording);
    const client = new ApiClient(keeperWith(upstream.url, transport), 'acme');
    await drain(await get(client, '/a?x=1'));
    await transport.close();
    await drain(await get(client, '/b'));
    expect(seen).toEqual([`GET ${upstream.url}/a?x=1`, `GET ${upstream.url}/b`]);
    await agent.close();
  });

  it('works with a MockAgent: no connection is made, the credentials are attached as for a real upstream', async () => {
    const mock = new MockAgent();
    mock.disableNetConnect();
    mock
      .get('https://api.acme.example')
      .intercept({ path: '/v1/items?page=2', method: 'GET', headers: { authorization: 'Bearer access-token-1234' } })
      .reply(200, { items: [] }, { headers: { 'content-type': 'application/json' } });
    const client = new ApiClient(keeperWith('https://api.acme.example/v1', new ApiTransport(mock)), 'acme');
    const result = await get(client, '/items?page=2');
    expect(result.status).toBe(200);
    expect(result.headers.get('content-type')).toBe('application/json');
    expect(JSON.parse(await drain(result))).toEqual({ items: [] });
    mock.assertNoPendingInterceptors();
    await mock.close();
  });

  it('refuses a dispatcher that is not one', () => {
    expect(() => new ApiTransport({} as unknown as Dispatcher)).toThrow(/api\.dispatcher must be an undici Dispatcher/);
  });
});
