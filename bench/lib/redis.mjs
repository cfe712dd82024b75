// A private redis-server per server under test: `--port <free> --save ""`, never the machine's 6379.
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { freePort, placement, spawnProgram } from './proc.mjs';

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startRedis() {
  const port = await freePort();
  const child = spawnProgram('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
    core: placement.loadCore,
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  for (let i = 0; !(await canConnect(port)); i += 1) {
    if (i > 200 || child.exitCode !== null) throw new Error(`redis-server on ${port} did not start`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  await admin.ping();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    admin,
    pid: child.pid,
    /** calls per command since start, our own INFO/EVAL-free counters: { get: 12, expire: 6, ... } */
    async commandStats() {
      const text = await admin.info('commandstats');
      const out = {};
      for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
      return out;
    },
    async usedMemory() {
      const text = await admin.info('memory');
      return Number(/^used_memory:(\d+)/m.exec(text)[1]);
    },
    async stop() {
      admin.disconnect();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Per-command delta between two commandStats() snapshots: the parent issues no command
 * during a measured round except the INFO that takes the snapshot, which is left out.
 */
export function statsDelta(before, after) {
  const out = {};
  for (const [name, calls] of Object.entries(after)) {
    const d = calls - (before[name] ?? 0);
    if (name === 'info') continue;
    if (d > 0) out[name] = d;
  }
  return out;
}
