import type { Request, Response } from 'express';
import { OAuthKeeperError } from '../errors.js';

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

/** Answers with an error's safe form: JSON for API callers, a short page for browsers. */
export function sendError(req: Request, res: Response, error: OAuthKeeperError, extra: Record<string, unknown> = {}): void {
  if (res.headersSent) return;
  res.status(error.status);
  res.set('cache-control', 'no-store');
  if (isNavigation(req) || (req.method === 'POST' && !/json/.test(req.get('accept') ?? ''))) {
    res.type('html').send(
      `<!doctype html><meta charset="utf-8"><title>Sign-in problem</title>` +
        `<h1>Sign-in problem</h1><p>${escapeHtml(error.message)}</p><p><code>${escapeHtml(error.code)}</code></p>`,
    );
    return;
  }
  res.json({ ...error.toJSON(), ...extra });
}
