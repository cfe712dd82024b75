import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Express } from 'express';
import { metrics, trace, type Meter, type Tracer } from '@opentelemetry/api';
import { ErrorCodes, MemoryBackend, TELEMETRY_INSTRUMENTS, TokenStore, tokenKeeper, type Keeper, type StoredEntry, type TelemetryOption } from '../../src/index';
import { createTestApp, login, startLogin, type TestApp } from '../helpers/app';
import { TestMeter, TestTracer } from '../helpers/meter';
import { until } from '../helpers/until';

/**
 * `telemetry`: real logins, refreshes, lock waits, proxy calls and store failures against the
 * sandbox, read back from an in-memory meter — instrument names, attribute sets, values —
 * and nothing recorded carries a token, an owner, a session, a state or a URL.
 */

const P = 'example';

function mountProxies(app: Express, keeper: Keeper): void {
  app.use(`/api/${P}`, keeper.ensureAuthorized(P, { unauthorized: 'status' }), keeper.proxy(P));
  // Without the guard: the proxy itself answers a session that has no token.
  app.use(`/raw/${P}`, keeper.proxy(P));
}

const open: TestApp[] = [];
afterEach(async () => {
  while (open.length > 0) await open.pop()!.close();
});

async function app(meter: TestMeter, tracer?: TestTracer, owner?: string): Promise<TestApp> {
  const t = await createTestApp({
    storage: 'memory',
    keeper: { telemetry: { meter, ...(tracer ? { tracer } : {}) }, refresh: { retryDelayMs: 5 }, ...(owner ? { owner: () => owner } : {}) },
    routes: mountProxies,
  });
  open.push(t);
  return t;
}

/** Everything recorded, as text: what a scrape of these instruments could ever show. */
const everything = (meter: TestMeter, tracer?: TestTracer) => JSON.stringify({ points: meter.points, spans: tracer?.spans ?? [] });

describe('telemetry: { meter, tracer }', () => {
  it('creates every documented instrument once, with its unit and second-scale buckets for histograms', async () => {
    const meter = new TestMeter();
    await app(meter);
    expect([...meter.instruments.keys()].sort()).toEqual(TELEMETRY_INSTRUMENTS.map((i) => i.name).sort());
    for (const { name, kind, unit } of TELEMETRY_INSTRUMENTS) {
      expect(meter.instruments.get(name)).toMatchObject({ kind, options: { unit } });
    }
    expect(meter.instruments.get('oauth_keeper.api.duration')!.options!.advice!.explicitBucketBoundaries).toContain(0.1);
  });

  it('is documented: the README lists every instrument', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    const start = readme.indexOf('\n## Metrics and traces\n');
    expect(start).toBeGreaterThan(0);
    const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
    for (const { name, kind } of TELEMETRY_INSTRUMENTS) expect(section).toMatch(new RegExp(`^\\| \`${name.replace(/\./g, '\\.')}\` \\| ${kind}`, 'm'));
  });

  it('counts logins by outcome, proxy calls by status class and retry, and refreshes, with spans', async () => {
    const meter = new TestMeter();
    const tracer = new TestTracer();
    const t = await app(meter, tracer);
    const agent = t.agent();
    await login(agent);
    expect(meter.sum('oauth_keeper.logins', { provider: P, outcome: 'success' })).toBe(1);
    expect(meter.values('oauth_keeper.login.duration', { provider: P, outcome: 'success' })).toHaveLength(1);

    // A user-caused failure (a callback whose state this session never issued) and a fault (the token endpoint down).
    const refused = t.agent();
    const callback = new URL(await startLogin(refused), 'http://x');
    callback.searchParams.set('state', 'not-the-state');
    await refused.get(callback.pathname + callback.search).expect(400);
    t.sandbox.engine.injectFault('token', { status: 500 });
    const failing = t.agent();
    await failing.get(await startLogin(failing)).expect(502);
    expect(meter.attributeSets('oauth_keeper.logins')).toEqual(
      expect.arrayContaining([
        { provider: P, outcome: 'refused', error: ErrorCodes.STATE_MISMATCH },
        { provider: P, outcome: 'fault', error: ErrorCodes.TOKEN_ENDPOINT_FAILED },
      ]),
    );
    expect(meter.sum('oauth_keeper.logins', { provider: P, outcome: 'fault', error: ErrorCodes.TOKEN_ENDPOINT_FAILED })).toBe(1);

    await agent.get(`/api/${P}/hello`).expect(200);
    expect(meter.sum('oauth_keeper.api.calls', { provider: P, status_class: '2xx', retried: 'false' })).toBe(1);
    expect(meter.values('oauth_keeper.api.duration', { provider: P, status_class: '2xx' })).toHaveLength(1);

    // The provider refuses the token once: refreshed, retried, 2xx.
    t.sandbox.engine.injectFault('api', { status: 401, body: '{"error":"invalid_token"}', headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    await agent.get(`/api/${P}/again`).expect(200);
    expect(meter.sum('oauth_keeper.api.calls', { provider: P, status_class: '2xx', retried: 'true' })).toBe(1);
    expect(meter.sum('oauth_keeper.refreshes', { provider: P, outcome: 'success' })).toBe(1);

    // An expired token: the guard refreshes it first.
    await t.expireToken(await t.ownerOf(agent));
    await agent.get(`/api/${P}/later`).expect(200);
    expect(meter.sum('oauth_keeper.refreshes', { provider: P, outcome: 'success' })).toBe(2);
    expect(meter.values('oauth_keeper.refresh.duration', { provider: P, outcome: 'success' })).toHaveLength(2);

    // A 5xx from the API, and a call without a token: no answer, the error code says why.
    t.sandbox.engine.injectFault('api', { status: 503 });
    await agent.get(`/api/${P}/busy`).expect(503);
    await t.agent().get(`/raw/${P}/hello`).expect(401);
    expect(meter.sum('oauth_keeper.api.calls', { provider: P, status_class: '5xx', retried: 'false' })).toBe(1);
    expect(meter.sum('oauth_keeper.api.calls', { provider: P, status_class: 'none', retried: 'false', error: ErrorCodes.AUTHORIZATION_REQUIRED })).toBe(1);

    const spans = tracer.spans.map((s) => `${s.name} ${s.status ?? 'ok'}`);
    expect(spans).toEqual(expect.arrayContaining(['oauth-keeper login ok', 'oauth-keeper login 2', 'oauth-keeper api call ok', 'oauth-keeper refresh ok']));
    const call = tracer.spans.find((s) => s.name === 'oauth-keeper api call')!;
    expect(call).toMatchObject({ kind: 2, attributes: { 'oauth_keeper.provider': P, 'http.response.status_code': 200 } });
    expect(call.endTime! - call.startTime!).toBeGreaterThanOrEqual(0);

    const recorded = everything(meter, tracer);
    const stored = (await t.store.get(await t.ownerOf(agent), P))!.tokenSet;
    for (const secret of [stored.accessToken, stored.refreshToken!, await t.ownerOf(agent), 'not-the-state', 'hello', t.sandbox.url]) {
      expect(recorded).not.toContain(secret);
    }
  });

  it('a meter that throws disturbs no login or call, and is reported once', async () => {
    const broken = { add: () => { throw new Error('exporter down'); }, record: () => { throw new Error('exporter down'); } };
    const meter = { createCounter: () => broken, createHistogram: () => broken };
    const warnings: string[] = [];
    const t = await createTestApp({ storage: 'memory', keeper: { telemetry: { meter }, logger: { warn: (message) => void warnings.push(message) } }, routes: mountProxies });
    open.push(t);
    const agent = t.agent();
    await login(agent);
    await agent.get(`/api/${P}/hello`).expect(200);
    expect(warnings.filter((w) => w.includes('telemetry'))).toEqual(['oauth-keeper telemetry: the meter or tracer threw; its records are skipped']);
  });

  it('counts a refused refresh and the reauthorization it causes', async () => {
    const meter = new TestMeter();
    const t = await app(meter);
    const agent = t.agent();
    await login(agent);
    await t.expireToken(await t.ownerOf(agent));
    t.sandbox.engine.injectFault('token', { status: 400, body: '{"error":"invalid_grant"}' });
    await agent.get(`/api/${P}/hello`).expect(401);
    expect(meter.sum('oauth_keeper.reauthorizations', { provider: P })).toBe(1);
    const failures = meter.attributeSets('oauth_keeper.refreshes').filter((a) => a['outcome'] === 'failure');
    expect(failures).toEqual([{ provider: P, outcome: 'failure', error: expect.stringMatching(/^OAUTH_KEEPER_/), transient: 'false' }]);
    expect(meter.values('oauth_keeper.refresh.duration', { provider: P, outcome: 'failure' })).toHaveLength(1);
  });

  it('counts retries of a transient refresh failure', async () => {
    const meter = new TestMeter();
    const t = await app(meter);
    const agent = t.agent();
    await login(agent);
    await t.expireToken(await t.ownerOf(agent));
    t.sandbox.engine.injectFault('token', { status: 503, times: 1 });
    await agent.get(`/api/${P}/hello`).expect(200);
    expect(meter.sum('oauth_keeper.refresh.retries', { provider: P })).toBe(1);
    expect(meter.sum('oauth_keeper.refreshes', { provider: P, outcome: 'success' })).toBe(1);
  });

  it("counts a wait for another instance's refresh, with its wait time", async () => {
    const meter = new TestMeter();
    const t = await app(meter, undefined, 'user-1');
    await login(t.agent());
    // A second instance (a worker) on the same store, recording to the same meter.
    const worker = tokenKeeper({ strategies: [t.strategy], store: t.store, telemetry: { meter } });
    await t.expireToken('u:user-1');
    const locks = jest.spyOn(t.backend, 'acquireLock');
    let release!: () => void;
    t.sandbox.engine.injectFault('token', { until: new Promise<void>((resolve) => (release = resolve)) });
    const first = t.keeper.forOwner('user-1').token(P);
    await until(() => t.sandbox.engine.pendingFaults('token') === 0, 'the first refresh at the token endpoint');
    const second = worker.forOwner('user-1').token(P);
    await until(() => locks.mock.calls.length >= 3, 'the worker trying the lock again');
    release();
    const [a, b] = await Promise.all([first, second]);
    expect(b!.accessToken).toBe(a!.accessToken);
    expect(meter.sum('oauth_keeper.lock.waits', { provider: P, outcome: 'refreshed-elsewhere' })).toBe(1);
    const [waited] = meter.values('oauth_keeper.lock.wait.duration', { provider: P, outcome: 'refreshed-elsewhere' });
    expect(waited).toBeGreaterThan(0);
    expect(meter.sum('oauth_keeper.refreshes', { provider: P, outcome: 'success' })).toBe(1);
    await worker.close();
  });
});

describe('store errors', () => {
  class FailingBackend extends MemoryBackend {
    mode: 'ok' | 'fail' | 'hang' = 'ok';
    override read(key: string): Promise<StoredEntry | null> {
      if (this.mode === 'fail') return Promise.reject(new Error('connection refused'));
      if (this.mode === 'hang') return new Promise(() => undefined);
      return super.read(key);
    }
  }

  it('counts failed and timed-out store operations by operation and reason, once per store and meter', async () => {
    const meter = new TestMeter();
    const backend = new FailingBackend();
    const store = new TokenStore({ backend, encryptionKeys: [Buffer.alloc(32, 1)], timeoutMs: 50 });
    const t = await createTestApp({ storage: 'memory' });
    open.push(t);
    const keeper = tokenKeeper({ strategies: [t.strategy], store, telemetry: { meter } });
    // A second keeper on the same store and meter does not count the store's errors twice.
    tokenKeeper({ strategies: [t.strategy], store, telemetry: { meter } });
    backend.mode = 'fail';
    await expect(keeper.forOwner('user-1').token(P)).rejects.toMatchObject({ code: ErrorCodes.STORE_UNAVAILABLE });
    backend.mode = 'hang';
    await expect(keeper.forOwner('user-1').token(P)).rejects.toMatchObject({ code: ErrorCodes.STORE_UNAVAILABLE });
    expect(meter.sum('oauth_keeper.store.errors', { operation: 'read', reason: 'error' })).toBe(1);
    expect(meter.sum('oauth_keeper.store.errors', { operation: 'read', reason: 'timeout' })).toBe(1);
  });
});

describe('telemetry: true', () => {
  afterEach(() => {
    metrics.disable();
    trace.disable();
  });

  it("records to @opentelemetry/api's global meter and tracer", async () => {
    const meter = new TestMeter();
    const tracer = new TestTracer();
    metrics.setGlobalMeterProvider({ getMeter: () => meter as unknown as Meter });
    trace.setGlobalTracerProvider({ getTracer: () => tracer as unknown as Tracer });
    const t = await createTestApp({ storage: 'memory', keeper: { telemetry: true } });
    open.push(t);
    await login(t.agent());
    expect(meter.sum('oauth_keeper.logins', { provider: P, outcome: 'success' })).toBe(1);
    expect(tracer.spans.map((s) => s.name)).toEqual(['oauth-keeper login']);
  });

  it('is not loaded by loading the package: no @opentelemetry module is required or statically imported (built entry points)', () => {
    const root = join(__dirname, '..', '..');
    const script = "require('./dist/cjs/index.js'); require('./dist/cjs/sandbox/index.js'); console.log(Object.keys(require.cache).filter((k) => k.includes('@opentelemetry')).length)";
    expect(execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' }).trim()).toBe('0');
    const esm = readdirSync(join(root, 'dist/esm'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js'));
    expect(esm.length).toBeGreaterThan(0);
    const staticImports = esm.filter((file) => /(?:^|\n)\s*(?:import|export)\b[^(;]*?from\s*['"]@opentelemetry/.test(readFileSync(join(root, 'dist/esm', file), 'utf8')));
    expect(staticImports).toEqual([]);
  });

  it('takes an OpenTelemetry Meter and Tracer as they are typed, and refuses what is neither', () => {
    const option: TelemetryOption = { meter: metrics.getMeter('oauth-keeper'), tracer: trace.getTracer('oauth-keeper') };
    const store = new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [Buffer.alloc(32, 1)] });
    const strategy = { name: P, provider: {}, options: {} } as never;
    expect(() => tokenKeeper({ strategies: [strategy], store, telemetry: option })).not.toThrow();
    expect(() => tokenKeeper({ strategies: [strategy], store, telemetry: { meter: {} as never } })).toThrow(/telemetry\.meter must be an OpenTelemetry Meter/);
    expect(() => tokenKeeper({ strategies: [strategy], store, telemetry: { metre: 1 } as never })).toThrow(/telemetry takes meter and tracer, not metre/);
  });
});
