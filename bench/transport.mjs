// Figure 7, the transport choice for the HTTP layer (issue 11): for a proxy-like path, which of
// node:http with a keep-alive Agent, undici 7's request / stream / pipeline on a Pool, and
// Node's global fetch costs the least CPU per request and serves the most requests.
// Alone: npm run build && node bench/transport.mjs [--quick]   (about 1–2 minutes; --quick ~20 s)
// It prints its section and replaces it in bench/RESULTS.md (between the transport markers).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cpuMicros, installCleanup, pinSelf, placement, spawnNode, stopAll } from './lib/proc.mjs';
import { SERVERS, startUpstream } from './lib/env.mjs';
import { failureNotes, foreignLoad, interleave, ratios } from './lib/rounds.mjs';
import { fixed, int, median, ratioText, table } from './lib/stats.mjs';

export const TRANSPORTS = [
  ['node-http', 'node:http + keep-alive Agent'],
  ['undici-request', 'undici 7 Pool.request()'],
  ['undici-stream', 'undici 7 Pool.stream()'],
  ['undici-pipeline', 'undici 7 Pool.pipeline()'],
  ['fetch', 'global fetch (Node ' + process.versions.node + ', undici ' + process.versions.undici + ')'],
];

export const TRANSPORT_MODES = {
  quick: { rounds: 2, seconds: 1, warmup: 0.5 },
  full: { rounds: 5, seconds: 2, warmup: 1 },
};

export async function transportFigure(load, log) {
  const upstream = await startUpstream();
  const servers = [];
  try {
    for (const [transport] of TRANSPORTS) {
      const proc = await spawnNode(SERVERS.transport, { kind: transport, transport, upstreamUrl: upstream.url });
      servers.push({ ...proc, kind: transport, url: proc.info.url, cpu: () => cpuMicros(proc.pid), requests: () => proc.ask('requests') });
    }
    const label = Object.fromEntries(TRANSPORTS);
    const bySize = {};
    const sections = [];
    for (const [size, connections] of [['1k', 32], ['1m', 8]]) {
      log(` transports, ${size} answers`);
      const variants = servers.map((s) => ({ name: s.kind, app: s, url: `${s.url}/${size}`, connections }));
      const out = await interleave(variants, { ...load, countRedis: false, log });
      bySize[size] = out;
      const rows = TRANSPORTS.map(([t]) => {
        const o = out.get(t);
        return [label[t], int(median(o.rps)), int(median(o.cpu)), fixed(median(o.p99), 0), t === 'node-http' ? '1' : ratioText(ratios(out, 'node-http', t)), t === 'node-http' ? '1' : ratioText(ratios(out, 'node-http', t, 'cpu')), String(o.bad)];
      });
      sections.push(`**${size === '1k' ? '1 KiB' : '1 MiB'} answers**, ${connections} connections\n\n` + table(['transport', 'req/s', 'server CPU µs/req', 'p99 ms', 'req/s ÷ node:http', 'CPU/req ÷ node:http', 'non-2xx'], rows) + failureNotes(out));
    }
    // The verdict: lowest CPU per request, summed over both sizes as shares of the best.
    const score = TRANSPORTS.map(([t]) => {
      const parts = Object.values(bySize).map((out) => {
        const best = Math.min(...TRANSPORTS.map(([x]) => median(out.get(x).cpu)));
        return median(out.get(t).cpu) / best;
      });
      return [t, parts.reduce((a, b) => a + b, 0) / parts.length, parts];
    }).sort((a, b) => a[1] - b[1]);
    const [winner, , winnerParts] = score[0];
    const runnerUp = score[1];
    const per = (t) => Object.fromEntries(Object.entries(bySize).map(([size, out]) => [size, { rps: median(out.get(t).rps), cpu: median(out.get(t).cpu) }]));
    const verdict =
      `**Winner by CPU per request: ${label[winner]}** — ${Object.keys(bySize)
        .map((size, i) => `${size === '1k' ? '1 KiB' : '1 MiB'}: ${int(per(winner)[size].cpu)} µs/req${winnerParts[i] > 1.0001 ? ` (${fixed((winnerParts[i] - 1) * 100, 0)}% above the best there)` : ' (best)'}`)
        .join('; ')}; runner-up ${label[runnerUp[0]]} at ${fixed((runnerUp[1] - 1) * 100, 0)}% more CPU on average. ` +
      `Ranking (mean CPU per request relative to the best, both sizes): ${score.map(([t, s]) => `${label[t]} ${fixed(s, 2)}`).join(' · ')}.`;
    const markdown = [
      `Each transport in its own server process on the server core (the same code shape: status, content-type and content-length copied, body piped), the upstream a node:http server on the load core answering 1 KiB / 1 MiB. ${load.rounds} interleaved rounds of ${load.seconds} s per transport and size. Ratios are this transport ÷ node:http per round (median, min–max).`,
      '',
      sections.join('\n\n'),
      '',
      verdict,
    ].join('\n');
    return { markdown, winner, label: label[winner], score, per: Object.fromEntries(TRANSPORTS.map(([t]) => [t, per(t)])) };
  } finally {
    await stopAll([...servers, upstream]);
  }
}

export const TRANSPORT_START = '<!-- transport:start -->';
export const TRANSPORT_END = '<!-- transport:end -->';

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  installCleanup();
  pinSelf();
  const quick = process.argv.includes('--quick');
  const load = quick ? TRANSPORT_MODES.quick : TRANSPORT_MODES.full;
  const t0 = Date.now();
  console.log(`transport figure (${quick ? 'quick' : 'full'}), ${placement.note}`);
  const result = await transportFigure(load, console.log);
  const section = `${TRANSPORT_START}\n## 7. Transport choice for the HTTP layer (issue 11)\n\nCommand: \`npm run build && node bench/transport.mjs${quick ? ' --quick' : ''}\` (also part of \`npm run bench\`), ${new Date().toISOString()}, ${Math.round((Date.now() - t0) / 1000)} s, ${placement.note}; other work on the server core during the runs: ${foreignLoad.length ? `median ${fixed(median(foreignLoad) * 100, 0)}%, max ${fixed(Math.max(...foreignLoad) * 100, 0)}%` : 'not measured'} of the core (noisy when above a few %).\n\n${result.markdown}\n${TRANSPORT_END}`;
  console.log(`\n${section}`);
  const file = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    const a = text.indexOf(TRANSPORT_START);
    const b = text.indexOf(TRANSPORT_END);
    writeFileSync(file, a >= 0 && b > a ? text.slice(0, a) + section + text.slice(b + TRANSPORT_END.length) : `${text.trimEnd()}\n\n${section}\n`);
  } else {
    writeFileSync(file, `# oauth-keeper benchmark results\n\n${section}\n`);
  }
  console.log(`\nwritten into ${file}`);
  process.exit(0);
}
