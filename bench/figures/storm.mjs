// Figure 4: the refresh storm. 8 oauth-keeper instances share one Redis and one sandbox; one
// session's token set is made expired, then 1,000 requests for that session hit the 8
// instances at once. Counted: refreshes at the sandbox (must be exactly 1 per storm), and the
// latency against the same storm on a fresh token, interleaved.
import { buildDir, entry } from '../lib/build.mjs';
import { startApp, startSandbox, TOKEN_KEY } from '../lib/env.mjs';
import { burst, pct } from '../lib/load.mjs';
import { stopAll } from '../lib/proc.mjs';
import { startRedis } from '../lib/redis.mjs';
import { fixed, median, spread, table } from '../lib/stats.mjs';

export async function stormFigure(mode, log) {
  const sandbox = await startSandbox();
  const redis = await startRedis();
  const apps = [];
  try {
    const n = mode.stormInstances;
    for (let i = 0; i < n; i += 1) apps.push(await startApp('keeper', { sandbox, redis, login: i === 0 }));
    const cookie = apps[0].cookie;
    const [key] = await redis.admin.keys('oauth-keeper:tok:{*}:example');
    const owner = /\{(.+)\}/.exec(key)[1];
    const { RedisBackend, TokenStore } = await import(entry(buildDir()));
    const store = new TokenStore({ backend: new RedisBackend({ client: redis.admin }), encryptionKeys: [TOKEN_KEY] });
    const urls = Array.from({ length: mode.stormRequests }, (_, i) => `${apps[i % n].url}/me`);
    const headers = { cookie, accept: 'application/json' };
    await burst(urls, headers); // opens the connections; a fresh-token storm
    const runs = { expired: [], fresh: [] };
    for (let s = 0; s < mode.storms; s += 1) {
      for (const which of s % 2 ? ['fresh', 'expired'] : ['expired', 'fresh']) {
        if (which === 'expired') {
          const stored = await store.get(owner, 'example');
          const ok = await store.put(owner, 'example', { ...stored.tokenSet, expiresAt: Date.now() - 1000 }, stored.generation);
          if (ok === null) throw new Error('could not expire the token set');
        }
        const before = (await sandbox.counters()).refresh;
        const { latencies, statuses, errors } = await burst(urls, headers);
        const refreshes = (await sandbox.counters()).refresh - before;
        runs[which].push({ refreshes, p50: pct(latencies, 50), p99: pct(latencies, 99), max: latencies.at(-1), statuses, errors });
        log(`  storm ${s + 1}/${mode.storms} ${which.padEnd(8)} ${refreshes} refresh(es), p50 ${fixed(pct(latencies, 50), 0)} ms, p99 ${fixed(pct(latencies, 99), 0)} ms, statuses ${JSON.stringify(statuses)}${Object.keys(errors).length ? ` ${JSON.stringify(errors)}` : ''}`);
      }
    }
    const refreshCounts = runs.expired.map((r) => r.refreshes);
    const m = (list, k) => median(list.map((r) => r[k]));
    const rng = (list, k) => {
      const [lo, hi] = spread(list.map((r) => r[k]));
      return `${fixed(median(list.map((r) => r[k])), 0)} (${fixed(lo, 0)}–${fixed(hi, 0)})`;
    };
    const sum = (list, field) => {
      const all = {};
      for (const r of list) for (const [k, v] of Object.entries(r[field])) all[k] = (all[k] ?? 0) + v;
      return all;
    };
    const statusText = (list) => Object.entries(sum(list, 'statuses')).map(([k, v]) => `${k}: ${v}`).join(', ');
    const errorText = (list) => Object.entries(sum(list, 'errors')).map(([k, v]) => `${v} × ${k}`).join(', ') || 'none';
    return {
      refreshCounts,
      exactlyOne: refreshCounts.every((c) => c === 1),
      failures: { fresh: errorText(runs.fresh), expired: errorText(runs.expired) },
      p50: [m(runs.fresh, 'p50'), m(runs.expired, 'p50')],
      p99: [m(runs.fresh, 'p99'), m(runs.expired, 'p99')],
      ratio: runs.expired.map((r, i) => r.p99 / runs.fresh[i].p99),
      markdown: [
        `${n} oauth-keeper instances (child processes, all on the server core) sharing one Redis and the sandbox; ${mode.stormRequests} requests of one session, spread round-robin over the instances, all sent at once; ${mode.storms} storms on an expired token interleaved with ${mode.storms} on a fresh one. The sandbox rotates refresh tokens and treats a reused one as theft (it revokes the family), so a second refresh would show up as failures.`,
        '',
        table(
          ['token', 'refreshes per storm', 'p50 ms', 'p99 ms', 'max ms', 'statuses (all storms)', 'non-2xx answers'],
          [
            ['fresh', runs.fresh.map((r) => r.refreshes).join(', '), rng(runs.fresh, 'p50'), rng(runs.fresh, 'p99'), rng(runs.fresh, 'max'), statusText(runs.fresh), errorText(runs.fresh)],
            ['expired', refreshCounts.join(', '), rng(runs.expired, 'p50'), rng(runs.expired, 'p99'), rng(runs.expired, 'max'), statusText(runs.expired), errorText(runs.expired)],
          ],
        ),
      ].join('\n'),
    };
  } finally {
    await stopAll([...apps, sandbox]);
    await redis.stop();
  }
}
