import type { Request } from 'express';
import type { OAuthFetch } from './fetch.js';

/**
 * `req.oauthFetch` without a function per request. `keeper.middleware()` marks the request
 * (`req.oauthKeeper`); a getter on the app's request prototype makes the request's function
 * on its first read and keeps it as the request's own property. A request nobody calls the
 * API from allocates nothing for it.
 *
 * The prototype is Express's `app.request` of the outermost app the request is in: the object
 * Express makes per app for the app to extend, which the `app.request` of every sub-app mounted
 * under it inherits (Express 4 and 5 alike), so the getter follows the request into and out of
 * sub-apps. A request without such a prototype (not Express's) gets its function at once.
 */

/** What the getter finds on `req.oauthKeeper`: its keeper's maker of the request's function. */
export const FETCH_MAKER = Symbol.for('oauth-keeper.request-fetch');

export type FetchMaker = (req: Request) => OAuthFetch;

const hasOwn = (target: object, key: PropertyKey): boolean => Object.prototype.hasOwnProperty.call(target, key);

/** Kept as a plain own property from then on: assignable, as an assignment to `req.oauthFetch` makes it. */
function keep(req: object, value: unknown): void {
  Object.defineProperty(req, 'oauthFetch', { value, writable: true, enumerable: true, configurable: true });
}

function makerOf(req: Request): FetchMaker | undefined {
  const context = req.oauthKeeper as { [FETCH_MAKER]?: FetchMaker } | undefined;
  return context?.[FETCH_MAKER];
}

const accessor: PropertyDescriptor = Object.freeze({
  configurable: true,
  enumerable: false,
  get(this: Request): OAuthFetch | undefined {
    const make = makerOf(this);
    // Where keeper.middleware() did not run, there is none, as before.
    if (make === undefined) return undefined;
    const made = make(this);
    keep(this, made);
    return made;
  },
  set(this: object, value: unknown): void {
    keep(this, value);
  },
});

/** Request prototypes known to carry the getter (themselves or through their parents). */
const equipped = new WeakSet<object>();
/** Request prototypes that cannot carry it: not Express's, or one with an `oauthFetch` of the app's own. */
const eager = new WeakSet<object>();

/** The outermost `app.request` above `proto` (each has its app as an own `app`), if any. */
function outermostAppRequest(proto: object | null): object | undefined {
  let found: object | undefined;
  for (let p = proto; p !== null && hasOwn(p, 'app'); p = Object.getPrototypeOf(p) as object | null) found = p;
  return found;
}

function equip(proto: object | null): boolean {
  if (proto === null || eager.has(proto)) return false;
  const target = outermostAppRequest(proto);
  const own = target === undefined ? undefined : Object.getOwnPropertyDescriptor(target, 'oauthFetch');
  // An accessor with a getter there is this one (or the other build's: both read FETCH_MAKER).
  if (target === undefined || (own !== undefined && typeof own.get !== 'function')) {
    eager.add(proto);
    return false;
  }
  if (own === undefined) Object.defineProperty(target, 'oauthFetch', accessor);
  equipped.add(proto);
  return true;
}

/**
 * Sets `req.oauthFetch` up for a request `keeper.middleware()` just marked with `context`
 * (`context[FETCH_MAKER]` set): nothing per request beyond a prototype lookup, unless the
 * request already has one of its own (another keeper's, read before): then it is replaced now.
 */
export function attachOAuthFetch(req: Request, make: FetchMaker): void {
  const proto = Object.getPrototypeOf(req) as object | null;
  if ((proto !== null && equipped.has(proto)) || equip(proto)) {
    if (hasOwn(req, 'oauthFetch')) req.oauthFetch = make(req);
    return;
  }
  req.oauthFetch = make(req);
}
