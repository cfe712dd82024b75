// Figure 1: a guarded GET /me reading req.oauthToken against what a user would have instead.
import { startApp, startSandbox } from '../lib/env.mjs';
import { stopAll } from '../lib/proc.mjs';
import { failureNotes, interleave, ratios, redisText } from '../lib/rounds.mjs';
import { fixed, int, median, ratioText, table } from '../lib/stats.mjs';

const VARIANTS = [
  ['raw', 'raw node:http (ceiling)'],
  ['express', 'Express alone (ceiling)'],
  ['session', 'express-session + connect-redis, token-sized object'],
  ['passport', 'passport-oauth2-style app (tokens in the session)'],
  ['keeper-mw', 'oauth-keeper middleware, no guard'],
  ['keeper-lean', 'oauth-keeper guard without Passport in the request path (logIn: false)'],
  ['keeper-cr', 'oauth-keeper guard, sessions in connect-redis + guardSessionStore()'],
  ['keeper', 'oauth-keeper guard + req.oauthToken (keeper.sessionStore())'],
];

export async function guardFigure(mode, log) {
  const sandbox = await startSandbox();
  const apps = [];
  try {
    for (const [kind] of VARIANTS) apps.push(await startApp(kind, { sandbox }));
    const variants = apps.map((app) => ({ name: app.kind, app, url: `${app.url}/me`, headers: { cookie: app.cookie, accept: 'application/json' } }));
    const out = await interleave(variants, { ...mode.load, connections: 32, log });
    const label = Object.fromEntries(VARIANTS);
    const rows = VARIANTS.map(([kind]) => {
      const o = out.get(kind);
      return [
        label[kind],
        int(median(o.rps)),
        int(median(o.cpu)),
        fixed(median(o.p99), 0),
        kind === 'raw' || kind === 'express' ? '0' : redisText(o.redis),
        kind === 'keeper' ? '1' : ratioText(ratios(out, kind, 'keeper')),
        kind === 'keeper' ? '1' : ratioText(ratios(out, kind, 'keeper', 'cpu')),
        String(o.bad),
      ];
    });
    const cmp = (base) => ({
      rps: [median(out.get(base).rps), median(out.get('keeper').rps)],
      ratio: ratios(out, base, 'keeper'),
      cpu: [median(out.get(base).cpu), median(out.get('keeper').cpu)],
      cpuRatio: ratios(out, base, 'keeper', 'cpu'),
    });
    const mwVsPassport = { rps: [median(out.get('passport').rps), median(out.get('keeper-mw').rps)], ratio: ratios(out, 'passport', 'keeper-mw'), cpu: [median(out.get('passport').cpu), median(out.get('keeper-mw').cpu)], cpuRatio: ratios(out, 'passport', 'keeper-mw', 'cpu') };
    const crVsPassport = { rps: [median(out.get('passport').rps), median(out.get('keeper-cr').rps)], ratio: ratios(out, 'passport', 'keeper-cr'), cpu: [median(out.get('passport').cpu), median(out.get('keeper-cr').cpu)], cpuRatio: ratios(out, 'passport', 'keeper-cr', 'cpu') };
    const leanVsSession = { rps: [median(out.get('session').rps), median(out.get('keeper-lean').rps)], ratio: ratios(out, 'session', 'keeper-lean'), cpu: [median(out.get('session').cpu), median(out.get('keeper-lean').cpu)], cpuRatio: ratios(out, 'session', 'keeper-lean', 'cpu') };
    const passportVsSession = { ratio: ratios(out, 'session', 'passport'), cpuRatio: ratios(out, 'session', 'passport', 'cpu') };
    return {
      vsPassport: cmp('passport'),
      crVsPassport,
      leanVsSession,
      passportVsSession,
      vsSession: cmp('session'),
      mwVsPassport,
      redis: { passport: redisText(out.get('passport').redis), session: redisText(out.get('session').redis), keeper: redisText(out.get('keeper').redis), cr: redisText(out.get('keeper-cr').redis), lean: redisText(out.get('keeper-lean').redis), mw: redisText(out.get('keeper-mw').redis) },
      ceilings: { raw: median(out.get('raw').rps), express: median(out.get('express').rps) },
      markdown: [
        `${mode.load.rounds} interleaved rounds of ${mode.load.seconds} s per variant, 32 connections, one session cookie per server (a real login through the sandbox, except the session-only app which sets a token-sized object at /login). Ratios are oauth-keeper's guarded route ÷ the row, per round (median, min–max): above 1 means oauth-keeper is faster / uses more CPU.`,
        '',
        table(['server', 'req/s', 'server CPU µs/req', 'p99 ms', 'Redis commands/req', 'guard ÷ this, req/s', 'guard ÷ this, CPU/req', 'non-2xx'], rows) + failureNotes(out),
      ].join('\n'),
    };
  } finally {
    await stopAll([...apps, sandbox]);
  }
}
