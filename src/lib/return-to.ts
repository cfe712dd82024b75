const PROBE_ORIGIN = 'http://return-to.invalid';

/**
 * Accepts only same-origin relative paths. Anything that a browser could read as
 * another host (`//evil`, `/\evil`, `https://...`, tabs or newlines that browsers
 * strip, and percent-encoded forms of all of these) falls back to `fallback`.
 */
export function safeReturnTo(input: unknown, fallback = '/'): string {
  if (typeof input !== 'string' || input.length === 0 || input.length > 2048) return fallback;
  const forms = [input];
  let decoded = input;
  for (let i = 0; i < 4; i += 1) {
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return fallback;
    }
    if (next === decoded) break;
    forms.push(next);
    decoded = next;
  }
  for (const form of forms) {
    if (!form.startsWith('/') || form.startsWith('//')) return fallback;
    // Backslashes read as slashes and control characters are dropped by browsers.
    if (/[\\\u0000-\u001f\u007f]/.test(form)) return fallback;
  }
  let url: URL;
  try {
    url = new URL(input, PROBE_ORIGIN);
  } catch {
    return fallback;
  }
  if (url.origin !== PROBE_ORIGIN) return fallback;
  return url.pathname + url.search + url.hash;
}
