// Load generation. Fixed-path load: autocannon 8 (programmatic API, in this process, which is
// pinned to the load core). Multi-step flows (logins, storms, a 1 GiB stream): a small
// keep-alive client over node:http.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

/** autocannon for `seconds` on one URL: { requests, rps, p50, p99, non2xx, errors, bytes } */
export function cannon({ url, connections = 32, seconds = 3, headers = {}, pipelining = 1 }) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration: seconds, headers, pipelining, timeout: 30 }, (error, result) => {
      if (error) return reject(error);
      const requests = result.requests.total;
      resolve({
        requests,
        rps: requests / (result.duration || seconds),
        p50: result.latency.p50,
        p99: result.latency.p99,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts,
        bytes: result.throughput.total,
        duration: result.duration || seconds,
      });
    });
  });
}

export const agent = new http.Agent({ keepAlive: true, maxSockets: 2048, maxFreeSockets: 2048 });

/** One request; resolves { status, headers, body (string unless discard) } after the whole body. */
export function get(url, { headers = {}, discard = false, method = 'GET' } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      if (discard) {
        let bytes = 0;
        res.on('data', (chunk) => {
          bytes += chunk.length;
        });
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes }));
      } else {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      }
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A browser-ish cookie jar per origin, enough for session cookies. */
export class Jar {
  #byOrigin = new Map();
  header(url) {
    const jar = this.#byOrigin.get(new URL(url).origin);
    return jar ? [...jar].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }
  keep(url, res) {
    const set = res.headers['set-cookie'];
    if (!set) return;
    const origin = new URL(url).origin;
    const jar = this.#byOrigin.get(origin) ?? new Map();
    for (const line of Array.isArray(set) ? set : [set]) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    this.#byOrigin.set(origin, jar);
  }
}

/**
 * Follow a login from `start` through redirects (the app, the sandbox, back) until a
 * non-redirect answer or a redirect to `until`; returns { jar, cookie (for the app), hops }.
 */
export async function login(start, { until = '/me', jar = new Jar(), maxHops = 8 } = {}) {
  let url = start;
  for (let hop = 0; hop < maxHops; hop += 1) {
    const cookie = jar.header(url);
    const res = await get(url, { headers: cookie ? { cookie, accept: 'text/html' } : { accept: 'text/html' } });
    jar.keep(url, res);
    if (res.status >= 300 && res.status < 400 && res.headers.location) {
      const next = new URL(res.headers.location, url);
      if (next.pathname === until) return { jar, cookie: jar.header(start), hops: hop + 1 };
      url = next.toString();
      continue;
    }
    throw new Error(`login from ${start} stopped at ${url} with ${res.status}: ${String(res.body).slice(0, 200)}`);
  }
  throw new Error(`login from ${start}: too many redirects`);
}

/** Complete logins for `seconds` with `concurrency` parallel flows: { logins, rate, failures, p50, p99 } */
export async function loginLoad(start, { seconds, concurrency = 8 }) {
  const latencies = [];
  let failures = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        try {
          await login(start);
          latencies.push(performance.now() - t);
        } catch {
          failures += 1;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { logins: latencies.length, rate: latencies.length / elapsed, failures, p50: pct(latencies, 50), p99: pct(latencies, 99) };
}

export function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `urls` requested all at once: { latencies (sorted, ms), statuses, errors (code of each non-2xx answer → count) } */
export async function burst(urls, headers) {
  const latencies = new Array(urls.length);
  const statuses = {};
  const errors = {};
  await Promise.all(
    urls.map(async (url, i) => {
      const t = performance.now();
      const res = await get(url, { headers }).catch((error) => ({ status: error.code ?? 'error', body: '' }));
      latencies[i] = performance.now() - t;
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (!(res.status >= 200 && res.status < 300)) {
        let code = String(res.status);
        try {
          code = `${res.status} ${JSON.parse(res.body).error ?? ''}`.trim();
        } catch {
          // not JSON
        }
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { latencies, statuses, errors };
}
