// Figure 2: keeper.proxy() with 1 KiB and 1 MiB answers against http-proxy-middleware 3 with
// a keep-alive agent (behind passport, adding the Bearer from the session), both guarded.
// Figure 3: 1 GiB streamed through each: MiB/s and the server's peak RSS.
import { performance } from 'node:perf_hooks';
import { startApp, startSandbox, startUpstream } from '../lib/env.mjs';
import { get } from '../lib/load.mjs';
import { memoryKiB, resetPeak, stopAll } from '../lib/proc.mjs';
import { failureNotes, interleave, ratios, redisText } from '../lib/rounds.mjs';
import { fixed, int, median, ratioText, rotate, spread, table } from '../lib/stats.mjs';

export async function proxyFigure(mode, log) {
  const sandbox = await startSandbox();
  const upstream = await startUpstream();
  const apps = [];
  try {
    const hpm = await startApp('passport', { sandbox, upstream });
    const keeper = await startApp('keeper', { sandbox, upstream });
    apps.push(hpm, keeper);
    const result = { sizes: {} };
    const probes = { upstreamConnections: () => upstream.connections() };
    const sections = [];
    for (const [size, connections] of [['1k', 32], ['1m', 8]]) {
      log(` ${size} answers`);
      const variants = [
        { name: 'hpm', app: hpm, url: `${hpm.url}/api/${size}`, headers: { cookie: hpm.cookie }, connections, probes },
        { name: 'keeper', app: keeper, url: `${keeper.url}/api/${size}`, headers: { cookie: keeper.cookie }, connections, probes },
      ];
      const out = await interleave(variants, { ...mode.load, log });
      const r = (result.sizes[size] = {
        rps: [median(out.get('hpm').rps), median(out.get('keeper').rps)],
        ratio: ratios(out, 'hpm', 'keeper'),
        cpu: [median(out.get('hpm').cpu), median(out.get('keeper').cpu)],
        cpuRatio: ratios(out, 'hpm', 'keeper', 'cpu'),
        redis: [redisText(out.get('hpm').redis), redisText(out.get('keeper').redis)],
        p99: [median(out.get('hpm').p99), median(out.get('keeper').p99)],
        bad: [out.get('hpm').bad, out.get('keeper').bad],
        conns: [median(out.get('hpm').probes.upstreamConnections), median(out.get('keeper').probes.upstreamConnections)],
      });
      sections.push(
        table(
          ['answer', 'server', 'req/s', 'server CPU µs/req', 'p99 ms', 'Redis commands/req', 'new upstream connections/req', 'non-2xx'],
          [
            [size === '1k' ? '1 KiB' : '1 MiB', `http-proxy-middleware 3, keep-alive agent (${connections} connections)`, int(r.rps[0]), int(r.cpu[0]), fixed(r.p99[0], 0), r.redis[0], fixed(r.conns[0], 2), String(r.bad[0])],
            ['', 'oauth-keeper guard + proxy', int(r.rps[1]), int(r.cpu[1]), fixed(r.p99[1], 0), r.redis[1], fixed(r.conns[1], 2), String(r.bad[1])],
            ['', '**ratio** keeper ÷ hpm', ratioText(r.ratio), ratioText(r.cpuRatio), '', '', '', ''],
          ],
        ) + failureNotes(out),
      );
    }
    result.markdown = [
      `${mode.load.rounds} interleaved rounds of ${mode.load.seconds} s per server; the upstream (a node:http server on the load core) checks that a Bearer token came with each request and counts the TCP connections it accepts (new upstream connections per request: 0 means the proxy reuses kept-alive connections, 1 means one connection per request). Both apps run express-session + connect-redis + passport; http-proxy-middleware gets the Bearer from the session (the passport-oauth2 way), oauth-keeper from its token store.`,
      '',
      sections.join('\n\n'),
    ].join('\n');

    // Figure 3: a long stream through each proxy, and straight from the upstream (ceiling).
    const bytes = mode.streamBytes;
    const targets = [
      { name: 'upstream direct (ceiling)', url: `${upstream.url}/api/stream?bytes=${bytes}`, headers: { authorization: 'Bearer direct' }, pid: null },
      { name: 'http-proxy-middleware 3', url: `${hpm.url}/api/stream?bytes=${bytes}`, headers: { cookie: hpm.cookie }, pid: hpm.pid },
      { name: 'oauth-keeper proxy', url: `${keeper.url}/api/stream?bytes=${bytes}`, headers: { cookie: keeper.cookie }, pid: keeper.pid },
    ];
    const stream = new Map(targets.map((t) => [t.name, { mibs: [], rssGrowth: [], peak: [], cpu: [] }]));
    for (let round = 0; round < mode.streamRounds; round += 1) {
      for (const t of rotate(targets, round)) {
        let sampledPeak = 0;
        let sampler;
        let before = null;
        if (t.pid) {
          before = memoryKiB(t.pid).rss;
          resetPeak(t.pid);
          sampler = setInterval(() => {
            try {
              sampledPeak = Math.max(sampledPeak, memoryKiB(t.pid).rss);
            } catch {
              clearInterval(sampler); // the server is gone; the transfer below fails and says so
            }
          }, 20);
        }
        const app = apps.find((a) => a.pid === t.pid);
        const c0 = app ? app.cpu() : 0;
        const t0 = performance.now();
        const res = await get(t.url, { headers: t.headers, discard: true }).catch((error) => ({ status: error.code ?? error.message, bytes: 0 }));
        clearInterval(sampler);
        const seconds = (performance.now() - t0) / 1000;
        const c1 = app ? app.cpu() : 0;
        const s = stream.get(t.name);
        if (res.status !== 200 || res.bytes !== bytes) {
          const exited = app && app.proc.child.exitCode !== null ? ` (the server exited: ${app.proc.child.exitCode ?? app.proc.child.signalCode})` : '';
          throw new Error(`${t.name}: the stream answered ${res.status} with ${res.bytes} of ${bytes} bytes${exited}`);
        }
        s.mibs.push(bytes / 1048576 / seconds);
        if (t.pid) {
          const peak = Math.max(memoryKiB(t.pid).peak, sampledPeak);
          s.peak.push(peak / 1024);
          s.rssGrowth.push((peak - before) / 1024);
          s.cpu.push((c1 - c0) / 1e6 / (bytes / 1073741824));
        }
        log(`  stream round ${round + 1}/${mode.streamRounds} ${t.name.padEnd(28)} ${fixed(bytes / 1048576 / seconds, 0)} MiB/s`);
      }
    }
    const hs = stream.get('http-proxy-middleware 3');
    const ks = stream.get('oauth-keeper proxy');
    const streamRatios = ks.mibs.map((v, i) => v / hs.mibs[i]);
    result.stream = { mibs: [median(hs.mibs), median(ks.mibs)], ratio: streamRatios, rss: [median(hs.rssGrowth), median(ks.rssGrowth)], peak: [median(hs.peak), median(ks.peak)], cpu: [median(hs.cpu), median(ks.cpu)], ceiling: median(stream.get('upstream direct (ceiling)').mibs) };
    const span = (v) => {
      const [lo, hi] = spread(v);
      return `${fixed(median(v), 0)} (${fixed(lo, 0)}–${fixed(hi, 0)})`;
    };
    result.streamMarkdown = [
      `${int(bytes / 1048576)} MiB per transfer, ${mode.streamRounds} interleaved rounds, one connection, the client (node:http) discarding what it reads. Peak RSS is the server's VmHWM (reset through /proc/<pid>/clear_refs before each transfer, and sampled every 20 ms as a fallback); growth is peak minus RSS before the transfer.`,
      '',
      table(
        ['path', 'MiB/s', 'server CPU s per GiB', 'peak RSS MiB', 'RSS growth MiB'],
        targets.map((t) => {
          const s = stream.get(t.name);
          return [t.name, span(s.mibs), t.pid ? fixed(median(s.cpu), 2) : '', t.pid ? fixed(median(s.peak), 0) : '', t.pid ? fixed(median(s.rssGrowth), 1) : ''];
        }),
      ),
      '',
      `Ratio oauth-keeper ÷ http-proxy-middleware, MiB/s: ${ratioText(streamRatios)}.`,
    ].join('\n');
    return result;
  } finally {
    await stopAll([...apps, sandbox, upstream]);
  }
}
