import type { Request, Response } from 'express';
import { hasCookie } from '../passport/session.js';
import type { AnyStrategy } from './context.js';
import { escapeHtml } from './respond.js';

/**
 * Browsers drop SameSite=Lax cookies on a cross-site form POST (response_mode=form_post),
 * and never send a URL fragment to a server. Both arrive at the callback without what it
 * needs; a tiny same-origin page re-submits the parameters, this time with the session
 * cookie. Answers the request and returns true when a relay page was needed.
 */
export function relayIfNeeded(strategy: AnyStrategy, cookieName: string, req: Request, res: Response): boolean {
  if (!strategy.provider.formPostCallback) return false;
  if (req.method === 'POST' && !hasCookie(req, cookieName) && req.body?.['oauth_keeper_relay'] === undefined) {
    // Every value goes through, repeated ones too: the strategy refuses a repeated parameter.
    const fields = Object.entries(req.body as Record<string, unknown>)
      .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).filter((one): one is string => typeof one === 'string').map((one) => [k, one] as const))
      .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
      .join('');
    sendRelayPage(
      res,
      `<form method="post" action="${escapeHtml(req.originalUrl)}">${fields}<input type="hidden" name="oauth_keeper_relay" value="1">` +
        `<noscript><button>Continue</button></noscript></form><script>document.forms[0].submit()</script>`,
    );
    return true;
  }
  if (req.method === 'GET' && Object.keys(req.query).length === 0) {
    sendRelayPage(
      res,
      `<form method="post" action="${escapeHtml(req.originalUrl)}"><input type="hidden" name="oauth_keeper_relay" value="1"></form>` +
        `<p id="m">Completing sign-in…</p><script>(function(){var h=location.hash.slice(1);if(!h){document.getElementById('m').textContent='Nothing to complete: start the sign-in again.';return}` +
        `var f=document.forms[0];new URLSearchParams(h).forEach(function(v,k){var i=document.createElement('input');i.type='hidden';i.name=k;i.value=v;f.appendChild(i)});` +
        `history.replaceState(null,'',location.pathname+location.search);f.submit()})()</script>`,
    );
    return true;
  }
  return false;
}

function sendRelayPage(res: Response, body: string): void {
  res.set('cache-control', 'no-store');
  res.set('referrer-policy', 'no-referrer');
  res.type('html').send(`<!doctype html><meta charset="utf-8"><title>Signing in…</title>${body}`);
}
