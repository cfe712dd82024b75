import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { defineProvider, type ProviderOptions } from '../../src/index';
import type { TestApp } from './app';

/**
 * What the proxy tests share (proxy.test.ts, proxy-per-provider.test.ts): a raw HTTP client,
 * a recording server to stand upstream of the proxy, the header-hygiene fixtures and the
 * host-escape vectors.
 */

export type Agent = ReturnType<TestApp['agent']>;

// ---------------------------------------------------------------------------
// the client side
// ---------------------------------------------------------------------------

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** Sends exactly `path` (no client-side normalization), as an attacker could. */
export function raw(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawAnswer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method: options.method ?? 'GET', path, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function json(answer: RawAnswer): Record<string, unknown> {
  return JSON.parse(answer.text) as Record<string, unknown>;
}

/** A promise and its resolve function, for steps the test releases itself. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** A test-only route answering the request's Cookie header, for `sessionCookie`. */
export function cookieRoute(app: Express): void {
  app.get('/_cookie', (req, res) => {
    res.json({ cookie: req.headers.cookie });
  });
}

/** The agent's session cookie, as the browser would send it (needs `cookieRoute`). */
export async function sessionCookie(agent: Agent): Promise<string> {
  const res = await agent.get('/_cookie').expect(200);
  return (res.body as { cookie: string }).cookie;
}

// ---------------------------------------------------------------------------
// the upstream side
// ---------------------------------------------------------------------------

export interface EchoOptions extends ProviderOptions {
  baseURL: string;
  apiURL: string;
}

/** A provider whose login and tokens are a sandbox's (`baseURL`) and whose API is a test's own upstream (`apiURL`). */
export const echoProvider = defineProvider<EchoOptions>({
  name: 'echo',
  authorizationURL: (o) => `${o.baseURL}/authorize`,
  tokenURL: (o) => `${o.baseURL}/token`,
  scope: ['read'],
  api: { baseURL: (o) => o.apiURL },
});

export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface Recorder {
  url: string;
  /** Every request received, in order. */
  seen: Seen[];
  /** Answers a request itself (after its body is read); return false to fall through to the server's default answer. */
  route: (req: IncomingMessage, res: ServerResponse, seen: Seen) => boolean;
  /** Answers held open by a test route, destroyed on close. */
  hanging: ServerResponse[];
  close(): Promise<void>;
}

/**
 * A plain node:http server that records every request (body read whole), lets the test's
 * `route` answer it, and otherwise answers with `fallback`. `extra` adds fields of its own
 * to the returned recorder (which `fallback` receives as `self`).
 */
export async function startRecorder<X extends object>(
  extra: X,
  fallback: (req: IncomingMessage, res: ServerResponse, seen: Seen, self: Recorder & X) => void,
): Promise<Recorder & X> {
  const recorder: Recorder & X = {
    ...extra,
    url: '',
    seen: [],
    route: () => false,
    hanging: [],
    close: async () => undefined,
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      recorder.seen.push(seen);
      if (recorder.route(req, res, seen)) return;
      fallback(req, res, seen, recorder);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  recorder.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  recorder.close = () =>
    new Promise<void>((resolve) => {
      for (const res of recorder.hanging) res.destroy();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return recorder;
}

// ---------------------------------------------------------------------------
// header hygiene
// ---------------------------------------------------------------------------

/** Request headers that must not reach the provider (plus what `connection` names). */
export const HOSTILE_REQUEST_HEADERS: Record<string, string> = {
  'transfer-encoding': 'chunked',
  'proxy-authorization': 'Basic cHJveHk6c2VjcmV0',
  connection: 'keep-alive, x-hop-named',
  'x-hop-named': 'must-not-pass',
  'keep-alive': 'timeout=5',
  te: 'trailers',
  trailer: 'x-later',
  upgrade: 'h2c',
  'proxy-connection': 'keep-alive',
  origin: 'https://app.example',
  'x-forwarded-for': '203.0.113.7',
  'sec-fetch-site': 'same-origin',
};

/** The headers upstream must never see: the cookie and those of HOSTILE_REQUEST_HEADERS that no rewrite may keep. */
export const NEVER_UPSTREAM = ['cookie', 'proxy-authorization', 'x-hop-named', 'te', 'trailer', 'upgrade', 'proxy-connection', 'origin', 'x-forwarded-for', 'sec-fetch-site'];

/**
 * What the upstream saw of a POST of `hello` sent through the proxy with HOSTILE_REQUEST_HEADERS,
 * the session `cookie`, an app Authorization, `x-custom: passes` and `accept: application/json`:
 * the body intact and re-framed, the credential the proxy placed, none of the hostile headers.
 */
export function expectRequestHygiene(
  seen: Seen,
  expected: { url: string; authorization: string; host: string; cookie: string; never?: readonly string[] },
): void {
  expect(seen.url).toBe(expected.url);
  expect(seen.body.toString()).toBe('hello');
  expect(seen.headers['content-length']).toBe('5');
  expect(seen.headers['transfer-encoding']).toBeUndefined();
  expect(seen.headers.authorization).toBe(expected.authorization);
  expect(seen.headers.host).toBe(expected.host);
  expect(seen.headers['x-custom']).toBe('passes');
  expect(seen.headers.accept).toBe('application/json');
  for (const name of expected.never ?? NEVER_UPSTREAM) expect(seen.headers[name]).toBeUndefined();
  expect(seen.headers['keep-alive']).not.toBe('timeout=5');
  expect(JSON.stringify(seen.headers)).not.toContain(expected.cookie.split('=')[1]!);
}

/** Response headers the provider sends that must not reach the browser (and one that must). */
export const HOSTILE_RESPONSE_HEADERS: Record<string, string | string[]> = {
  'set-cookie': ['provider_session=abc; Path=/', 'other=1'],
  connection: 'x-upstream-hop',
  'x-upstream-hop': '1',
  'keep-alive': 'timeout=1',
  'x-kept': 'yes',
};

/** Answers a 302 to `location` that carries HOSTILE_RESPONSE_HEADERS (true, for a Recorder route). */
export function hostileRedirect(res: ServerResponse, location: string): true {
  for (const [name, value] of Object.entries(HOSTILE_RESPONSE_HEADERS)) res.setHeader(name, value);
  res.setHeader('location', location);
  res.writeHead(302);
  res.end();
  return true;
}

/** What reached the browser of an answer sent with HOSTILE_RESPONSE_HEADERS. */
export function expectResponseHygiene(headers: IncomingHttpHeaders | Record<string, unknown>): void {
  expect(headers['set-cookie']).toBeUndefined();
  expect(headers['x-upstream-hop']).toBeUndefined();
  expect(headers['keep-alive']).not.toBe('timeout=1');
  expect(headers['x-kept']).toBe('yes');
}

// ---------------------------------------------------------------------------
// host escapes
// ---------------------------------------------------------------------------

/** Paths after the mount point that try to leave the API host or base path. */
export const ESCAPE_VECTORS: Array<[string, string]> = [
  ['an absolute URL in the path', '/http://evil.example/x'],
  ['an encoded absolute URL', '/http:%2f%2fevil.example/x'],
  ['a scheme-relative "//host"', '//evil.example/x'],
  ['".."', '/../../token'],
  ['"%2e%2e"', '/%2e%2e/%2e%2e/token'],
  ['"%2E%2E" upper case', '/%2E%2E/token'],
  ['double-encoded "%252e%252e"', '/%252e%252e/%252e%252e/token'],
  ['"..%2f"', '/..%2f..%2ftoken'],
  ['"%2e%2e%5c"', '/%2e%2e%5c%2e%2e%5ctoken'],
  ['".." with a servlet parameter', '/..;/token'],
  ['"."', '/./things'],
  ['a backslash', '/\\evil.example'],
  ['an encoded backslash', '/%5cevil.example'],
  ['"/@host"', '/@evil.example'],
  ['"x@host"', '/x@evil'],
  ['an encoded "@"', '/x%40evil'],
  ['NUL', '/things%00.json'],
  ['CR LF', '/things%0d%0aX-Injected:%201'],
  ['a tab', '/th%09ings'],
  ['a full-width dot pair', '/%EF%BC%8E%EF%BC%8E/token'],
  ['a malformed escape', '/%zz'],
];

/** ESCAPE_VECTORS under the mount point `mount`, ready for `it.each`. */
export function escapeVectors(mount = ''): Array<[string, string]> {
  return ESCAPE_VECTORS.map(([name, rest]) => [name, `${mount}${rest}`]);
}
