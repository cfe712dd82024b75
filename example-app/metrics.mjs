// GET /metrics: the keeper's telemetry in Prometheus's text format, through prom-client.
//
// The keeper records to an OpenTelemetry-shaped meter (its `telemetry: { meter }` option);
// this one is a small adapter over prom-client, so the example needs no OpenTelemetry SDK.
// Names follow OpenTelemetry's Prometheus conventions: dots become underscores, seconds
// get `_seconds`, counters `_total` (oauth_keeper.api.duration → oauth_keeper_api_duration_seconds).
import { Counter, Histogram, Registry } from 'prom-client';
import { TELEMETRY_INSTRUMENTS } from 'oauth-keeper';

const promName = (name, unit, suffix) => `${name.replace(/[^A-Za-z0-9_]/g, '_')}${unit === 's' ? '_seconds' : ''}${suffix}`;
// prom-client needs every label name up front: the keeper lists each instrument's attribute keys.
const labelNames = (name) => [...(TELEMETRY_INSTRUMENTS.find((i) => i.name === name)?.attributes ?? [])];

/** A meter for `oauthKeeper({ telemetry: { meter } })` whose instruments are prom-client metrics of `registry`. */
export function prometheusMeter(registry) {
  return {
    createCounter(name, { description, unit } = {}) {
      const counter = new Counter({ name: promName(name, unit, '_total'), help: description ?? name, labelNames: labelNames(name), registers: [registry] });
      return { add: (value, attributes = {}) => counter.inc(attributes, value) };
    },
    createHistogram(name, { description, unit, advice } = {}) {
      const histogram = new Histogram({
        name: promName(name, unit, ''),
        help: description ?? name,
        labelNames: labelNames(name),
        ...(advice?.explicitBucketBoundaries ? { buckets: advice.explicitBucketBoundaries } : {}),
        registers: [registry],
      });
      return { record: (value, attributes = {}) => histogram.observe(attributes, value) };
    },
  };
}

/** The registry, its meter, and the `GET /metrics` handler that serves it. */
export function metricsEndpoint() {
  const registry = new Registry();
  return {
    meter: prometheusMeter(registry),
    handler: async (_req, res, next) => {
      try {
        res.set('content-type', registry.contentType).send(await registry.metrics());
      } catch (error) {
        next(error);
      }
    },
  };
}
