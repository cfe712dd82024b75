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
    : new OAuthKeeperError(ErrorCodes.PROVIDER_ERROR, 'The sign-in could not be completed; see error.cause.', { cause: error, status: 500 });
}

/** Logs the error (never a token: messages hold none), sets Retry-After, then `onError` or the default answer. */
export function createResponder(logger: KeeperLogger, onError: ErrorHandlerOption | undefined, loginURL: (provider: string) => string) {
  return (error: unknown, req: Request, res: Response, next: NextFunction, json = false): void => {
    const known = typed(error);
    logger.warn?.('oauth-keeper error', { code: known.code, provider: known.provider, status: known.status, message: known.message });
    if (known.retryAfter !== undefined && !res.headersSent) res.set('retry-after', String(known.retryAfter));
    if (onError) return onError(known, req, res, next);
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
    res.type('html').send(
      `<!doctype html><meta charset="utf-8"><title>Sign-in problem</title>` +
        `<h1>Sign-in problem</h1><p>${escapeHtml(error.message)}</p><p><code>${escapeHtml(error.code)}</code></p>`,
    );
    return;
  }
  res.json({ ...error.toJSON(), ...extra });
}

