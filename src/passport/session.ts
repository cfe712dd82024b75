/// <reference types="express-session" preserve="true" />
/// <reference types="passport" preserve="true" />
import type { Request } from 'express';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import { randomToken } from '../lib/pkce.js';

/** One pending login, keyed by its state. Lives in the session, never in a cookie or URL. */
export interface LoginTransaction {
  provider: string;
  redirectUri: string;
  returnTo: string;
  codeVerifier?: string;
  nonce?: string;
  createdAt: number;
  /** The app's own `state` data of `authenticate()`, handed back after the login. */
  appState?: unknown;
}

/** What oauth-keeper keeps in `req.session.oauthKeeper`. */
export interface KeeperSessionData {
  /** Random id that keys this session's token sets in the store (survives id regeneration). */
  owner?: string;
  /** Pending logins by state: several tabs can log in at once. */
  tx?: Record<string, LoginTransaction>;
}

declare module 'express-session' {
  interface SessionData {
    oauthKeeper?: KeeperSessionData;
  }
}

export function requireSession(req: Request, who: string): NonNullable<Request['session']> {
  if (!req.session || typeof req.session.save !== 'function') {
    throw new OAuthKeeperError(
      ErrorCodes.SESSION_NOT_AVAILABLE,
      `${who} needs express-session: mount app.use(session({ ..., resave: false, saveUninitialized: false })) before it.`,
    );
  }
  return req.session;
}

export function keeperData(req: Request, who: string): KeeperSessionData {
  const session = requireSession(req, who);
  session.oauthKeeper ??= {};
  return session.oauthKeeper;
}

/** The session's token owner id, created on first use. */
export function ownerOf(req: Request, create: boolean): string | undefined {
  const session = req.session;
  if (!session) return undefined;
  if (!session.oauthKeeper?.owner) {
    if (!create) return undefined;
    session.oauthKeeper = { ...session.oauthKeeper, owner: randomToken(18) };
  }
  return session.oauthKeeper!.owner;
}

export interface TransactionLimits {
  ttlMs: number;
  max: number;
}

export function addTransaction(req: Request, state: string, tx: LoginTransaction, limits: TransactionLimits): void {
  const data = keeperData(req, 'The login route');
  const now = Date.now();
  const live = Object.entries(data.tx ?? {}).filter(([, t]) => now - t.createdAt < limits.ttlMs);
  live.sort((a, b) => a[1].createdAt - b[1].createdAt);
  while (live.length > 0 && live.length >= Math.max(1, limits.max)) live.shift();
  live.push([state, tx]);
  data.tx = Object.fromEntries(live);
}

export type TakenTransaction = { found: LoginTransaction } | { expired: true } | { missing: true };

/** Removes and returns the pending login for `state`: each state is usable once. */
export function takeTransaction(req: Request, state: string, limits: TransactionLimits): TakenTransaction {
  const data = req.session?.oauthKeeper;
  const tx = data?.tx?.[state];
  if (!data?.tx || !tx || !Object.prototype.hasOwnProperty.call(data.tx, state)) return { missing: true };
  delete data.tx[state];
  if (Date.now() - tx.createdAt >= limits.ttlMs) return { expired: true };
  return { found: tx };
}

export function saveSession(req: Request): Promise<void> {
  const session = requireSession(req, 'oauth-keeper');
  return new Promise((resolve, reject) => session.save((err: unknown) => (err ? reject(err) : resolve())));
}

/** New session id, same data: defeats session fixation without losing pending state or returnTo. */
export function regenerateSession(req: Request): Promise<void> {
  const session = requireSession(req, 'oauth-keeper');
  const keep: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(session)) if (key !== 'cookie' && key !== 'id') keep[key] = value;
  return new Promise((resolve, reject) =>
    session.regenerate((err: unknown) => {
      if (err) return reject(err);
      Object.assign(req.session, keep);
      resolve();
    }),
  );
}

export function destroySession(req: Request): Promise<void> {
  const session = req.session;
  if (!session) return Promise.resolve();
  return new Promise((resolve, reject) => session.destroy((err: unknown) => (err ? reject(err) : resolve())));
}

/** Whether the request carries a cookie named `name` (to tell "cookie not sent" from "state mismatch"). */
export function hasCookie(req: Request, name: string): boolean {
  return (req.headers.cookie ?? '').split(';').some((part) => part.trim().startsWith(`${name}=`));
}

/**
 * The host the browser used, as Express's `trust proxy` says: `X-Forwarded-Host` only
 * when the proxy that sent it is trusted, the `Host` header otherwise (port kept, on
 * Express 4 and 5 alike).
 */
export function publicHost(req: Request): string {
  const trust = req.app?.get?.('trust proxy fn') as ((address: string | undefined, hop: number) => boolean) | undefined;
  const forwarded = req.get('x-forwarded-host');
  if (forwarded && trust?.(req.socket?.remoteAddress, 0)) return forwarded.split(',')[0]!.trim();
  return req.get('host') ?? '';
}

/** The first parameter that is not a single string: repeated (`a=1&a=2`) or nested (`a[b]=1`). */
export function repeatedParameter(source: unknown): string | undefined {
  if (source === null || typeof source !== 'object') return undefined;
  for (const [key, value] of Object.entries(source as Record<string, unknown>)) if (typeof value !== 'string') return key;
  return undefined;
}
