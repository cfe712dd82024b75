import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { RedisProcess } from './redis-server';
import { until } from './until';

/**
 * Outage tooling for a private redis-server (never the machine's shared one): arguments
 * that make its data survive a SIGKILL, a restart on the same port and directory, and
 * pause / kill helpers that wait on observable state instead of sleeping.
 */

/** Extra arguments for `startRedisServer`: every write is fsynced to an AOF in `dir` before it is answered. */
export function durableRedisArgs(dir: string): string[] {
  return ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir];
}

/** The process state letter from /proc (`T` = stopped, `S`/`R` = running), or undefined once it is gone. */
export function processState(pid: number): string | undefined {
  try {
    // /proc/<pid>/stat is "pid (comm) state ..."; comm may hold spaces, so read after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** SIGSTOP, then waits until the kernel reports the process stopped. */
export async function pauseProcess(child: ChildProcess): Promise<void> {
  child.kill('SIGSTOP');
  await until(() => processState(child.pid!) === 'T', `redis-server ${child.pid} to be stopped`);
}

/** SIGCONT, then waits until the kernel reports the process running again. */
export async function resumeProcess(child: ChildProcess): Promise<void> {
  child.kill('SIGCONT');
  await until(() => {
    const state = processState(child.pid!);
    return state !== 'T' && state !== 't';
  }, `redis-server ${child.pid} to run again`);
}

/** SIGKILL (no shutdown, no final save), resolved once the process has exited. */
export function killProcess(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/**
 * Whether a redis-server on `port` answers PING now (a LOADING error counts as not yet).
 * A raw socket, not an ioredis client: disconnecting a client whose connect failed leaves
 * a 2 s timer of ioredis's running, which keeps jest from exiting.
 */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('close', () => done(false));
  });
}

/**
 * Starts a private redis-server on `port` with `extraArgs` and waits until it answers PING:
 * on a `freePort()`, or again on the port of a killed one (give it the same `durableRedisArgs(dir)`
 * to find its data). `startRedisServer` is this on a free port.
 */
export async function startRedisServerOn(port: number, extraArgs: string[]): Promise<RedisProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs],
    { stdio: 'ignore' },
  );
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `redis-server on port ${port} exited (code ${code}, signal ${signal}) before answering PING; is the port taken?`));
  await until(async () => {
    if (exited) throw new Error(exited);
    return answersPing(port);
  }, `the restarted redis-server on port ${port} to answer PING`);
  return {
    port,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
