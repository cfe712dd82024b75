// Figure 5: the guard with 10, 10^4, 10^5, 10^6 sessions stored. One oauth-keeper server per
// size, each with its own Redis, measured in interleaved rounds. The stored sessions are
// byte-for-byte the size of the real one (its session and token-set values under keys of the
// same length, with the same TTLs), written by a Lua loop in chunks; Redis bytes per session
// come from INFO memory before and after the fill. The passport-oauth2-style app's session
// is measured the same way for comparison.
import { startApp, startSandbox } from '../lib/env.mjs';
import { stopAll } from '../lib/proc.mjs';
import { failureNotes, interleave, ratios } from '../lib/rounds.mjs';
import { int, median, ratioText, table } from '../lib/stats.mjs';

// ARGV: source session key, source token key ('' for none), from, to, session prefix,
// token prefix, token suffix, session-id width, owner width.
const FILL = `
local sv = redis.call('GET', ARGV[1])
local sttl = redis.call('PTTL', ARGV[1])
local tv, tttl
if ARGV[2] ~= '' then
  tv = redis.call('GET', ARGV[2])
  tttl = redis.call('PTTL', ARGV[2])
end
local sfmt = '%0' .. ARGV[8] .. 'd'
local tfmt = '%0' .. ARGV[9] .. 'd'
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  redis.call('SET', ARGV[5] .. string.format(sfmt, i), sv, 'PX', sttl)
  if tv then redis.call('SET', ARGV[6] .. string.format(tfmt, i) .. ARGV[7], tv, 'PX', tttl) end
end
return 1`;

/** Copy the one real session of `app` until `total` sessions are stored; returns bytes per added session. */
async function fill(app, total, log) {
  const admin = app.redis.admin;
  const [sessKey] = await admin.keys('sess:*');
  const [tokKey] = await admin.keys('oauth-keeper:tok:{*}:example');
  const sid = sessKey.slice('sess:'.length);
  const owner = tokKey ? /\{(.+)\}/.exec(tokKey)[1] : '';
  const copies = total - 1;
  if (copies <= 0) return NaN;
  const before = await app.redis.usedMemory();
  const chunk = 50_000;
  for (let from = 1; from <= copies; from += chunk) {
    const to = Math.min(copies, from + chunk - 1);
    await admin.eval(FILL, 0, sessKey, tokKey ?? '', from, to, 'sess:', 'oauth-keeper:tok:{', '}:example', sid.length, owner.length || 1);
  }
  const after = await app.redis.usedMemory();
  if ((await admin.dbsize()) < total) throw new Error(`fill: ${await admin.dbsize()} keys for ${total} sessions`);
  log(`  filled ${app.kind} to ${int(total)} sessions: ${int((after - before) / copies)} B per session`);
  return (after - before) / copies;
}

export async function scaleFigure(mode, log) {
  const sandbox = await startSandbox();
  const apps = [];
  try {
    const sizes = mode.sessionCounts;
    const bytes = {};
    for (const size of sizes) {
      const app = await startApp('keeper', { sandbox });
      apps.push(app);
      const b = await fill(app, size, log);
      if (size >= 1000 && Number.isFinite(b)) bytes[size] = b;
    }
    const passport = await startApp('passport', { sandbox });
    apps.push(passport);
    const passportBytes = await fill(passport, 10_000, log);
    const names = sizes.map((s) => `${s} sessions`);
    const variants = apps.slice(0, sizes.length).map((app, i) => ({ name: names[i], app, url: `${app.url}/me`, headers: { cookie: app.cookie, accept: 'application/json' } }));
    const out = await interleave(variants, { ...mode.load, connections: 32, countRedis: false, log });
    const largest = names.at(-1);
    const rows = sizes.map((size, i) => {
      const o = out.get(names[i]);
      return [int(size), int(median(o.rps)), int(median(o.cpu)), i === 0 ? '1' : ratioText(ratios(out, names[0], names[i])), i === 0 ? '1' : ratioText(ratios(out, names[0], names[i], 'cpu')), bytes[size] ? int(bytes[size]) : '', String(o.bad)];
    });
    const biggest = sizes.at(-1);
    return {
      ratio: ratios(out, names[0], largest),
      cpuRatio: ratios(out, names[0], largest, 'cpu'),
      rps: [median(out.get(names[0]).rps), median(out.get(largest).rps)],
      cpu: [median(out.get(names[0]).cpu), median(out.get(largest).cpu)],
      bytesPerSession: bytes[biggest] ?? Object.values(bytes).at(-1),
      passportBytes,
      largest: biggest,
      markdown: [
        `One oauth-keeper server per size, each with its own Redis filled before the rounds; ${mode.load.rounds} interleaved rounds of ${mode.load.seconds} s, 32 connections, all requests on one real session. Ratios: this size ÷ ${sizes[0]} sessions.`,
        '',
        table(['stored sessions', 'req/s', 'server CPU µs/req', `req/s ÷ ${sizes[0]}`, `CPU ÷ ${sizes[0]}`, 'Redis bytes per session', 'non-2xx'], rows) + failureNotes(out),
        '',
        `Redis bytes per session (session key + encrypted token-set key): **${int(bytes[biggest] ?? NaN)} B** at ${int(biggest)} sessions; the passport-oauth2-style app, which keeps the tokens inside its session, uses ${int(passportBytes)} B per session (measured at 10,000).`,
      ].join('\n'),
    };
  } finally {
    await stopAll([...apps, sandbox]);
  }
}
