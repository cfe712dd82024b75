import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Fault, FaultTarget, SandboxEngine, SandboxUser } from './engine.js';

export interface SandboxRequest {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  /** The raw body text. */
  text: string;
  /** Query parameters merged with a form or JSON body's (body wins). */
  params: Record<string, string>;
  /** The form or JSON body's own parameters. */
  body: Record<string, string>;
}

export interface SandboxReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export type SandboxRoute = (req: SandboxRequest) => SandboxReply | Promise<SandboxReply>;

export const reply = {
  json(status: number, value: unknown, headers: Record<string, string> = {}): SandboxReply {
    return { status, headers: { 'content-type': 'application/json;charset=UTF-8', ...headers }, body: JSON.stringify(value) };
  },
  html(status: number, body: string): SandboxReply {
    return { status, headers: { 'content-type': 'text/html; charset=utf-8' }, body };
  },
  redirect(location: string): SandboxReply {
    return { status: 302, headers: { location }, body: '' };
  },
};

export interface SandboxServerOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
}

/** A running sandbox: its base URL, the engine's knobs and counters, and `close()`. */
export interface RunningSandbox {
  readonly url: string;
  readonly port: number;
  readonly engine: SandboxEngine;
  close(): Promise<void>;
}

function flatten(source: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(source)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else if (v !== null && v !== undefined) out[k] = JSON.stringify(v);
  }
  return out;
}

async function readRequest(req: IncomingMessage): Promise<SandboxRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const url = new URL(req.url ?? '/', 'http://sandbox.invalid');
  const query = Object.fromEntries(url.searchParams);
  let body: Record<string, string> = {};
  const type = req.headers['content-type'] ?? '';
  if (/json/i.test(type) && text.length > 0) {
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = flatten(parsed as Record<string, unknown>);
    } catch {
      body = {};
    }
  } else if (/x-www-form-urlencoded/i.test(type)) {
    body = Object.fromEntries(new URLSearchParams(text));
  }
  return { method: req.method ?? 'GET', url, headers: req.headers, text, params: { ...query, ...body }, body };
}

/**
 * Applies an injected fault to a reply: a delay, a status, a replaced or cut-off body.
 * `badSignature` is left to the protocols that sign their answers.
 */
export async function withFault(fault: Fault | undefined, produce: () => SandboxReply | Promise<SandboxReply>): Promise<SandboxReply> {
  if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
  if (fault?.until) await fault.until.catch(() => undefined);
  if (fault?.status !== undefined) {
    return {
      status: fault.status,
      headers: { 'content-type': 'application/json', ...fault.headers },
      body: fault.body ?? JSON.stringify({ error: 'server_error' }),
    };
  }
  const out = await produce();
  if (fault?.malformed) return { ...out, body: (out.body ?? '').slice(0, Math.max(1, Math.floor((out.body ?? '').length / 2))) };
  if (fault?.body !== undefined) return { ...out, body: fault.body };
  return out;
}

/** Serves a request to `target`: takes the fault queued for it, and counts the request when no fault answers instead. */
export function serve(engine: SandboxEngine, target: FaultTarget, produce: () => SandboxReply | Promise<SandboxReply>): Promise<SandboxReply> {
  return withFault(engine.takeFault(target), () => {
    engine.counters[target] += 1;
    return produce();
  });
}

/** Starts a node:http server over a route table; unknown paths get 404 JSON. */
export async function listen(
  engine: SandboxEngine,
  route: (req: SandboxRequest) => SandboxReply | Promise<SandboxReply> | undefined,
  options: SandboxServerOptions = {},
  rawHandler?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<RunningSandbox> {
  const server: Server = createServer((req, res) => {
    if (rawHandler?.(req, res)) return;
    void (async () => {
      try {
        const parsed = await readRequest(req);
        const out = (await route(parsed)) ?? reply.json(404, { error: 'not_found' });
        res.writeHead(out.status, out.headers ?? {});
        res.end(out.body ?? '');
      } catch (error) {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'server_error', error_description: (error as Error).message }));
      }
    })();
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    engine,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The sandbox's own login page: a form that posts the authorization request back
 * with the user's credentials and a decision (approve / deny).
 */
export function loginPage(title: string, action: string, hidden: Record<string, string>, users: SandboxUser[], failed = false): SandboxReply {
  const fields = Object.entries(hidden)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join('');
  const first = users[0];
  return reply.html(
    200,
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} — sandbox login</title>` +
      `<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}label{display:block;margin:.6rem 0}` +
      `input[type=text],input[type=password]{width:100%;padding:.4rem}button{padding:.5rem 1rem;margin-right:.5rem}.err{color:#b00}</style></head><body>` +
      `<h1>${escapeHtml(title)}</h1><p>Sandbox provider: sign in to authorize the app.</p>` +
      (failed ? '<p class="err" role="alert">Wrong username or password.</p>' : '') +
      `<form method="post" action="${escapeHtml(action)}">${fields}` +
      `<label>Username <input type="text" name="username" autocomplete="username" value="${escapeHtml(first?.username ?? '')}"></label>` +
      `<label>Password <input type="password" name="password" autocomplete="current-password" value="${escapeHtml(first?.password ?? '')}"></label>` +
      `<button type="submit" name="decision" value="approve" id="approve">Sign in and authorize</button>` +
      `<button type="submit" name="decision" value="deny" id="deny">Deny</button></form>` +
      `<p><small>Users: ${users.map((u) => escapeHtml(u.username)).join(', ')}</small></p></body></html>`,
  );
}

/**
 * The sign-in step of an authorization request `p`: the first user when `autoApprove`
 * is set; otherwise the login page (again after wrong credentials, without counting it),
 * `deny()` when the user denies, or the user who signed in.
 */
export function signIn(
  engine: SandboxEngine,
  req: SandboxRequest,
  p: Record<string, string>,
  page: { title: string; action: string },
  deny: () => SandboxReply,
): SandboxUser | SandboxReply {
  let user = engine.settings.autoApprove ? engine.users[0] : undefined;
  if (!user) {
    const { username: _u, password: _p, decision: _d, ...hidden } = p;
    if (req.method !== 'POST' || p['decision'] === undefined) {
      engine.counters.authorize += 1;
      return loginPage(page.title, page.action, hidden, engine.users);
    }
    if (p['decision'] === 'deny') return deny();
    user = engine.login(p['username'], p['password']);
    if (!user) return loginPage(page.title, page.action, hidden, engine.users, true);
  } else {
    engine.counters.authorize += 1;
  }
  return user;
}

/** Redirects to `redirectUri` with `params` in its query string, or in its fragment. */
export function redirectWithParams(redirectUri: string, params: Record<string, string>, inFragment: boolean): SandboxReply {
  const back = new URL(redirectUri);
  if (inFragment) back.hash = new URLSearchParams(params).toString();
  else for (const [k, v] of Object.entries(params)) back.searchParams.set(k, v);
  return reply.redirect(back.toString());
}

/** Reads the bearer token from an Authorization header. */
export function bearerToken(headers: IncomingMessage['headers']): string | undefined {
  const header = headers['authorization'];
  const match = typeof header === 'string' ? /^Bearer\s+(.+)$/i.exec(header) : null;
  return match?.[1];
}

/** Reads client credentials from HTTP Basic (RFC 6749 §2.3.1) or the parameters. */
export function clientCredentials(req: SandboxRequest): { clientId?: string; clientSecret?: string } {
  const header = req.headers['authorization'];
  if (typeof header === 'string' && /^Basic\s+/i.test(header)) {
    const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const dec = (v: string) => decodeURIComponent(v.replace(/\+/g, ' '));
    return { clientId: dec(decoded.slice(0, colon)), clientSecret: dec(decoded.slice(colon + 1)) };
  }
  const out: { clientId?: string; clientSecret?: string } = {};
  if (req.params['client_id'] !== undefined) out.clientId = req.params['client_id'];
  if (req.params['client_secret'] !== undefined) out.clientSecret = req.params['client_secret'];
  return out;
}
