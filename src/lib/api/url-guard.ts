import { apiRequestInvalid } from './types.js';

/**
 * Keeping requests on the API host and under its base path: whatever a caller asks for,
 * the target is the API base or below it, never another host or a parent path.
 */

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why a path (the part after the API base, raw as received) is refused, or undefined
 * when it is safe. Checked raw and after each layer of percent-decoding (and its NFKC
 * form, for servers that fold look-alike characters), so `%2e%2e`, `%252e%252e` and
 * `..%2f` are seen as the `..` they become upstream.
 */
export function unsafePathReason(path: string): string | undefined {
  if (path.length > 8192) return 'the path is too long';
  const forms = [path];
  let current = path;
  for (let layer = 0; ; layer += 1) {
    let next: string;
    try {
      next = decodeURIComponent(current);
    } catch {
      return 'the path has a malformed percent-encoding';
    }
    if (next === current) break;
    if (layer === 4) return 'the path is percent-encoded too many times';
    forms.push(next);
    current = next;
  }
  for (const form of forms) {
    for (const text of form.normalize('NFKC') === form ? [form] : [form, form.normalize('NFKC')]) {
      if (CONTROL.test(text)) return 'the path contains control characters';
      if (text.includes('\\')) return 'the path contains a backslash';
      if (text.includes('@')) return 'the path contains "@"';
      if (text.includes('//')) return 'the path contains an empty segment ("//"), which could name another host';
      for (const segment of text.split('/')) {
        // `..;x` is `..` to servlet containers.
        const name = segment.split(';', 1)[0];
        if (name === '..' || name === '.') return 'the path contains a "." or ".." segment';
      }
    }
  }
  return undefined;
}

function basePrefix(base: URL): string {
  return base.pathname.replace(/\/+$/, '');
}

/** Whether `url` is on the base's origin and at or under its path. */
export function isUnderBase(base: URL, url: URL): boolean {
  if (url.origin !== base.origin || url.username !== '' || url.password !== '') return false;
  const prefix = basePrefix(base);
  return prefix === '' || url.pathname === prefix || url.pathname.startsWith(`${prefix}/`);
}

/**
 * Resolves `relative` (a path such as `/users/1?x=y`, as `req.url` inside a mount)
 * under the API base. Throws API_REQUEST_INVALID (400) for anything that could leave
 * the base's host or path.
 */
export function resolveApiPath(base: URL, relative: string, provider = 'the provider'): URL {
  const refuse = (why: string) => apiRequestInvalid(provider, `The ${provider} API request was refused: ${why}.`);
  if (!relative.startsWith('/')) throw refuse('only a path under the API base is accepted, not an absolute URL');
  const hashAt = relative.indexOf('#');
  const withoutHash = hashAt === -1 ? relative : relative.slice(0, hashAt);
  const queryAt = withoutHash.indexOf('?');
  const path = queryAt === -1 ? withoutHash : withoutHash.slice(0, queryAt);
  const query = queryAt === -1 ? '' : withoutHash.slice(queryAt);
  if (CONTROL.test(query)) throw refuse('the query contains control characters');
  const why = unsafePathReason(path);
  if (why !== undefined) throw refuse(why);
  const joined = basePrefix(base) + path;
  let url: URL;
  try {
    url = new URL(joined + query, base.origin);
  } catch {
    throw refuse('the path is not a valid URL path');
  }
  if (!isUnderBase(base, url)) throw refuse('the target is not under the API base URL');
  return url;
}

/**
 * Resolves fetch-style input: a path (`/users`, `users?x=1`) is taken under the API
 * base; an absolute URL is accepted only when it is already under the API base.
 */
export function resolveApiInput(base: URL, input: string | URL, provider = 'the provider'): URL {
  const refuse = (why: string) => apiRequestInvalid(provider, `The ${provider} API request was refused: ${why}.`);
  const text = input instanceof URL ? input.href : input;
  if (typeof text !== 'string') throw refuse('the input must be a path or a URL');
  // URL parsing silently drops tabs and newlines and reads "\" as "/": refuse them up front.
  if (CONTROL.test(text)) throw refuse('the URL contains control characters');
  if (text.includes('\\')) throw refuse('the URL contains a backslash');
  if (text.startsWith('//')) throw refuse('a scheme-relative URL ("//host") is not accepted');
  if (!/^[a-z][a-z0-9+.-]*:/i.test(text)) {
    return resolveApiPath(base, text.startsWith('/') ? text : `/${text}`, provider);
  }
  const authority = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/i.exec(text);
  if (!authority) throw refuse('the URL is not an absolute http(s) URL');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw refuse('the URL is not valid');
  }
  if (!isUnderBase(base, url)) throw refuse('the URL is not under the API base URL');
  const rawPath = authority[1] ?? '';
  const why = unsafePathReason(rawPath === '' ? '/' : rawPath) ?? unsafePathReason(url.pathname);
  if (why !== undefined) throw refuse(why);
  url.hash = '';
  return url;
}
