import type { EventEmitter } from 'node:events';
import type { StoreEvents } from './events.js';
import type { KeeperEvents } from './refresh.js';

/**
 * Metrics and traces from the keeper's events: one module turns `keeper.events` and
 * `store.events` into OpenTelemetry instruments and spans. Every attribute comes from a
 * small fixed set — a provider (strategy) name, an outcome, a status class, an error
 * code, a store operation — never a token, user, owner, session, state or URL.
 *
 * The types below are the part of OpenTelemetry's API this module calls, so that an
 * `@opentelemetry/api` `Meter` and `Tracer` fit them and the package's types need no
 * OpenTelemetry install; `telemetry: true` loads `@opentelemetry/api` on first use only.
 */

/** Attribute values the keeper's metrics carry: always strings from a small fixed set. */
export type TelemetryAttributes = Record<string, string>;

export interface TelemetryCounter {
  add(value: number, attributes?: TelemetryAttributes): void;
}

export interface TelemetryHistogram {
  record(value: number, attributes?: TelemetryAttributes): void;
}

export interface TelemetryInstrumentOptions {
  description?: string;
  unit?: string;
  /** OpenTelemetry's `advice`: the histogram bucket boundaries the keeper suggests (seconds). */
  advice?: { explicitBucketBoundaries?: number[] };
}

/** What the keeper needs of a meter: an OpenTelemetry `Meter` (`metrics.getMeter('oauth-keeper')`) is one. */
export interface TelemetryMeter {
  createCounter(name: string, options?: TelemetryInstrumentOptions): TelemetryCounter;
  createHistogram(name: string, options?: TelemetryInstrumentOptions): TelemetryHistogram;
}

export interface TelemetrySpan {
  setStatus(status: { code: number; message?: string }): unknown;
  end(endTime?: number): void;
}

/** What the keeper needs of a tracer: an OpenTelemetry `Tracer` (`trace.getTracer('oauth-keeper')`) is one. */
export interface TelemetryTracer {
  startSpan(name: string, options?: { kind?: number; startTime?: number; attributes?: Record<string, string | number | boolean> }): TelemetrySpan;
}

/**
 * The keeper's `telemetry` option. `true`: the global meter and tracer of `@opentelemetry/api`
 * (install it, and register your SDK's providers before creating the keeper). An object:
 * exactly the meter and/or tracer it holds; nothing is loaded.
 */
export type TelemetryOption = boolean | { meter?: TelemetryMeter; tracer?: TelemetryTracer };

export interface TelemetryInstrument {
  readonly name: string;
  readonly kind: 'counter' | 'histogram';
  readonly unit: string;
  readonly description: string;
  /** The attribute keys it may carry (each from a small fixed set of values). */
  readonly attributes: readonly string[];
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

const instrument = (name: string, kind: TelemetryInstrument['kind'], unit: string, description: string, attributes: string[]): TelemetryInstrument =>
  Object.freeze({ name, kind, unit, description, attributes: Object.freeze(attributes) });

/** Every instrument the keeper records, with its unit and attribute keys. */
export const TELEMETRY_INSTRUMENTS: readonly TelemetryInstrument[] = Object.freeze([
  instrument('oauth_keeper.logins', 'counter', '{login}', 'Logins completed or failed, by provider and outcome (success, refused: user-caused, fault).', ['provider', 'outcome', 'error']),
  instrument('oauth_keeper.login.duration', 'histogram', 's', 'Time from the login callback to its answer.', ['provider', 'outcome']),
  instrument('oauth_keeper.refreshes', 'counter', '{refresh}', 'Token refreshes, by provider and outcome (success, failure).', ['provider', 'outcome', 'error', 'transient']),
  instrument('oauth_keeper.refresh.duration', 'histogram', 's', 'Time a refresh took, its retries included.', ['provider', 'outcome']),
  instrument('oauth_keeper.refresh.retries', 'counter', '{retry}', 'Retries of a transiently failed refresh.', ['provider']),
  instrument('oauth_keeper.reauthorizations', 'counter', '{reauthorization}', 'Token sets deleted because the provider refused the refresh: the user must log in again.', ['provider']),
  instrument('oauth_keeper.lock.waits', 'counter', '{wait}', "Waits for another instance's refresh lock, by outcome (refreshed-elsewhere, acquired, timeout).", ['provider', 'outcome']),
  instrument('oauth_keeper.lock.wait.duration', 'histogram', 's', "Time spent waiting for another instance's refresh lock.", ['provider', 'outcome']),
  instrument('oauth_keeper.api.calls', 'counter', '{call}', 'Provider API calls (proxy, oauthFetch, forOwner().fetch), by status class (none: no answer), retried or not.', ['provider', 'status_class', 'retried', 'error']),
  instrument('oauth_keeper.api.duration', 'histogram', 's', "Time until the provider API's answer head, a refresh and a retry included.", ['provider', 'status_class']),
  instrument('oauth_keeper.store.errors', 'counter', '{error}', 'Token store operations that failed (timeout or error).', ['operation', 'reason']),
]);

type Recorder = (meter: Instruments) => void;

/** The instruments, made once per meter, and the optional tracer. */
class Instruments {
  readonly counters = new Map<string, TelemetryCounter>();
  readonly histograms = new Map<string, TelemetryHistogram>();

  constructor(meter: TelemetryMeter | undefined, readonly tracer: TelemetryTracer | undefined) {
    if (!meter) return;
    for (const { name, kind, unit, description } of TELEMETRY_INSTRUMENTS) {
      if (kind === 'counter') this.counters.set(name, meter.createCounter(name, { description, unit }));
      else this.histograms.set(name, meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries: SECONDS } }));
    }
  }

  add(name: string, attributes: TelemetryAttributes): void {
    this.counters.get(name)?.add(1, attributes);
  }

  seconds(name: string, ms: number, attributes: TelemetryAttributes): void {
    this.histograms.get(name)?.record(ms / 1000, attributes);
  }

  /** A span of what just ended, `ms` long, started after the fact: the keeper's events come at the end. */
  span(name: string, ms: number, attributes: Record<string, string | number | boolean>, failed: boolean, kind = 0): void {
    if (!this.tracer) return;
    const end = Date.now();
    const span = this.tracer.startSpan(name, { kind, startTime: end - ms, attributes });
    if (failed) span.setStatus({ code: 2 });
    span.end(end);
  }
}

const statusClass = (status: number | undefined) => (status === undefined ? 'none' : `${Math.floor(status / 100)}xx`);

/** Each event, turned into instruments and spans. */
function subscribe(events: EventEmitter<KeeperEvents>, record: (recorder: Recorder) => void): void {
  events.on('login:success', ({ provider, durationMs }) =>
    record((i) => {
      i.add('oauth_keeper.logins', { provider, outcome: 'success' });
      i.seconds('oauth_keeper.login.duration', durationMs, { provider, outcome: 'success' });
      i.span('oauth-keeper login', durationMs, { 'oauth_keeper.provider': provider, 'oauth_keeper.outcome': 'success' }, false);
    }),
  );
  events.on('login:failure', ({ provider, outcome, code, durationMs }) =>
    record((i) => {
      i.add('oauth_keeper.logins', { provider, outcome, error: code });
      i.seconds('oauth_keeper.login.duration', durationMs, { provider, outcome });
      i.span('oauth-keeper login', durationMs, { 'oauth_keeper.provider': provider, 'oauth_keeper.outcome': outcome, 'error.type': code }, true);
    }),
  );
  events.on('refresh:success', ({ provider, durationMs, retries }) =>
    record((i) => {
      i.add('oauth_keeper.refreshes', { provider, outcome: 'success' });
      i.seconds('oauth_keeper.refresh.duration', durationMs, { provider, outcome: 'success' });
      i.span('oauth-keeper refresh', durationMs, { 'oauth_keeper.provider': provider, 'oauth_keeper.outcome': 'success', 'oauth_keeper.retries': retries }, false);
    }),
  );
  events.on('refresh:failure', ({ provider, code, transient, retries, durationMs }) =>
    record((i) => {
      i.add('oauth_keeper.refreshes', { provider, outcome: 'failure', error: code, transient: String(transient) });
      i.seconds('oauth_keeper.refresh.duration', durationMs, { provider, outcome: 'failure' });
      const attributes = { 'oauth_keeper.provider': provider, 'oauth_keeper.outcome': 'failure', 'oauth_keeper.retries': retries, 'error.type': code };
      i.span('oauth-keeper refresh', durationMs, attributes, true);
    }),
  );
  events.on('refresh:retry', ({ provider }) => record((i) => i.add('oauth_keeper.refresh.retries', { provider })));
  events.on('reauthorization:required', ({ provider }) => record((i) => i.add('oauth_keeper.reauthorizations', { provider })));
  events.on('lock:wait', ({ provider, outcome, waitedMs }) =>
    record((i) => {
      i.add('oauth_keeper.lock.waits', { provider, outcome });
      i.seconds('oauth_keeper.lock.wait.duration', waitedMs, { provider, outcome });
    }),
  );
  events.on('api:call', ({ provider, status, code, retried, durationMs }) =>
    record((i) => {
      const status_class = statusClass(status);
      i.add('oauth_keeper.api.calls', { provider, status_class, retried: String(retried), ...(code === undefined ? {} : { error: code }) });
      i.seconds('oauth_keeper.api.duration', durationMs, { provider, status_class });
      const attributes = {
        'oauth_keeper.provider': provider,
        'oauth_keeper.retried': retried,
        ...(status === undefined ? {} : { 'http.response.status_code': status }),
        ...(code === undefined ? {} : { 'error.type': code }),
      };
      // SpanKind.CLIENT
      i.span('oauth-keeper api call', durationMs, attributes, code !== undefined || (status ?? 0) >= 500, 2);
    }),
  );
}

/** Store errors are counted once per (store, meter), however many keepers share the store. */
const storeSubscriptions = new WeakMap<object, Set<unknown>>();

function subscribeStore(store: EventEmitter<StoreEvents> | undefined, identity: unknown, record: (recorder: Recorder) => void): void {
  // A stand-in store without events has no errors to count.
  if (typeof store?.on !== 'function') return;
  let seen = storeSubscriptions.get(store);
  if (!seen) storeSubscriptions.set(store, (seen = new Set()));
  if (seen.has(identity)) return;
  seen.add(identity);
  store.on('store:error', ({ operation, reason }) => record((i) => i.add('oauth_keeper.store.errors', { operation, reason })));
}

const GLOBAL = Symbol('the global OpenTelemetry meter');

/**
 * Records the keeper's events as metrics (and spans, with a tracer). A meter or tracer that
 * throws is reported once through `warn` and never disturbs a login, refresh or call.
 */
export function attachTelemetry(
  option: TelemetryOption | undefined,
  events: EventEmitter<KeeperEvents>,
  store: EventEmitter<StoreEvents> | undefined,
  warn: (message: string, fields: Record<string, unknown>) => void,
): void {
  if (option === undefined || option === false) return;
  let instruments: Instruments | undefined;
  let failed = false;
  const queued: Recorder[] = [];
  const run = (recorder: Recorder) => {
    try {
      recorder(instruments!);
    } catch (error) {
      if (!failed) warn('oauth-keeper telemetry: the meter or tracer threw; its records are skipped', { name: (error as Error)?.name });
      failed = true;
    }
  };
  const record = (recorder: Recorder) => (instruments ? run(recorder) : queued.length < 10_000 && queued.push(recorder));
  subscribe(events, record);
  if (option === true) {
    subscribeStore(store, GLOBAL, record);
    loadOpenTelemetry().then(
      (api) => {
        instruments = new Instruments(api.metrics.getMeter('oauth-keeper'), api.trace.getTracer('oauth-keeper'));
        for (const recorder of queued.splice(0)) run(recorder);
      },
      () => {
        queued.length = 0;
        instruments = new Instruments(undefined, undefined);
        warn("oauth-keeper telemetry: true needs @opentelemetry/api (npm install @opentelemetry/api); no metrics are recorded", {});
      },
    );
    return;
  }
  subscribeStore(store, option.meter ?? option.tracer, record);
  instruments = new Instruments(option.meter, option.tracer);
}

/** Why a `telemetry` option cannot be used, or undefined when it can. */
export function telemetryProblem(option: unknown): string | undefined {
  if (option === undefined || typeof option === 'boolean') return undefined;
  if (typeof option !== 'object' || option === null) return 'telemetry must be true, false or { meter?, tracer? }.';
  const { meter, tracer } = option as { meter?: Partial<TelemetryMeter>; tracer?: Partial<TelemetryTracer> };
  if (meter !== undefined && (typeof meter?.createCounter !== 'function' || typeof meter.createHistogram !== 'function')) {
    return "telemetry.meter must be an OpenTelemetry Meter (metrics.getMeter('oauth-keeper')): it needs createCounter and createHistogram.";
  }
  if (tracer !== undefined && typeof tracer?.startSpan !== 'function') {
    return "telemetry.tracer must be an OpenTelemetry Tracer (trace.getTracer('oauth-keeper')): it needs startSpan.";
  }
  const unknown = Object.keys(option).filter((key) => key !== 'meter' && key !== 'tracer');
  return unknown.length > 0 ? `telemetry takes meter and tracer, not ${unknown.join(', ')}.` : undefined;
}

/** `@opentelemetry/api`, loaded only when `telemetry: true` asks for it. */
function loadOpenTelemetry(): Promise<typeof import('@opentelemetry/api')> {
  return import('@opentelemetry/api');
}
