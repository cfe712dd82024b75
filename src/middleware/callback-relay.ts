import { createHash } from 'node:crypto';
import type { Request, Response } from 'express';
import { hasCookie } from '../passport/session.js';
import type { AnyStrategy } from './context.js';
import { escapeHtml } from './respond.js';

/**
 * Browsers drop SameSite=Lax cookies on a cross-site form POST (response_mode=form_post),
 * and never send a URL fragment to a server. Both arrive at the callback without what it
 * needs; a tiny same-origin page re-submits the parameters, this time with the session
 * cookie.
 *
 * The pages hold no inline script and no inline event handler, so that they work under a
 * strict Content-Security-Policy (`default-src 'self'`, helmet's default): their script is
 * served by the callback route itself, as a same-origin, cacheable, fixed URL
 * (`<callback path>?oauth_keeper_relay=<version>`). form_post also completes without
 * JavaScript: its page shows a submit button.
 */

/** What the relay script does with the page's one form: `fragment` adds the URL fragment's parameters first. */
const RELAY_SCRIPT = `(function () {
  var form = document.querySelector('form[data-oauth-keeper-relay]');
  if (!form) return;
  if (form.getAttribute('data-oauth-keeper-relay') === 'fragment') {
    var hash = location.hash.slice(1);
    if (!hash) {
      document.getElementById('oauth-keeper-relay-message').textContent = 'Nothing to complete: start the sign-in again.';
      return;
    }
    new URLSearchParams(hash).forEach(function (value, name) {
      var input = document.createElement('input');
      input.type = 'hidden';
      input.name = name;
      input.value = value;
      form.appendChild(input);
    });
    // The answer leaves the address bar (and the history) before it is posted.
    history.replaceState(null, '', location.pathname + location.search);
  }
  HTMLFormElement.prototype.submit.call(form);
})();
`;

/** Changes with the script, so that the URL can be cached for good. */
const RELAY_SCRIPT_VERSION = `v1-${createHash('sha256').update(RELAY_SCRIPT).digest('hex').slice(0, 16)}`;
const RELAY_MARK = 'oauth_keeper_relay';

/** Answers the request and returns true when a relay page, or the relay script, was needed. */
export function relayIfNeeded(strategy: AnyStrategy, cookieName: string, req: Request, res: Response): boolean {
  if (!strategy.provider.formPostCallback) return false;
  // Never protocol-relative (`//host/...`): the script URL stays on this origin.
  const path = req.originalUrl.split('?')[0]!.replace(/^\/+/, '/');
  if (req.method === 'POST' && !hasCookie(req, cookieName) && req.body?.[RELAY_MARK] === undefined) {
    // Every value goes through, repeated ones too: the strategy refuses a repeated parameter.
    const fields = Object.entries(req.body as Record<string, unknown>)
      .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).filter((one): one is string => typeof one === 'string').map((one) => [k, one] as const))
      .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
      .join('');
    sendRelayPage(
      req,
      res,
      path,
      'form_post',
      `${fields}<p>Completing sign-in… If nothing happens, press Continue.</p><button type="submit">Continue</button>`,
    );
    return true;
  }
  if (req.method !== 'GET') return false;
  const query = Object.keys(req.query);
  if (query.length === 1 && typeof req.query[RELAY_MARK] === 'string') {
    // Kept for good under its own version; a page of an older version (mid-deploy) still gets a script.
    res.set('cache-control', req.query[RELAY_MARK] === RELAY_SCRIPT_VERSION ? 'public, max-age=31536000, immutable' : 'no-cache');
    res.set('x-content-type-options', 'nosniff');
    res.set('content-type', 'text/javascript; charset=utf-8');
    res.send(RELAY_SCRIPT);
    return true;
  }
  if (query.length === 0) {
    sendRelayPage(
      req,
      res,
      path,
      'fragment',
      '<p id="oauth-keeper-relay-message">Completing sign-in…</p>' +
        '<noscript><p>This sign-in needs JavaScript: the provider put its answer where only a script can read it. Enable JavaScript and sign in again.</p></noscript>',
    );
    return true;
  }
  return false;
}

/**
 * The page: one form posting same-origin to the callback (marked, so the second POST is
 * not relayed again), then the external relay script from `path`. A CSP nonce the app keeps in
 * `res.locals.cspNonce` (helmet's documented convention) goes on the script tag too.
 */
function sendRelayPage(req: Request, res: Response, path: string, kind: 'form_post' | 'fragment', inside: string): void {
  const nonce = typeof res.locals['cspNonce'] === 'string' ? ` nonce="${escapeHtml(res.locals['cspNonce'])}"` : '';
  const script = `${path}?${RELAY_MARK}=${RELAY_SCRIPT_VERSION}`;
  res.set('cache-control', 'no-store');
  res.set('referrer-policy', 'no-referrer');
  res.set('x-content-type-options', 'nosniff');
  res.type('html').send(
    `<!doctype html><meta charset="utf-8"><title>Signing in…</title>` +
      `<form method="post" action="${escapeHtml(req.originalUrl)}" data-oauth-keeper-relay="${kind}"><input type="hidden" name="${RELAY_MARK}" value="1">${inside}</form>` +
      `<script src="${escapeHtml(script)}"${nonce} defer></script>`,
  );
}
