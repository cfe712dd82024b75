import type { TelemetryAttributes, TelemetryInstrumentOptions, TelemetryMeter, TelemetrySpan, TelemetryTracer } from '../../src/index';

/**
 * An in-memory OpenTelemetry meter and tracer: what the keeper's telemetry records, kept as
 * it was recorded, for tests to read back by instrument name and attribute set.
 */

interface Point {
  name: string;
  value: number;
  attributes: TelemetryAttributes;
}

const key = (attributes: TelemetryAttributes) => JSON.stringify(Object.entries(attributes).sort(([a], [b]) => a.localeCompare(b)));

export class TestMeter implements TelemetryMeter {
  readonly instruments = new Map<string, { kind: 'counter' | 'histogram'; options: TelemetryInstrumentOptions | undefined }>();
  readonly points: Point[] = [];

  createCounter(name: string, options?: TelemetryInstrumentOptions) {
    this.instruments.set(name, { kind: 'counter', options });
    return { add: (value: number, attributes: TelemetryAttributes = {}) => void this.points.push({ name, value, attributes }) };
  }

  createHistogram(name: string, options?: TelemetryInstrumentOptions) {
    this.instruments.set(name, { kind: 'histogram', options });
    return { record: (value: number, attributes: TelemetryAttributes = {}) => void this.points.push({ name, value, attributes }) };
  }

  /** A counter's total for exactly this attribute set. */
  sum(name: string, attributes: TelemetryAttributes): number {
    return this.of(name, attributes).reduce((total, point) => total + point.value, 0);
  }

  /** The values recorded under exactly this attribute set (a histogram's observations). */
  values(name: string, attributes: TelemetryAttributes): number[] {
    return this.of(name, attributes).map((point) => point.value);
  }

  /** Every distinct attribute set an instrument was recorded with. */
  attributeSets(name: string): TelemetryAttributes[] {
    const seen = new Map<string, TelemetryAttributes>();
    for (const point of this.points) if (point.name === name) seen.set(key(point.attributes), point.attributes);
    return [...seen.values()];
  }

  of(name: string, attributes: TelemetryAttributes): Point[] {
    return this.points.filter((point) => point.name === name && key(point.attributes) === key(attributes));
  }
}

export interface RecordedSpan {
  name: string;
  kind: number | undefined;
  startTime: number | undefined;
  endTime: number | undefined;
  attributes: Record<string, string | number | boolean>;
  status: number | undefined;
}

export class TestTracer implements TelemetryTracer {
  readonly spans: RecordedSpan[] = [];

  startSpan(name: string, options: { kind?: number; startTime?: number; attributes?: Record<string, string | number | boolean> } = {}): TelemetrySpan {
    const span: RecordedSpan = { name, kind: options.kind, startTime: options.startTime, endTime: undefined, attributes: { ...options.attributes }, status: undefined };
    this.spans.push(span);
    return {
      setStatus: (status) => (span.status = status.code),
      end: (endTime) => void (span.endTime = endTime),
    };
  }
}
