const PROBE_ORIGIN = 'http://return-to.invalid';

/**
 * Accepts only same-origin relative paths. Anything that a browser could read as
 * another host (`//evil`, `/\evil`, `https://...`, tabs or newlines that browsers
 * strip, and percent-encoded forms of all of these) falls back to `fallback`.
 */
export function safeReturnTo(input: unknown, fallback = '/'): string {
  const once = sameOriginPath(input);
  // Normalising dot segments can turn a harmless-looking input into a host (`/.//evil` → `//evil`):
  // the result must pass the same checks, and come out unchanged.
  return once !== undefined && sameOriginPath(once) === once ? once : fallback;
}

function sameOriginPath(input: unknown): string | undefined {
  if (typeof input !== 'string' || input.length === 0 || input.length > 2048) return undefined;
  const forms = [input];
  let decoded = input;
  for (let i = 0; i < 4; i += 1) {
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return undefined;
    }
    if (next === decoded) break;
    forms.push(next);
    decoded = next;
  }
  for (const form of forms) {
    if (!form.startsWith('/') || form.startsWith('//')) return undefined;
    // Backslashes read as slashes and control characters are dropped by browsers.
    if (/[\\\u0000-\u001f\u007f]/.test(form)) return undefined;
    // A decoded form whose dot segments fold into `//host` is refused too, whoever decodes it later.
    if (new URL(form, PROBE_ORIGIN).pathname.startsWith('//')) return undefined;
  }
  let url: URL;
  try {
    url = new URL(input, PROBE_ORIGIN);
  } catch {
    return undefined;
  }
  if (url.origin !== PROBE_ORIGIN) return undefined;
  return url.pathname + url.search + url.hash;
}
