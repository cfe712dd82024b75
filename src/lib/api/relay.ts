import type { Transform } from 'node:stream';
import type { Dispatcher } from 'undici';
import { asError } from './body.js';
import { STREAM_DECODABLE, uncheckable } from './credentials.js';
import { decodeBuffered, decoderFor, inspectBody } from './decode.js';
import { Masker, scrubBuffer } from './scrub.js';
import { hasNoBody, headerRecord, responseHead, transportError } from './transport.js';
import { INSPECT_LIMIT, type HeaderRecord, type RelaySettings, type RelayTarget } from './types.js';

/**
 * One attempt of a relayed call (the proxy): an undici dispatch handler that writes the
 * provider's answer straight into the caller's response, masking secrets on the way,
 * with no readable body in between. What becomes of the answer is chosen on its head:
 *
 * - an error answer of a first attempt, small enough, is collected (up to `INSPECT_LIMIT`)
 *   so that `isTokenRejected` sees its body, then sent whole, decoded and masked;
 * - an answer that rejects the token is held (the upstream paused) while the client
 *   refreshes it: dropped when the call is retried, else passed on as it is;
 * - any other answer flows into the response as it comes, with backpressure.
 *
 * `decided` settles once the answer is committed to the response, or held. After that,
 * a failure (the client going away, the upstream breaking off) ends the response.
 */

/** How an attempt's answer was decided: committed, or `held` (it rejects the token) to deliver or discard. */
export interface RelayDecision {
  status: number;
  held?: RelayAttempt;
}

/** Collect: reading a small error answer to inspect it; Held: rejecting the token, paused until the client decides; Flow: committed. */
const enum Phase {
  Head,
  Collect,
  Held,
  Flow,
  Done,
}

/** undici's dispatch handler (the `onConnect`/`onHeaders`/`onData` interface its dispatchers call) for one attempt. */
export class RelayAttempt implements Dispatcher.DispatchHandler {
  readonly decided: Promise<RelayDecision>;
  readonly #settings: RelaySettings;
  readonly #target: RelayTarget;
  #resolve!: (decision: RelayDecision) => void;
  #reject!: (error: unknown) => void;
  #phase = Phase.Head;
  #abort: ((reason?: Error) => void) | null = null;
  #resume: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #abortedBy: 'timeout' | 'caller' | undefined;
  #status = 0;
  #headers!: HeaderRecord;
  #bodyless = false;
  #chunks: Buffer[] = [];
  #size = 0;
  /** A collected answer, decoded and masked. */
  #buffer: Buffer | undefined;
  /** undici was told to wait (false returned) until `#resume`. */
  #paused = false;
  #ended = false;
  /** The upstream broke off while held. */
  #failed = false;
  #masker: Masker | undefined;
  #decoder: Transform | undefined;
  readonly #onCallerAbort = () => this.#giveUp('caller');
  readonly #out = (ready: Buffer) => this.#target.res.write(ready);
  readonly #onDrain = () => (this.#decoder ? this.#decoder.resume() : this.#resumeUpstream());

  constructor(settings: RelaySettings, target: RelayTarget) {
    this.#settings = settings;
    this.#target = target;
    this.decided = new Promise<RelayDecision>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#timer = setTimeout(() => this.#giveUp('timeout'), settings.timeoutMs);
    this.#timer.unref?.();
    settings.signal?.addEventListener('abort', this.#onCallerAbort, { once: true });
    settings.body?.on('error', (error) => this.onError(error));
  }

  /** Throws at once when the caller has already given up. */
  checkCaller(): void {
    if (!this.#settings.signal?.aborted) return;
    this.#phase = Phase.Done;
    this.#cleanup();
    throw this.#error(undefined, 'caller');
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.#abort = abort;
    if (this.#phase === Phase.Done) abort(asError(this.#error(undefined)));
  }

  onHeaders(status: number, raw: Buffer[] | string[] | null, resume: () => void): boolean {
    if (status < 200 || this.#phase !== Phase.Head) return true;
    try {
      this.#resume = resume;
      this.#status = status;
      const settings = this.#settings;
      const headers = (this.#headers = headerRecord(raw ?? []));
      settings.scrubHeaders(headers);
      if (hasNoBody(settings.method, status)) {
        this.#bodyless = true;
        return settings.isTokenRejected?.(responseHead(status, headers)) ? this.#hold(true) : this.#commit();
      }
      if (settings.isTokenRejected !== undefined && status >= 400 && !(Number(headers['content-length'] ?? NaN) > INSPECT_LIMIT)) {
        this.#phase = Phase.Collect;
        return true;
      }
      return this.#decideStreamed();
    } catch (error) {
      // The binding's isTokenRejected threw: its error is the call's.
      this.#fail(error, true);
      return false;
    }
  }

  onData(chunk: Buffer): boolean {
    const phase = this.#phase;
    if (phase === Phase.Flow) return this.#write(chunk);
    if (phase === Phase.Held) {
      this.#chunks.push(chunk);
      return false;
    }
    if (phase !== Phase.Collect) return true;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size <= INSPECT_LIMIT) return true;
    try {
      // Too big to inspect: decided on the head alone.
      return this.#decideStreamed();
    } catch (error) {
      this.#fail(error, true);
      return false;
    }
  }

  onComplete(): void {
    this.#ended = true;
    if (this.#phase === Phase.Flow) this.#finish();
    else if (this.#phase === Phase.Collect) void this.#inspectCollected();
    else if (this.#phase === Phase.Head) this.#fail(new Error('the answer ended before its head'));
  }

  onError(error: Error): void {
    const phase = this.#phase;
    if (phase === Phase.Head || phase === Phase.Collect) {
      this.#fail(error);
    } else if (phase === Phase.Held) {
      this.#failed = true;
    } else if (phase === Phase.Flow) {
      // The upstream broke off mid-answer, or the client went away: nothing left to say.
      this.#stop();
      if (!this.#target.res.destroyed) this.#target.res.destroy();
    }
  }

  onUpgrade(): void {
    this.onError(new Error('the API answered with a protocol upgrade'));
  }

  /** Passes a held answer on as it is (the token could not be replaced in this call). */
  deliver(): void {
    if (this.#phase !== Phase.Held) return;
    if (this.#target.res.destroyed) return this.discard();
    if (this.#buffer !== undefined) return this.#commitBuffered();
    this.#commit();
    if (this.#failed) this.onError(new Error('the API broke off its answer'));
  }

  /** Drops a held answer (the call is retried, or failed). */
  discard(): void {
    if (this.#phase === Phase.Done) return;
    this.#stop();
    this.#chunks = [];
  }

  #error(cause: unknown, abortedBy = this.#abortedBy): unknown {
    const s = this.#settings;
    return transportError(s.provider, s.timeoutMs, abortedBy ?? (s.signal?.aborted ? 'caller' : undefined), s.signal, cause);
  }

  #giveUp(kind: 'timeout' | 'caller'): void {
    if (this.#abortedBy !== undefined || this.#phase === Phase.Done) return;
    this.#abortedBy = kind;
    // Settled at once, whether or not undici has started the request.
    if (this.#phase === Phase.Head || this.#phase === Phase.Collect) this.#fail(undefined);
    else this.#stop();
  }

  /** Settles the attempt with its error (a transport failure's, unless `asIs`) and ends the exchange. */
  #fail(cause: unknown, asIs = false): void {
    if (this.#phase === Phase.Done) return;
    const error = asIs ? cause : this.#error(cause);
    this.#stop(error);
    this.#chunks = [];
    this.#reject(error);
  }

  /** Ends the exchange: no timer, no listener, no decoder, the upstream aborted unless complete. */
  #stop(reason?: unknown): void {
    this.#phase = Phase.Done;
    this.#cleanup();
    this.#decoder?.destroy();
    if (!this.#ended && !this.#failed) this.#abort?.(asError(reason ?? this.#error(undefined)));
  }

  #cleanup(): void {
    this.#stopTimer();
    this.#settings.signal?.removeEventListener('abort', this.#onCallerAbort);
  }

  #stopTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #hold(continueReading: boolean): boolean {
    this.#phase = Phase.Held;
    this.#stopTimer();
    this.#paused = !continueReading;
    this.#resolve({ status: this.#status, held: this });
    return continueReading;
  }

  /** An answer that streams (not inspected, or too big to be): checkable, then held or committed. */
  #decideStreamed(): boolean {
    const settings = this.#settings;
    if (settings.forms.length > 0 && !STREAM_DECODABLE.has((this.#headers['content-encoding'] ?? 'identity').trim().toLowerCase())) {
      this.#fail(uncheckable(settings.provider), true);
      return false;
    }
    return settings.isTokenRejected?.(responseHead(this.#status, this.#headers)) ? this.#hold(false) : this.#commit();
  }

  /** Sets the head on the response and lets the body flow; whether undici may go on. */
  #commit(): boolean {
    const held = this.#phase === Phase.Held;
    const headers = this.#headers;
    const forms = this.#settings.forms;
    const res = this.#target.res;
    if (!this.#bodyless && forms.length > 0) {
      this.#masker = new Masker(forms);
      const decoder = decoderFor((headers['content-encoding'] ?? '').trim().toLowerCase());
      if (decoder !== undefined) {
        // As fetch does: the decoded body, without the encoding headers.
        delete headers['content-encoding'];
        delete headers['content-length'];
        this.#pipeDecoder(decoder);
      }
    }
    if (!this.#head(held)) return false;
    this.#phase = Phase.Flow;
    // From here the answer streams for as long as it takes; only the client can stop it.
    this.#stopTimer();
    if (!held) this.#resolve({ status: this.#status });
    if (this.#bodyless) {
      if (this.#ended) this.#finish();
      return true;
    }
    res.on('drain', this.#onDrain);
    let more = true;
    const chunks = this.#chunks;
    this.#chunks = [];
    for (const chunk of chunks) more = this.#write(chunk);
    if (this.#ended) this.#finish();
    else if (more) this.#resumeUpstream();
    return more;
  }

  /** The target's head; when it throws, the attempt fails with its error (or, held, the response ends). */
  #head(held: boolean): boolean {
    try {
      this.#target.head(this.#status, this.#headers);
      return true;
    } catch (error) {
      if (!held) {
        this.#fail(error, true);
        return false;
      }
      this.discard();
      if (!this.#target.res.destroyed) this.#target.res.destroy();
      return false;
    }
  }

  /** A collected answer: whole, with its length. */
  #commitBuffered(): void {
    const held = this.#phase === Phase.Held;
    const body = this.#buffer!;
    this.#headers['content-length'] = String(body.length);
    if (!this.#head(held)) return;
    this.#phase = Phase.Done;
    this.#cleanup();
    if (!held) this.#resolve({ status: this.#status });
    this.#target.res.end(body);
  }

  async #inspectCollected(): Promise<void> {
    // As for a buffered answer, the timer runs until the whole answer is read.
    this.#stopTimer();
    const settings = this.#settings;
    const headers = this.#headers;
    const raw = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [];
    try {
      const body = await inspectBody(raw, responseHead(this.#status, headers).headers);
      if (this.#phase !== Phase.Collect) return;
      const rejected = settings.isTokenRejected?.(responseHead(this.#status, headers, { value: body })) ?? false;
      let buffer = raw;
      if (settings.forms.length > 0) {
        const decoded = await decodeBuffered(raw, (headers['content-encoding'] ?? 'identity').trim().toLowerCase());
        if (this.#phase !== Phase.Collect) return;
        if (decoded === undefined) throw uncheckable(settings.provider);
        if (decoded !== raw) {
          delete headers['content-encoding'];
          delete headers['content-length'];
        }
        buffer = scrubBuffer(decoded, settings.forms);
      }
      this.#buffer = buffer;
      if (!rejected) return this.#commitBuffered();
      this.#phase = Phase.Held;
      this.#cleanup();
      this.#resolve({ status: this.#status, held: this });
    } catch (error) {
      this.#fail(error, true);
    }
  }

  /** One upstream chunk into the response (through the decoder and the masker); whether more may come now. */
  #write(chunk: Buffer): boolean {
    let more: boolean;
    if (this.#decoder !== undefined) {
      more = this.#decoder.write(chunk);
    } else {
      more = this.#masker === undefined ? this.#target.res.write(chunk) : this.#masker.push(chunk, this.#out);
    }
    if (!more) this.#paused = true;
    return more;
  }

  #pipeDecoder(decoder: Transform): void {
    this.#decoder = decoder;
    const res = this.#target.res;
    decoder.on('data', (data: Buffer) => {
      if (!this.#masker!.push(data, this.#out)) decoder.pause();
    });
    decoder.on('drain', () => this.#resumeUpstream());
    decoder.once('end', () => this.#end());
    decoder.on('error', () => {
      // A broken compressed body: the answer cannot be finished.
      if (this.#phase === Phase.Done) return;
      this.#decoder = undefined;
      this.#stop();
      if (!res.destroyed) res.destroy();
    });
  }

  #resumeUpstream(): void {
    if (!this.#paused || this.#phase !== Phase.Flow) return;
    this.#paused = false;
    this.#resume?.();
  }

  /** The upstream answer is complete: the response ends once the decoder (if any) is through. */
  #finish(): void {
    return this.#decoder !== undefined ? void this.#decoder.end() : this.#end();
  }

  #end(): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    this.#cleanup();
    const res = this.#target.res;
    res.removeListener('drain', this.#onDrain);
    const tail = this.#masker?.flush();
    res.end(tail !== undefined && tail.length > 0 ? tail : undefined);
  }
}
