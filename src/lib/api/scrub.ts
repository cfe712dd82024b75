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

const EMPTY = Buffer.alloc(0);

/**
 * Masks secrets in an answer that comes in chunks, those split across chunks too: it holds
 * back only an end of a chunk that could be the start of a secret, until the next chunk
 * tells; everything else is handed back at once. Chunks are masked in place (they are the
 * answer's own; copied only to join a held-back end).
 */
export class Masker {
  readonly #forms: readonly Buffer[];
  #tail: Buffer = EMPTY;

  constructor(forms: readonly Buffer[]) {
    this.#forms = forms;
  }

  /** The masked bytes of `chunk` (and of the end held back before it) that can go on now. */
  push(chunk: Buffer): Buffer {
    const combined = this.#tail.length === 0 ? chunk : Buffer.concat([this.#tail, chunk]);
    const lastEnd = maskAll(combined, this.#forms);
    const cut = combined.length - pendingPrefix(combined, Math.max(0, lastEnd), this.#forms);
    this.#tail = cut === combined.length ? EMPTY : combined.subarray(cut);
    return cut === combined.length ? combined : combined.subarray(0, cut);
  }

  /** What is still held back, at the end of the answer: no secret can complete it any more. */
  flush(): Buffer {
    const tail = this.#tail;
    this.#tail = EMPTY;
    return tail;
  }
}

/** A stream that masks secrets split across chunks too (see {@link Masker}). */
export class ScrubStream extends Transform {
  readonly #masker: Masker;

  constructor(forms: readonly Buffer[]) {
    super();
    this.#masker = new Masker(forms);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const ready = this.#masker.push(chunk);
    if (ready.length > 0) this.push(ready);
    done();
  }

  override _flush(done: TransformCallback): void {
    const tail = this.#masker.flush();
    if (tail.length > 0) this.push(tail);
    done();
  }
}
