// Child processes of the benchmark: spawning (pinned to a core with taskset when it can),
// CPU time and RSS read from /proc, free ports, and killing every child on the way out.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';

const children = new Set();

function killAll(signal = 'SIGTERM') {
  for (const child of children) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

let installed = false;
/** Kill every child on exit, on SIGINT/SIGTERM and on a crash; call once from an entry script. */
export function installCleanup() {
  if (installed) return;
  installed = true;
  process.on('exit', () => killAll('SIGKILL'));
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping ${children.size} child process(es)`);
      killAll('SIGKILL');
      process.exit(130);
    });
  }
  process.on('uncaughtException', (error) => {
    console.error(error);
    killAll('SIGKILL');
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    console.error(error);
    killAll('SIGKILL');
    process.exit(1);
  });
}

function hasTaskset() {
  try {
    execFileSync('taskset', ['-cp', String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const tasksetOk = cores >= 2 && process.platform === 'linux' && hasTaskset();

/**
 * Where things run. With taskset and two cores or more: the process under measurement alone on
 * the last core; the load generator, Redis, sandbox and upstream on core 0.
 */
export const placement = tasksetOk
  ? { pinned: true, loadCore: 0, serverCore: cores - 1, cores, note: `taskset: servers on core ${cores - 1}, load generator, Redis, sandbox and upstream on core 0` }
  : { pinned: false, loadCore: null, serverCore: null, cores, note: `not pinned (${cores < 2 ? 'one core' : 'taskset unavailable'})` };

/** Pin this process (the load generator) to the load core. */
export function pinSelf() {
  if (!placement.pinned) return;
  try {
    execFileSync('taskset', ['-cp', String(placement.loadCore), String(process.pid)], { stdio: 'ignore' });
  } catch {
    // keep going unpinned
  }
}

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in microseconds. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

/** Busy time of one core (all but idle and iowait), in microseconds, from /proc/stat. */
export function coreBusyMicros(core) {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${core} `));
  if (!line) return NaN;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return ((total - v[3] - v[4]) * 1e6) / CLK_TCK;
}

/** { rss, peak } in KiB from /proc/<pid>/status. */
export function memoryKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const read = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: read('VmRSS'), peak: read('VmHWM') };
}

/** Reset a process's peak RSS (VmHWM) to its current RSS; false where the kernel does not allow it. */
export function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pinned(core, command, args) {
  if (placement.pinned && core !== null && core !== undefined) return ['taskset', ['-c', String(core), command, ...args]];
  return [command, args];
}

/** Any program, pinned; killed when the benchmark ends. */
export function spawnProgram(command, args, { core = placement.loadCore, stdio = 'ignore' } = {}) {
  const [cmd, argv] = pinned(core, command, args);
  const child = spawn(cmd, argv, { stdio });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

/**
 * A node script with an IPC channel; resolves with the child and its first message
 * (`{ ready: true, ... }`). taskset execs node, so child.pid is node's own pid.
 */
export function spawnNode(script, config, { core = placement.serverCore, execArgv = [] } = {}) {
  const [cmd, argv] = pinned(core, process.execPath, [...execArgv, script, JSON.stringify(config)]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const pending = new Map();
  let seq = 0;
  child.on('message', (msg) => {
    if (msg && msg.reply !== undefined && pending.has(msg.reply)) {
      pending.get(msg.reply)(msg.value);
      pending.delete(msg.reply);
    }
  });
  let stopping = false;
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => {
    children.delete(child);
    if (!stopping) console.error(`[bench] ${config.kind ?? script} (pid ${child.pid}) exited unexpectedly: ${code ?? signal}`);
  });
  const ready = new Promise((resolve, reject) => {
    const onMessage = (msg) => {
      if (msg && msg.ready) {
        child.off('message', onMessage);
        resolve(msg);
      } else if (msg && msg.failed) {
        reject(new Error(`${script}: ${msg.failed}`));
      }
    };
    child.on('message', onMessage);
    exited.then(({ code, signal }) => reject(new Error(`${script} ${JSON.stringify(config.kind ?? '')} exited (${code ?? signal}) before it was ready`)));
  });
  return ready.then((info) => ({
    child,
    pid: child.pid,
    info,
    /** Ask the child something; it answers { reply: id, value }. */
    ask(command, args = {}) {
      const id = ++seq;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.send({ ask: id, command, ...args });
      });
    },
    async stop() {
      stopping = true;
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  }));
}

/** Stop a list of things that have stop(), ignoring failures. */
export async function stopAll(list) {
  await Promise.all(list.filter(Boolean).map((x) => Promise.resolve(x.stop()).catch(() => undefined)));
}
