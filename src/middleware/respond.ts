import type { NextFunction, Request, Response } from 'express';
import { ErrorCodes, OAuthKeeperError } from '../errors.js';
import type { KeeperLogger } from './context.js';

/**
 * The one writer of error answers — the keeper's routes, the guard's 401, logout and the
 * proxy all answer through here — so that `onError`, `Retry-After` and the shapes of JSON
 * and page answers are the same everywhere.
 */

/** A top-level browser navigation, as opposed to fetch/XHR/API clients. */
export function isNavigation(req: Request): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const mode = req.get('sec-fetch-mode');
  if (mode !== undefined) return mode === 'navigate';
  const accept = req.get('accept') ?? '';
  return /\btext\/html\b/.test(accept);
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export type ErrorHandlerOption = (error: OAuthKeeperError, req: Request, res: Response, next: NextFunction) => void;

/** The typed error for anything thrown: unexpected ones keep their cause, never their message. */
export function typed(error: unknown): OAuthKeeperError {
  return error instanceof OAuthKeeperError
    ? error
    : new OAuthKeeperError(ErrorCodes.INTERNAL_ERROR, 'Something unexpected went wrong while handling this request; the server log has its cause.', {
        cause: error,
        status: 500,
      });
}

/** Runs of 24+ token-ish characters (JWTs, opaque tokens, keys) masked: a cause's message may quote what it received. */
export function redact(text: string): string {
  return text.replace(/[\w.~+/=-]{24,}/g, (run) => `${run.slice(0, 4)}…[${run.length} chars]`);
}

/** The cause of an error, as a logger may print it: name, code, redacted message and stack, its own cause too (depth 3). */
export function describeCause(cause: unknown, depth = 0): Record<string, unknown> | undefined {
  if (cause === undefined || cause === null || depth > 2) return undefined;
  if (!(cause instanceof Error)) return { value: redact(String(cause)).slice(0, 500) };
  const code = (cause as { code?: unknown }).code;
  const inner = describeCause(cause.cause, depth + 1);
  return {
    name: cause.name,
    ...(typeof code === 'string' ? { code } : {}),
    message: redact(cause.message).slice(0, 500),
    ...(cause.stack === undefined ? {} : { stack: redact(cause.stack).split('\n').slice(0, 8).join('\n') }),
    ...(inner === undefined ? {} : { cause: inner }),
  };
}

/**
 * Logs the error with its cause (redacted: messages hold no token, causes are masked), sets
 * Retry-After, then: `onError` when given; else an unexpected error (not an OAuthKeeperError)
 * goes to the app's own Express error handler (`next(err)`); else the default answer.
 */
export function createResponder(logger: KeeperLogger, onError: ErrorHandlerOption | undefined, loginURL: (provider: string) => string) {
  return (error: unknown, req: Request, res: Response, next: NextFunction, json = false): void => {
    const known = typed(error);
    const cause = describeCause(known.cause);
    const fields = { code: known.code, provider: known.provider, status: known.status, message: known.message, ...(cause ? { cause } : {}) };
    if (known.status >= 500 && !known.transient) (logger.error ?? logger.warn)?.call(logger, 'oauth-keeper error', fields);
    else logger.warn?.('oauth-keeper error', fields);
    if (known.retryAfter !== undefined && !res.headersSent) res.set('retry-after', String(known.retryAfter));
    if (onError) return onError(known, req, res, next);
    if (!(error instanceof OAuthKeeperError)) return next(error);
    sendError(req, res, known, loginURL, json);
  };
}

/** The `WWW-Authenticate` and body fields of a 401 that says where to log in. */
export function unauthorizedParts(error: OAuthKeeperError, loginUrl: string): { challenge: string; extra: Record<string, unknown> } {
  const kind = error.code === ErrorCodes.REAUTHORIZATION_REQUIRED ? 'reauthorization_required' : 'authorization_required';
  return {
    challenge: `OAuthKeeper realm="${error.provider ?? ''}", error="${kind}", login_uri="${loginUrl}"`,
    extra: { ...(error.provider === undefined ? {} : { provider: error.provider }), loginUrl },
  };
}

/**
 * Answers with an error's safe form: JSON for API callers, a short page for browsers; a
 * 401 about a provider says where to log in (`WWW-Authenticate`, `loginUrl`).
 */
export function sendError(req: Request, res: Response, error: OAuthKeeperError, loginURL: (provider: string) => string, json = false): void {
  if (res.headersSent) return;
  res.status(error.status);
  res.set('cache-control', 'no-store');
  let extra: Record<string, unknown> = {};
  if (error.status === 401 && error.provider !== undefined) {
    const parts = unauthorizedParts(error, loginURL(error.provider));
    res.set('www-authenticate', parts.challenge);
    extra = parts.extra;
  }
  if (!json && (isNavigation(req) || (req.method === 'POST' && !/json/.test(req.get('accept') ?? '')))) {
    // Plain, and never a dead end: try the login again (when there is one to try), or go home.
    const again = error.provider !== undefined && error.code !== ErrorCodes.UNKNOWN_PROVIDER ? `<a href="${escapeHtml(loginURL(error.provider))}">Try again</a> · ` : '';
    res.type('html').send(
      `<!doctype html><meta charset="utf-8"><title>Sign-in problem</title>` +
        `<h1>Sign-in problem</h1><p>${escapeHtml(error.message)}</p><p><code>${escapeHtml(error.code)}</code></p>` +
        `<p>${again}<a href="/">Home</a></p>`,
    );
    return;
  }
  res.json({ ...error.toJSON(), ...extra });
}

