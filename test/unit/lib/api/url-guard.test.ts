import { ErrorCodes, OAuthKeeperError } from '../../../../src/index';
import { isUnderBase, resolveApiInput, resolveApiPath, unsafePathReason } from '../../../../src/lib/api/url-guard';
import { forwardableRequestHeaders, returnableResponseHeaders } from '../../../../src/middleware/proxy';

const base = new URL('https://api.example.com/v2');

function names(headers: Headers): string[] {
  const out: string[] = [];
  headers.forEach((_value, name) => out.push(name));
  return out;
}

function refused(run: () => unknown): OAuthKeeperError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect((error as OAuthKeeperError).code).toBe(ErrorCodes.API_REQUEST_INVALID);
    expect((error as OAuthKeeperError).status).toBe(400);
    return error as OAuthKeeperError;
  }
  throw new Error('expected the request to be refused');
}

describe('resolveApiPath (req.url inside the proxy mount)', () => {
  it.each([
    ['/', 'https://api.example.com/v2/'],
    ['/users', 'https://api.example.com/v2/users'],
    ['/users/1?fields=a,b&x=%2F', 'https://api.example.com/v2/users/1?fields=a,b&x=%2F'],
    ['/files/a%20b.txt', 'https://api.example.com/v2/files/a%20b.txt'],
    ['/ids/a%2Fb', 'https://api.example.com/v2/ids/a%2Fb'],
    ['/projects/p1:run', 'https://api.example.com/v2/projects/p1:run'],
    ['/search?q=../../etc&next=http://evil.example', 'https://api.example.com/v2/search?q=../../etc&next=http://evil.example'],
    ['/caf%C3%A9', 'https://api.example.com/v2/caf%C3%A9'],
    ['/x#fragment', 'https://api.example.com/v2/x'],
  ])('keeps %s under the base', (relative, expected) => {
    expect(resolveApiPath(base, relative).href).toBe(expected);
  });

  it('works with a base at the root and with a trailing slash', () => {
    expect(resolveApiPath(new URL('https://api.example.com'), '/users').href).toBe('https://api.example.com/users');
    expect(resolveApiPath(new URL('https://api.example.com/v2/'), '/users').href).toBe('https://api.example.com/v2/users');
    expect(resolveApiPath(new URL('https://api.example.com/v2/'), '/').href).toBe('https://api.example.com/v2/');
  });

  it.each([
    'http://evil.example/x',
    'evil.example',
    '//evil.example',
    '//evil.example/v2/x',
    '/http://evil.example',
    '/http:%2F%2Fevil.example',
    '/..',
    '/../admin',
    '/a/../../admin',
    '/%2e%2e/admin',
    '/%2E%2E/admin',
    '/.%2e/admin',
    '/%252e%252e/admin',
    '/%25252e%25252e/admin',
    '/..%2fadmin',
    '/..%2Fadmin',
    '/a%2f..%2f..%2fadmin',
    '/%2e%2e%5cadmin',
    '/..\\admin',
    '/\\evil.example',
    '/%5cevil.example',
    '/%255cevil.example',
    '/..;/admin',
    '/./x',
    '/@evil.example',
    '/x@evil',
    '/x%40evil',
    '/x%2540evil',
    '/a%00b',
    '/a%0d%0aSet-Cookie:%20x=1',
    '/a%09b',
    '/a%7fb',
    '/a\u0000b',
    '/\uff0e\uff0e/admin',
    '/%EF%BC%8E%EF%BC%8E/admin',
    '/%zz',
    '/%E0%A4%A',
    '/a//b',
    '/%2f%2fevil.example',
    '/%2525252e',
  ])('refuses %j', (relative) => {
    refused(() => resolveApiPath(base, relative));
  });

  it('refuses control characters in the query', () => {
    refused(() => resolveApiPath(base, '/x?a=\r\nb'));
  });

  it('never echoes the path in its message', () => {
    const error = refused(() => resolveApiPath(base, '/../secret-token-in-path', 'acme'));
    expect(error.message).not.toContain('secret-token-in-path');
    expect(error.provider).toBe('acme');
  });
});

describe('resolveApiInput (oauthFetch input)', () => {
  it.each([
    ['/users', 'https://api.example.com/v2/users'],
    ['users?x=1', 'https://api.example.com/v2/users?x=1'],
    ['', 'https://api.example.com/v2/'],
    ['https://api.example.com/v2', 'https://api.example.com/v2'],
    ['https://api.example.com/v2/users?x=1', 'https://api.example.com/v2/users?x=1'],
    ['HTTPS://API.EXAMPLE.COM/v2/users', 'https://api.example.com/v2/users'],
    ['https://api.example.com:443/v2/users', 'https://api.example.com/v2/users'],
  ])('accepts %j', (input, expected) => {
    expect(resolveApiInput(base, input).href).toBe(expected);
  });

  it('accepts a URL object under the base', () => {
    expect(resolveApiInput(base, new URL('https://api.example.com/v2/a')).href).toBe('https://api.example.com/v2/a');
  });

  it.each([
    'https://evil.example/v2/users',
    'http://api.example.com/v2/users',
    'https://api.example.com:8443/v2/users',
    'https://api.example.com/v3/users',
    'https://api.example.com/v2x/users',
    'https://api.example.com/',
    'https://api.example.com/v2/../admin',
    'https://api.example.com/v2/%2e%2e/admin',
    'https://api.example.com/v2/x/..%2f..%2fadmin',
    'https://user:pass@api.example.com/v2/users',
    'https://api.example.com@evil.example/v2/users',
    'https:api.example.com/v2/users',
    'https:\\\\evil.example/v2',
    'https://api.example.com\\@evil.example/v2',
    'https://api.example.com/v2/\tx',
    'javascript:alert(1)',
    'file:///etc/passwd',
    '//evil.example/v2/users',
    '../admin',
    '@evil.example',
    'x@evil',
    '\\\\evil.example',
  ])('refuses %j', (input) => {
    refused(() => resolveApiInput(base, input));
  });
});

describe('isUnderBase', () => {
  it('compares origin and whole path segments', () => {
    expect(isUnderBase(base, new URL('https://api.example.com/v2'))).toBe(true);
    expect(isUnderBase(base, new URL('https://api.example.com/v2/x'))).toBe(true);
    expect(isUnderBase(base, new URL('https://api.example.com/v20'))).toBe(false);
    expect(isUnderBase(base, new URL('https://api.example.com.evil.example/v2'))).toBe(false);
  });
});

describe('unsafePathReason', () => {
  it('gives no reason for ordinary paths', () => {
    expect(unsafePathReason('/users/1/posts')).toBeUndefined();
  });
  it('names the problem', () => {
    expect(unsafePathReason('/a/../b')).toMatch(/\.\./);
    expect(unsafePathReason('/a\\b')).toMatch(/backslash/);
  });
});

describe('header hygiene', () => {
  it('never forwards credentials, cookies, host or hop-by-hop headers', () => {
    const headers = forwardableRequestHeaders({
      cookie: 'sid=1',
      authorization: 'Basic x',
      'proxy-authorization': 'Basic y',
      host: 'app.example',
      connection: 'keep-alive, x-named',
      'x-named': '1',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      trailer: 'x',
      'transfer-encoding': 'chunked',
      upgrade: 'websocket',
      'proxy-connection': 'keep-alive',
      'content-length': '12',
      accept: 'application/json',
      'x-api-version': '3',
    });
    expect(names(headers).sort()).toEqual(['accept', 'x-api-version']);
  });

  it('drops browser context headers by default, not with a deny list of its own', () => {
    const incoming = { origin: 'https://app.example', referer: 'https://app.example/p', 'sec-fetch-mode': 'cors', 'x-forwarded-for': '1.2.3.4', 'x-a': '1' };
    expect(names(forwardableRequestHeaders(incoming))).toEqual(['x-a']);
    expect(names(forwardableRequestHeaders(incoming, { deny: ['x-a'] })).sort()).toEqual(['origin', 'referer', 'sec-fetch-mode', 'x-forwarded-for']);
  });

  it('forwards only the allowed headers (and a body content type), never credentials', () => {
    const headers = forwardableRequestHeaders(
      { 'x-a': '1', 'x-b': '2', 'content-type': 'text/plain', cookie: 'sid=1', authorization: 'x' },
      { allow: ['X-A', 'cookie', 'authorization'] },
    );
    expect(names(headers).sort()).toEqual(['content-type', 'x-a']);
  });

  it('passes back neither Set-Cookie nor hop-by-hop headers', () => {
    const upstream = new Headers({
      'content-type': 'application/json',
      connection: 'close, x-hop',
      'x-hop': '1',
      'keep-alive': 'timeout=1',
      'transfer-encoding': 'chunked',
      'proxy-authenticate': 'Basic',
      etag: '"1"',
    });
    upstream.append('set-cookie', 'a=1');
    expect(names(returnableResponseHeaders(upstream)).sort()).toEqual(['content-type', 'etag']);
  });

  it('refuses a malformed forwardHeaders option', () => {
    expect(() => forwardableRequestHeaders({}, { allow: 'x-a' } as unknown as { allow: string[] })).toThrow(/forwardHeaders/);
  });
});
