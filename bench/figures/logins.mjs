// Figure 6: complete logins per second against the sandbox — GET /auth/example, the sandbox's
// /authorize (auto-approved), the callback with its code exchange and the session write —
// oauth-keeper's routes against a plain passport-oauth2 OAuth2Strategy (state + PKCE).
import { startApp, startSandbox } from '../lib/env.mjs';
import { loginLoad } from '../lib/load.mjs';
import { stopAll } from '../lib/proc.mjs';
import { statsDelta } from '../lib/redis.mjs';
import { redisText, settle } from '../lib/rounds.mjs';
import { fixed, int, median, ratioText, rotate, table } from '../lib/stats.mjs';

/** Sandbox counters per login, without a total (authorizationCode is a part of token). */
function callsText(perRound) {
  const names = [...new Set(perRound.flatMap((d) => Object.keys(d)))];
  return names.map((n) => `${n} ${fixed(median(perRound.map((d) => d[n] ?? 0)), 2)}`).join(', ') || 'none';
}

export async function loginsFigure(mode, log) {
  const sandbox = await startSandbox();
  const apps = [];
  try {
    const passport = await startApp('passport', { sandbox });
    const keeper = await startApp('keeper', { sandbox });
    apps.push(passport, keeper);
    const variants = [
      { name: 'passport', app: passport, start: `${passport.url}/auth/example` },
      { name: 'keeper', app: keeper, start: `${keeper.url}/auth/example?returnTo=/me` },
    ];
    const out = new Map(variants.map((v) => [v.name, { rate: [], cpu: [], p99: [], failures: 0, redis: [], sandbox: [] }]));
    const concurrency = 8;
    for (const v of variants) await loginLoad(v.start, { seconds: mode.load.warmup || 0.5, concurrency });
    for (let r = 0; r < mode.load.rounds; r += 1) {
      for (const v of rotate(variants, r)) {
        const r0 = await v.app.redis.commandStats();
        const k0 = await sandbox.counters();
        const c0 = v.app.cpu();
        const res = await loginLoad(v.start, { seconds: mode.load.seconds, concurrency });
        await settle(v.app);
        const c1 = v.app.cpu();
        const r1 = await v.app.redis.commandStats();
        const k1 = await sandbox.counters();
        const o = out.get(v.name);
        const perLogin = (d) => Object.fromEntries(Object.entries(d).map(([name, n]) => [name, n / res.logins]));
        o.redis.push(perLogin(statsDelta(r0, r1)));
        o.sandbox.push(perLogin(statsDelta(k0, k1)));
        o.rate.push(res.rate);
        o.cpu.push((c1 - c0) / res.logins);
        o.p99.push(res.p99);
        o.failures += res.failures;
        log(`  round ${r + 1}/${mode.load.rounds} ${v.name.padEnd(10)} ${fixed(res.rate, 0)} logins/s  ${fixed((c1 - c0) / res.logins, 0)} µs CPU/login${res.failures ? `  ${res.failures} failed` : ''}`);
      }
    }
    const p = out.get('passport');
    const k = out.get('keeper');
    const ratio = k.rate.map((x, i) => x / p.rate[i]);
    const cpuRatio = k.cpu.map((x, i) => x / p.cpu[i]);
    return {
      rate: [median(p.rate), median(k.rate)],
      ratio,
      cpu: [median(p.cpu), median(k.cpu)],
      cpuRatio,
      markdown: [
        `${concurrency} logins in flight, each a new browser (cookie jar) following the redirects: app → sandbox /authorize (auto-approved) → app callback (code exchange at the sandbox's /token, session regenerated and saved) → /me. ${mode.load.rounds} interleaved rounds of ${mode.load.seconds} s. Neither app fetches a user profile (sandbox calls per login show it: \`token\` counts every call of the token endpoint, \`authorizationCode\` the code grants among them). Redis commands include those run inside Lua scripts. The sandbox runs on the load core, so both are partly bound by it; CPU per login is the app server's own.`,
        '',
        table(
          ['app', 'logins/s', 'server CPU µs/login', 'p99 ms per login', 'Redis commands/login', 'sandbox calls/login', 'failed'],
          [
            ['passport-oauth2 OAuth2Strategy (state, PKCE) + session write', int(median(p.rate)), int(median(p.cpu)), fixed(median(p.p99), 0), redisText(p.redis), callsText(p.sandbox), String(p.failures)],
            ['oauth-keeper login + callback routes', int(median(k.rate)), int(median(k.cpu)), fixed(median(k.p99), 0), redisText(k.redis), callsText(k.sandbox), String(k.failures)],
            ['**ratio** keeper ÷ passport-oauth2', ratioText(ratio), ratioText(cpuRatio), '', '', '', ''],
          ],
        ),
      ].join('\n'),
    };
  } finally {
    await stopAll([...apps, sandbox]);
  }
}
