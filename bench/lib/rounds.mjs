// Interleaved rounds: every variant gets one autocannon run per round, in an order that
// rotates from round to round; server CPU (utime+stime from /proc), Redis commands and the
// server's own count of requests received are read around each run (after a short settle, so
// that requests still in flight when the load stops are in all three), and divided.
import { performance } from 'node:perf_hooks';
import { cannon, get } from './load.mjs';
import { coreBusyMicros, placement } from './proc.mjs';
import { statsDelta } from './redis.mjs';
import { median, rotate } from './stats.mjs';

/**
 * How busy the server core was with other work during each measured run (its busy time minus
 * the measured server's own CPU, as a share of the run's wall time): the noise of a shared machine.
 */
export const foreignLoad = [];

/** After the load stops: wait until every request the server received has been answered or dropped. */
export async function settle(app, limitMs = 5000) {
  const end = Date.now() + limitMs;
  for (;;) {
    const n = await app.requests();
    if (n.finished >= n.started || Date.now() > end) return n;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * variants: [{ name, app: { cpu(), requests(), redis? }, url, headers?, connections?, probes? }]
 * probes: { name: async () => counter } read around each run, kept per request served.
 * returns Map name -> { rps[], cpu[] (µs/request), p50[], p99[], redis[] ({cmd: per request}), probes, bad }
 */
export async function interleave(variants, { rounds, seconds, warmup, connections = 32, countRedis = true, log = () => undefined }) {
  const out = new Map(variants.map((v) => [v.name, { rps: [], cpu: [], p50: [], p99: [], redis: [], probes: {}, bad: 0, requests: 0 }]));
  for (const v of variants) {
    if (warmup > 0) await cannon({ url: v.url, seconds: warmup, connections: v.connections ?? connections, headers: v.headers });
  }
  for (let r = 0; r < rounds; r += 1) {
    for (const v of rotate(variants, r)) {
      const redis = countRedis && v.app.redis && !v.sharedRedis ? v.app.redis : null;
      const s0 = redis ? await redis.commandStats() : null;
      const p0 = await readProbes(v.probes);
      const n0 = await settle(v.app);
      const c0 = v.app.cpu();
      const b0 = placement.pinned ? coreBusyMicros(placement.serverCore) : NaN;
      const w0 = performance.now();
      const res = await cannon({ url: v.url, seconds, connections: v.connections ?? connections, headers: v.headers });
      const n1 = await settle(v.app);
      const c1 = v.app.cpu();
      const b1 = placement.pinned ? coreBusyMicros(placement.serverCore) : NaN;
      if (Number.isFinite(b0)) foreignLoad.push(Math.max(0, (b1 - b0 - (c1 - c0)) / ((performance.now() - w0) * 1000)));
      const s1 = redis ? await redis.commandStats() : null;
      const served = n1.started - n0.started;
      const p1 = await readProbes(v.probes);
      const o = out.get(v.name);
      o.rps.push(res.rps);
      o.cpu.push(served ? (c1 - c0) / served : NaN);
      o.p50.push(res.p50);
      o.p99.push(res.p99);
      o.bad += res.non2xx + res.errors;
      if (res.non2xx + res.errors && !o.sample) o.sample = await sampleFailure(v);
      o.requests += res.requests;
      for (const [name, value] of Object.entries(p1)) (o.probes[name] ??= []).push((value - p0[name]) / served);
      if (redis) {
        const d = statsDelta(s0, s1);
        o.redis.push(Object.fromEntries(Object.entries(d).map(([k, n]) => [k, n / served])));
      }
      log(`  round ${r + 1}/${rounds} ${v.name.padEnd(28)} ${Math.round(res.rps).toString().padStart(6)} req/s  ${((c1 - c0) / served).toFixed(0).padStart(5)} µs CPU/req${res.non2xx + res.errors ? `  (${res.non2xx} non-2xx, ${res.errors} errors)` : ''}`);
    }
  }
  return out;
}

/** One more request, to show what a failing variant answers: "503 {...}" (or the request error). */
async function sampleFailure(v) {
  try {
    const res = await get(v.url, { headers: v.headers });
    return `${res.status} ${String(res.body).slice(0, 240).replace(/\s+/g, ' ')}`;
  } catch (error) {
    return `request failed: ${error.code ?? error.message}`;
  }
}

/** Markdown lines for the variants that had non-2xx answers or errors. */
export function failureNotes(out) {
  const lines = [];
  for (const [name, o] of out) {
    if (o.bad) lines.push(`- **${name}: ${o.bad} non-2xx answers or errors** in ${o.requests} requests; a request sent after the failing round answered: \`${o.sample ?? 'n/a'}\``);
  }
  return lines.length ? `\n\n${lines.join('\n')}` : '';
}

async function readProbes(probes = {}) {
  const out = {};
  for (const [name, fn] of Object.entries(probes)) out[name] = await fn();
  return out;
}

/** Per-round ratios b/a of one metric (rounds are paired: same round, adjacent in time). */
export function ratios(out, a, b, metric = 'rps') {
  const x = out.get(a)[metric];
  const y = out.get(b)[metric];
  return x.map((v, i) => y[i] / v);
}

/** Median Redis commands per request: "GET 2.00, EXPIRE 1.00 (3.00)". */
export function redisText(perRound) {
  if (!perRound.length) return 'n/a';
  const names = [...new Set(perRound.flatMap((d) => Object.keys(d)))];
  const parts = names
    .map((n) => [n, median(perRound.map((d) => d[n] ?? 0))])
    .filter(([, v]) => v >= 0.005)
    .sort((p, q) => q[1] - p[1]);
  const total = parts.reduce((s, [, v]) => s + v, 0);
  return `${total.toFixed(2)} (${parts.map(([n, v]) => `${n.toUpperCase()} ${v.toFixed(2)}`).join(', ')})`;
}
