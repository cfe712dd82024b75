import { Transform, type TransformCallback } from 'node:stream';

/**
 * Keeping what the package attached to an API call out of what goes back to the caller.
 * An upstream may echo a credential in its answer — Spring Security's resource server
 * answers `{"error":"invalid_token","error_description":"Invalid access token: <token>"}` —
 * and the caller is a browser. Every occurrence of a secret, raw, percent-encoded or
 * JSON-escaped, is overwritten with `*` of the same length, so that lengths (and a
 * `Content-Length`) stay right, in buffered and streamed answers alike.
 */

/** Too short a value would match ordinary text; real credentials are far longer. */
const MIN_SECRET_LENGTH = 8;

/** The byte forms of the secrets to look for, longest first. */
export function secretForms(secrets: ReadonlyArray<string | undefined>): Buffer[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'));
  }
  return [...forms].map((form) => Buffer.from(form, 'utf8')).sort((a, b) => b.length - a.length);
}

/** Overwrites every complete occurrence in place; returns the end of the last one, or -1. */
function maskAll(buffer: Buffer, forms: readonly Buffer[]): number {
  let lastEnd = -1;
  for (const form of forms) {
    let at = buffer.indexOf(form);
    while (at !== -1) {
      buffer.fill(0x2a, at, at + form.length);
      lastEnd = Math.max(lastEnd, at + form.length);
      at = buffer.indexOf(form, at + form.length);
    }
  }
  return lastEnd;
}

/** A copy of `body` with every secret masked (the same buffer when there is nothing to mask). */
export function scrubBuffer(body: Buffer, forms: readonly Buffer[]): Buffer {
  if (forms.length === 0 || !forms.some((form) => body.includes(form))) return body;
  const copy = Buffer.from(body);
  maskAll(copy, forms);
  return copy;
}

/** Whether any header value holds a secret (`texts`: the forms as strings). */
export function holdsSecret(value: string, texts: readonly string[]): boolean {
  return texts.some((text) => value.includes(text));
}

/** Length of the longest end of `buffer` (after `from`) that is how some secret begins. */
function pendingPrefix(buffer: Buffer, from: number, forms: readonly Buffer[]): number {
  let longest = 0;
  for (const form of forms) {
    const first = form[0]!;
    const start = Math.max(from, buffer.length - form.length + 1);
    for (let at = buffer.indexOf(first, start); at !== -1; at = buffer.indexOf(first, at + 1)) {
      const length = buffer.length - at;
      if (length > longest && buffer.subarray(at).equals(form.subarray(0, length))) longest = length;
      if (longest > 0 && length <= longest) break;
    }
  }
  return longest;
}

/**
 * A stream that masks secrets split across chunks too: it holds back only an end of a
 * chunk that could be the start of a secret, until the next chunk tells; everything
 * else flows on at once.
 */
export class ScrubStream extends Transform {
  readonly #forms: readonly Buffer[];
  #tail: Buffer = Buffer.alloc(0);

  constructor(forms: readonly Buffer[]) {
    super();
    this.#forms = forms;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    // Masked in place: the chunk is this answer's own (copied only to join a held-back end).
    const combined = this.#tail.length === 0 ? chunk : Buffer.concat([this.#tail, chunk]);
    const lastEnd = maskAll(combined, this.#forms);
    const cut = combined.length - pendingPrefix(combined, Math.max(0, lastEnd), this.#forms);
    this.#tail = combined.subarray(cut);
    if (cut > 0) this.push(combined.subarray(0, cut));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.#tail.length > 0) this.push(this.#tail);
    done();
  }
}
