// oauth-keeper benchmarks, side by side in one run: `npm run bench` (builds first), or
//   node bench/run.mjs [--quick] [--only=guard,proxy,storm,scale,logins,transport]
// Writes bench/RESULTS.md. Every server is a child process with its own redis-server on a free
// port (--save ""), its own sandbox and upstream on loopback; servers are pinned to one core and
// the load generator (this process), Redis, sandbox and upstream to the other when taskset is
// there. Every child is killed on exit and on SIGINT.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { guardFigure } from './figures/guard.mjs';
import { loginsFigure } from './figures/logins.mjs';
import { proxyFigure } from './figures/proxy.mjs';
import { scaleFigure } from './figures/scale.mjs';
import { stormFigure } from './figures/storm.mjs';
import { snapshotBuild } from './lib/build.mjs';
import { CLK_TCK, installCleanup, pinSelf, placement } from './lib/proc.mjs';
import { foreignLoad } from './lib/rounds.mjs';
import { pct } from './lib/load.mjs';
import { fixed, int, median, ratioText, table } from './lib/stats.mjs';
import { TRANSPORT_END, TRANSPORT_MODES, TRANSPORT_START, transportFigure } from './transport.mjs';

const MODES = {
  quick: {
    load: { rounds: 2, seconds: 1, warmup: 0.5 },
    streamBytes: 256 * 1048576,
    streamRounds: 1,
    stormInstances: 8,
    stormRequests: 1000,
    storms: 2,
    sessionCounts: [10, 10_000, 100_000],
    transport: TRANSPORT_MODES.quick,
  },
  full: {
    load: { rounds: 10, seconds: 2, warmup: 2 },
    streamBytes: 1024 * 1048576,
    streamRounds: 3,
    stormInstances: 8,
    stormRequests: 1000,
    storms: 6,
    sessionCounts: [10, 10_000, 100_000, 1_000_000],
    transport: TRANSPORT_MODES.full,
  },
};

const ALL = ['guard', 'proxy', 'storm', 'scale', 'logins', 'transport'];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = (args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',') ?? ALL).filter(Boolean);
for (const name of only) if (!ALL.includes(name)) throw new Error(`--only: unknown figure ${name} (one of ${ALL.join(', ')})`);
const mode = quick ? MODES.quick : MODES.full;
const flag = quick ? ' --quick' : '';
const command = (name) => `npm run build && node bench/run.mjs${flag} --only=${name}`;

installCleanup();
pinSelf();
const build = snapshotBuild();

const log = (...a) => console.log(...a);
const started = Date.now();
const results = {};
const errors = {};
const timings = {};
log(`oauth-keeper bench (${quick ? 'quick' : 'full'}): ${only.join(', ')}; ${placement.note}`);
for (const name of only) {
  const t0 = Date.now();
  log(`\n== ${name}`);
  try {
    if (name === 'guard') results.guard = await guardFigure(mode, log);
    if (name === 'proxy') results.proxy = await proxyFigure(mode, log);
    if (name === 'storm') results.storm = await stormFigure(mode, log);
    if (name === 'scale') results.scale = await scaleFigure(mode, log);
    if (name === 'logins') results.logins = await loginsFigure(mode, log);
    if (name === 'transport') results.transport = await transportFigure(mode.transport, log);
  } catch (error) {
    errors[name] = error;
    console.error(`${name} failed:`, error);
  }
  timings[name] = Math.round((Date.now() - t0) / 1000);
  log(`== ${name}: ${timings[name]} s`);
}
const totalSeconds = Math.round((Date.now() - started) / 1000);

// ---- RESULTS.md -------------------------------------------------------------------------

const us = (x) => `${int(x)} µs`;
const met = (ok) => (ok ? 'met' : '**not met**');
const cpuCell = (pair, ratio) => `${us(pair[0])} → ${us(pair[1])} (${ratioText(ratio)})`;
const summary = [];
const g = results.guard;
if (g) {
  summary.push(['1', 'guarded `GET /me` reading `req.oauthToken` vs passport-oauth2-style app (tokens in the session), req/s', int(g.vsPassport.rps[0]), int(g.vsPassport.rps[1]), ratioText(g.vsPassport.ratio), cpuCell(g.vsPassport.cpu, g.vsPassport.cpuRatio), `req/s ≥ 0.95, CPU ≤ 1.05: ${met(median(g.vsPassport.ratio) >= 0.95)}, ${met(median(g.vsPassport.cpuRatio) <= 1.05)}`, command('guard')]);
  summary.push(['1', `same, vs express-session + connect-redis alone reading a token-sized object (Passport in the keeper's request path; the passport-oauth2-style app itself is ${ratioText(g.passportVsSession.ratio)} of this baseline's req/s)`, int(g.vsSession.rps[0]), int(g.vsSession.rps[1]), ratioText(g.vsSession.ratio), cpuCell(g.vsSession.cpu, g.vsSession.cpuRatio), `≥ 0.85: ${met(median(g.vsSession.ratio) >= 0.85)}`, command('guard')]);
  summary.push(['1', 'the guard without Passport in the request path (`logIn: false`, the provider connected to the session), vs express-session + connect-redis alone', int(g.leanVsSession.rps[0]), int(g.leanVsSession.rps[1]), ratioText(g.leanVsSession.ratio), cpuCell(g.leanVsSession.cpu, g.leanVsSession.cpuRatio), `≥ 0.85: ${met(median(g.leanVsSession.ratio) >= 0.85)}`, command('guard')]);
  summary.push(['1', 'same guard with sessions in connect-redis + `guardSessionStore()` instead of `keeper.sessionStore()`, vs passport-oauth2-style app', int(g.crVsPassport.rps[0]), int(g.crVsPassport.rps[1]), ratioText(g.crVsPassport.ratio), cpuCell(g.crVsPassport.cpu, g.crVsPassport.cpuRatio), '', command('guard')]);
  summary.push(['1', 'passport + `keeper.middleware()`, no guard, vs passport-oauth2-style app', int(g.mwVsPassport.rps[0]), int(g.mwVsPassport.rps[1]), ratioText(g.mwVsPassport.ratio), cpuCell(g.mwVsPassport.cpu, g.mwVsPassport.cpuRatio), '', command('guard')]);
  summary.push(['1', 'Redis commands per request (total and per command)', `passport-oauth2-style: ${g.redis.passport}; session alone: ${g.redis.session}`, `guard: ${g.redis.keeper}; without Passport: ${g.redis.lean}; on connect-redis: ${g.redis.cr}; no guard: ${g.redis.mw}`, '', '', '= baseline', command('guard')]);
  summary.push(['1', 'ceilings, req/s: raw node:http, Express alone', `${int(g.ceilings.raw)}; ${int(g.ceilings.express)}`, '', '', '', '', command('guard')]);
}
const p = results.proxy;
if (p) {
  for (const [size, label] of [['1k', '1 KiB'], ['1m', '1 MiB']]) {
    const r = p.sizes[size];
    summary.push(['2', `proxy, ${label} answers, req/s, vs http-proxy-middleware 3 + keep-alive agent (guard + proxy; Redis commands/req: hpm ${r.redis[0]}, keeper ${r.redis[1]}; new upstream connections/req: hpm ${fixed(r.conns[0], 2)}, keeper ${fixed(r.conns[1], 2)})`, int(r.rps[0]), int(r.rps[1]), ratioText(r.ratio), cpuCell(r.cpu, r.cpuRatio), `≥ 1.10: ${met(median(r.ratio) >= 1.1)}`, command('proxy')]);
  }
  if (p.stream) {
    const s = p.stream;
    summary.push(['3', `${int(mode.streamBytes / 1048576)} MiB streamed through the proxy, MiB/s (upstream direct: ${int(s.ceiling)})`, `${int(s.mibs[0])} MiB/s, peak RSS +${fixed(s.rss[0], 1)} MiB`, `${int(s.mibs[1])} MiB/s, peak RSS +${fixed(s.rss[1], 1)} MiB (peak ${fixed(s.peak[1], 0)} MiB)`, ratioText(s.ratio), `${fixed(s.cpu[0], 2)} → ${fixed(s.cpu[1], 2)} s per GiB`, `≥ 1.0, RSS growth < 64 MiB: ${met(median(s.ratio) >= 1)}, ${met(s.rss[1] < 64)}`, command('proxy')]);
  }
}
const st = results.storm;
if (st) {
  summary.push(['4', `refresh storm: ${mode.stormRequests} requests over ${mode.stormInstances} instances on an expired session; refreshes per storm, p99 latency vs a fresh token`, `fresh token: p50 ${fixed(st.p50[0], 0)} ms, p99 ${fixed(st.p99[0], 0)} ms`, `refreshes: ${st.refreshCounts.join(', ')}; p50 ${fixed(st.p50[1], 0)} ms, p99 ${fixed(st.p99[1], 0)} ms; non-2xx: ${st.failures.expired} (fresh-token storms: ${st.failures.fresh})`, `p99 ${ratioText(st.ratio)}`, '', `exactly 1: ${met(st.exactlyOne)}`, command('storm')]);
}
const sc = results.scale;
if (sc) {
  summary.push(['5', `guard at ${int(sc.largest)} vs 10 stored sessions, req/s; Redis bytes per session`, `10 sessions: ${int(sc.rps[0])}`, `${int(sc.largest)} sessions: ${int(sc.rps[1])}; ${int(sc.bytesPerSession)} B per session (passport-oauth2-style: ${int(sc.passportBytes)} B)`, ratioText(sc.ratio), cpuCell(sc.cpu, sc.cpuRatio), 'flat', command('scale')]);
}
const lg = results.logins;
if (lg) {
  summary.push(['6', 'complete logins per second against the sandbox vs plain passport-oauth2 (state, PKCE) with a session write', fixed(lg.rate[0], 0), fixed(lg.rate[1], 0), ratioText(lg.ratio), cpuCell(lg.cpu, lg.cpuRatio), '', command('logins')]);
}
const tr = results.transport;
if (tr) {
  const n = tr.per['node-http'];
  const w = tr.per[tr.winner];
  summary.push(['7', 'transport for the HTTP layer, proxy-like path (1 KiB; 1 MiB), server CPU per request', `node:http keep-alive: ${us(n['1k'].cpu)}; ${us(n['1m'].cpu)}`, `winner ${tr.label}: ${us(w['1k'].cpu)}; ${us(w['1m'].cpu)}`, '', '', '', 'npm run build && node bench/transport.mjs (alone, ~1–2 min)']);
}
for (const [name, error] of Object.entries(errors)) summary.push(['', `**${name} failed**: ${String(error.message).split('\n')[0]}`, '', '', '', '', '', command(name)]);

let commit = 'unknown';
let dirty = '';
try {
  commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() ? ' (src/ had uncommitted changes: the build measured is of the working tree)' : '';
} catch {
  // not a git checkout
}

const section = (title, name, body) => {
  if (!only.includes(name)) return null;
  const head = `## ${title}\n\nCommand: \`${command(name)}\` (${timings[name] ?? '?'} s in this run)`;
  if (errors[name]) return `${head}\n\nFailed: \`${String(errors[name].stack ?? errors[name]).split('\n').slice(0, 4).join(' ')}\``;
  return `${head}\n\n${body}`;
};

const parts = [
  '# oauth-keeper benchmark results',
  '',
  `${quick ? '**Quick run** (`--quick`: short rounds, smaller stream and session counts; for checking the harness, not for the numbers).' : 'Full run.'} ${new Date().toISOString()}, ${totalSeconds} s in all, by \`${quick ? 'node bench/run.mjs --quick' : 'npm run bench'}\`${only.length < ALL.length ? ` (only ${only.join(', ')})` : ''}.`,
  '',
  `- Node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} × ${placement.cores}, ${int(os.totalmem() / 1048576)} MiB RAM, Linux ${os.release()}; oauth-keeper at ${commit}${dirty}, the build of ${build.builtAt.toISOString()} (dist/esm copied at the start, so that the whole run measures one build).`,
  `- Placement: ${placement.note}. Load generator: autocannon 8 through its programmatic API in this process for fixed-path load; a small keep-alive node:http client (bench/lib/load.mjs) for multi-step logins, the storm bursts and the long stream. Loopback only.`,
  `- Server CPU per request: utime + stime of the server process from /proc/<pid>/stat (CLK_TCK ${CLK_TCK}) read just before and after each run, divided by the requests completed in it. Redis commands per request: \`INFO commandstats\` deltas of the server's own redis-server around each run.`,
  '- Interleaved A/B rounds: every variant runs once per round, the order rotating each round; ratios are taken per round (paired) and given as median (min–max).',
  `- Other work on the server core during the measured runs (its busy time from /proc/stat minus the measured server's CPU, per run): ${foreignLoad.length ? `median ${fixed(median(foreignLoad) * 100, 0)}% of the core, 90th percentile ${fixed(pct([...foreignLoad].sort((a, b) => a - b), 90) * 100, 0)}%, max ${fixed(Math.max(...foreignLoad) * 100, 0)}% over ${foreignLoad.length} runs` : 'not measured (not pinned)'}; on a quiet machine this is near 0%.`,
  foreignLoad.length && median(foreignLoad) < 0.05
    ? '- The server core was quiet during this run; spreads still come from the load generator, Redis and the upstream sharing the other core.'
    : '- **Noise:** this machine was shared with other work (other agents running builds and test suites on the same two cores) while these numbers were taken, so absolute figures are low and spreads wide; CPU per request and paired ratios are steadier than req/s, but not steady. Re-run `npm run bench` on a quiet machine before quoting any of it.',
  '',
  '## Summary',
  '',
  table(['#', 'figure', 'baseline', 'oauth-keeper', 'ratio keeper ÷ baseline', 'server CPU per request (baseline → keeper, ratio)', 'goal (issue 15)', 'command'], summary),
  '',
  section('1. The guard: `GET /me`', 'guard', g?.markdown),
  '',
  section('2. The proxy: 1 KiB and 1 MiB answers', 'proxy', p?.markdown),
  '',
  section(`3. ${int(mode.streamBytes / 1048576)} MiB streamed through the proxy`, 'proxy', p?.streamMarkdown),
  '',
  section('4. Refresh storm', 'storm', st?.markdown),
  '',
  section('5. Guard cost against stored sessions', 'scale', sc?.markdown),
  '',
  section('6. Complete logins per second', 'logins', lg?.markdown),
  '',
];
const transportSection = tr
  ? `${TRANSPORT_START}\n## 7. Transport choice for the HTTP layer (issue 11)\n\nCommand: \`npm run build && node bench/transport.mjs${flag}\` alone (~1–2 min), or \`${command('transport')}\` (${timings.transport} s in this run). ${placement.note}.\n\n${tr.markdown}\n${TRANSPORT_END}`
  : errors.transport
    ? `${TRANSPORT_START}\n${section('7. Transport choice for the HTTP layer (issue 11)', 'transport', '')}\n${TRANSPORT_END}`
    : null;
const file = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
for (let i = parts.length - 1; i >= 0; i -= 1) if (parts[i] === null) parts.splice(i, 2);
let keptTransport = '';
if (!transportSection) {
  // Keep a transport section written earlier by bench/transport.mjs alone.
  try {
    const old = readFileSync(file, 'utf8');
    const a = old.indexOf(TRANSPORT_START);
    const b = old.indexOf(TRANSPORT_END);
    if (a >= 0 && b > a) keptTransport = old.slice(a, b + TRANSPORT_END.length);
  } catch {
    // no earlier file
  }
}
parts.push(transportSection ?? keptTransport, '');
parts.push(
  '## What the numbers include',
  '',
  '- Every app answers `GET /me` with the same small JSON (`provider`, `scope`, `expiresAt`, `user`). oauth-keeper apps are the README quick start (express-session with `keeper.sessionStore({ client })` — or, in the row that says so, `guardSessionStore(new RedisStore(...))` —, `passport.initialize()`, `passport.session()`, `keeper.middleware()`, `errorHandler()`), tokens in `RedisBackend` with AES-256-GCM. The passport-oauth2-style app uses a real `OAuth2Strategy` (state + PKCE) whose verify puts the tokens in the user object that `serializeUser` keeps in the session. All share the README\'s ioredis settings.',
  '- The proxy baseline is http-proxy-middleware 3 (`changeOrigin`, an `http.Agent({ keepAlive: true })`), behind the same passport stack, with a guard that answers 401 without a user and a `proxyReq` hook that drops the cookie and sets `Authorization: Bearer <token from the session>`.',
  `- Spreads: min–max over the rounds of this run (${mode.load.rounds} rounds per figure${quick ? ', too few to mean much' : ''}).`,
  '',
);
writeFileSync(file, parts.join('\n'));
log(`\nwrote ${file} (${totalSeconds} s)`);
process.exit(Object.keys(errors).length ? 1 : 0);
