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

/**
 * The byte forms of the secrets to look for, longest first. A form that holds another one
 * (`Bearer <token>` holds `<token>`) is left out: masking the one it holds already leaves
 * no secret, and every form is one more scan of every chunk.
 */
export function secretForms(secrets: ReadonlyArray<string | undefined>): Buffer[] {
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret === undefined || secret.length < MIN_SECRET_LENGTH) continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(JSON.stringify(secret).slice(1, -1));
    forms.add(JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'));
  }
  const all = [...forms];
  return all
    .filter((form) => !all.some((other) => other !== form && other.length < form.length && form.includes(other)))
    .map((form) => Buffer.from(form, 'utf8'))
    .sort((a, b) => b.length - a.length);
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

/**
 * A form searched for from its byte that is rarest in the answer: `Buffer#indexOf` costs about
 * one step per occurrence of the first byte it looks for, so an answer full of a secret's first
 * byte (a form starting with `s` in a body of `s`, a token's letter in text) costs many times an
 * answer without it. The part before the anchor is compared at each hit.
 */
interface Anchored {
  readonly form: Buffer;
  /** Offset of the anchor byte in the form; the suffix from it is what is searched for. */
  readonly at: number;
  readonly suffix: Buffer;
}

/** Chunks at least this long are searched by anchor (smaller ones: the form's first byte). */
const ANCHORED_FROM_BYTES = 8192;
/** Bytes sampled to count how often each byte occurs; anchors are chosen again every this many chunks. */
const SAMPLED_BYTES = 1024;
const ANCHORS_KEPT_FOR = 64;

function anchorsFor(forms: readonly Buffer[], sample: Buffer): Anchored[] {
  const counts = new Uint32Array(256);
  const step = Math.max(1, Math.floor(sample.length / SAMPLED_BYTES));
  for (let i = 0; i < sample.length; i += step) counts[sample[i]!]! += 1;
  return forms.map((form) => {
    let at = 0;
    // The suffix searched for keeps at least 4 bytes (forms have 8 or more).
    for (let j = 1; j <= form.length - 4; j += 1) if (counts[form[j]!]! < counts[form[at]!]!) at = j;
    return { form, at, suffix: form.subarray(at) };
  });
}

/** {@link maskAll} searching by anchor: the same occurrences, masked the same way. */
function maskAnchored(buffer: Buffer, anchors: readonly Anchored[]): number {
  let lastEnd = -1;
  for (const { form, at: offset, suffix } of anchors) {
    let hit = buffer.indexOf(suffix, offset);
    while (hit !== -1) {
      const start = hit - offset;
      if (offset === 0 || buffer.compare(form, 0, offset, start, hit) === 0) {
        buffer.fill(0x2a, start, start + form.length);
        lastEnd = Math.max(lastEnd, start + form.length);
        hit = buffer.indexOf(suffix, start + form.length + offset);
      } else {
        hit = buffer.indexOf(suffix, hit + 1);
      }
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
 * tells; everything else goes on at once. Chunks are masked in place (they are the
 * answer's own); across a seam only the few bytes around it are copied.
 */
export class Masker {
  readonly #forms: readonly Buffer[];
  readonly #longest: number;
  #tail: Buffer = EMPTY;
  #anchors: Anchored[] | undefined;
  #anchoredChunks = 0;

  constructor(forms: readonly Buffer[]) {
    this.#forms = forms;
    this.#longest = forms.reduce((longest, form) => Math.max(longest, form.length), 0);
  }

  /** Hands `out` the masked bytes that can go on now (one or two pieces); whether every `out` said more may come. */
  push(chunk: Buffer, out: (ready: Buffer) => boolean): boolean {
    const forms = this.#forms;
    const tail = this.#tail;
    let more = true;
    let from = 0;
    if (tail.length > 0) {
      if (chunk.length < this.#longest) {
        chunk = Buffer.concat([tail, chunk]);
      } else {
        // A secret that begins in the held-back end ends within the chunk's first bytes: look at the seam alone.
        const seam = Buffer.concat([tail, chunk.subarray(0, this.#longest - 1)]);
        const end = maskAll(seam, forms);
        if (end > tail.length) {
          seam.copy(chunk, 0, tail.length, end);
          from = end - tail.length;
        }
        more = out(seam.subarray(0, tail.length));
      }
    }
    const lastEnd = chunk.length >= ANCHORED_FROM_BYTES ? maskAnchored(chunk, this.#anchorsFor(chunk)) : maskAll(chunk, forms);
    const cut = chunk.length - pendingPrefix(chunk, Math.max(from, lastEnd, 0), forms);
    this.#tail = cut === chunk.length ? EMPTY : chunk.subarray(cut);
    if (cut > 0) more = out(cut === chunk.length ? chunk : chunk.subarray(0, cut)) && more;
    return more;
  }

  #anchorsFor(chunk: Buffer): Anchored[] {
    if (this.#anchors === undefined || this.#anchoredChunks >= ANCHORS_KEPT_FOR) {
      this.#anchors = anchorsFor(this.#forms, chunk);
      this.#anchoredChunks = 0;
    }
    this.#anchoredChunks += 1;
    return this.#anchors;
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
    this.#masker.push(chunk, (ready) => this.push(ready));
    done();
  }

  override _flush(done: TransformCallback): void {
    const tail = this.#masker.flush();
    if (tail.length > 0) this.push(tail);
    done();
  }
}
