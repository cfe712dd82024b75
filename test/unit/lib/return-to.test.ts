import { safeReturnTo } from '../../../src/lib/return-to';

describe('safeReturnTo', () => {
  it.each([
    ['/', '/'],
    ['/page', '/page'],
    ['/page?x=1&y=%2F', '/page?x=1&y=%2F'],
    ['/a/b#frag', '/a/b#frag'],
    ['/caf%C3%A9', '/caf%C3%A9'],
  ])('keeps the same-origin path %s', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
  });

  it.each([
    '//evil.example',
    '//evil.example/path',
    '/\\evil.example',
    '\\\\evil.example',
    'https://evil.example',
    'http:evil.example',
    'javascript:alert(1)',
    '%2F%2Fevil.example',
    '/%2F/evil.example',
    '/%5Cevil.example',
    '/%255Cevil.example',
    '%252F%252Fevil.example',
    '/\t/evil.example',
    '/%09/evil.example',
    '/\n/evil.example',
    '/%0d%0a/evil.example',
    'evil.example',
    '',
    '/%E0%A4%A',
  ])('falls back to / for %j', (input) => {
    expect(safeReturnTo(input)).toBe('/');
  });

  it('falls back for non-strings and over-long values', () => {
    expect(safeReturnTo(undefined)).toBe('/');
    expect(safeReturnTo(['/a'])).toBe('/');
    expect(safeReturnTo({ toString: () => '/a' })).toBe('/');
    expect(safeReturnTo('/' + 'a'.repeat(3000))).toBe('/');
  });

  it('uses the given fallback', () => {
    expect(safeReturnTo('//evil', '/home')).toBe('/home');
  });

  // Dot segments that a URL parser folds away, in front of the separators a browser reads as "another host".
  const DOT_PREFIXES = ['/.', '/..', '/%2e', '/%2E%2E', '/a/..', '/a/b/../..', '/./.', '/%2e%2e/%2e%2e', '/.%2e', '/%252e%252e'];
  const HOST_STARTS = ['//evil.example', '/\\evil.example', '/%2F/evil.example', '/%5Cevil.example', '/%2f%2fevil.example'];
  const DOT_VECTORS = DOT_PREFIXES.flatMap((prefix) => HOST_STARTS.map((start) => prefix + start));

  it(`refuses all ${DOT_VECTORS.length} dot-segment vectors that normalise into another host`, () => {
    expect(DOT_VECTORS.length).toBeGreaterThanOrEqual(50);
    const kept = DOT_VECTORS.filter((vector) => safeReturnTo(vector) !== '/');
    expect(kept).toEqual([]);
  });

  it('keeps dot segments that stay on the app, normalised', () => {
    expect(safeReturnTo('/a/../b')).toBe('/b');
    expect(safeReturnTo('/a/./b?x=1')).toBe('/a/b?x=1');
    expect(safeReturnTo('/..')).toBe('/');
  });

  it('whatever the input, what it returns is a same-origin path that it returns unchanged', () => {
    const pieces = ['/', '//', '\\', '.', '..', '%2e', '%2f', '%5c', '%252f', 'evil.example', '@', ':', '?', '#', '\t', '%09', 'a'];
    const app = 'https://app.example';
    let checked = 0;
    for (const a of pieces) {
      for (const b of pieces) {
        for (const c of pieces) {
          const out = safeReturnTo(`/${a}${b}${c}`);
          expect(new URL(out, app).origin).toBe(app);
          expect(out.startsWith('/') && !out.startsWith('//') && !out.startsWith('/\\')).toBe(true);
          expect(safeReturnTo(out)).toBe(out);
          checked += 1;
        }
      }
    }
    expect(checked).toBe(pieces.length ** 3);
  });
});
