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
});
