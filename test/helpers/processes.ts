import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './redis-server';

/** The repository's root, where `npm start` and the example app run. */
export const repoRoot = join(__dirname, '..', '..');

export interface SpawnUntilOptions {
  /** The child's whole environment besides PATH (which it inherits from the tests). */
  env?: Record<string, string>;
  /** Resolves once the output so far (stdout and stderr) matches, checked as stdout arrives. */
  ready: RegExp;
  /** Default: the repository's root. */
  cwd?: string;
  /** Starts the child in a process group of its own (to stop the whole group later). */
  detached?: boolean;
  /** Names the child in the error if it exits before it is ready; default: the command. */
  name?: string;
  /** Called with the child as soon as it is spawned, before it is ready (to stop it even if it never gets there). */
  onSpawn?: (child: ChildProcess) => void;
}

export interface Spawned {
  child: ChildProcess;
  /** All the child has written so far, stdout and stderr. */
  output: () => string;
  /** The match of `ready`. */
  match: RegExpExecArray;
}

/** Spawns `command` and waits until its output matches `ready`; rejects, with the output, if it exits first. */
export function spawnUntil(command: string, args: string[], options: SpawnUntilOptions): Promise<Spawned> {
  const child = spawn(command, args, {
    cwd: options.cwd ?? repoRoot,
    env: { PATH: process.env['PATH'] ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.detached ? { detached: true } : {}),
  });
  options.onSpawn?.(child);
  let output = '';
  child.stderr!.on('data', (d) => (output += String(d)));
  return new Promise((resolve, reject) => {
    let match: RegExpExecArray | null = null;
    child.stdout!.on('data', (d) => {
      output += String(d);
      if (match) return;
      match = options.ready.exec(output);
      if (match) resolve({ child, output: () => output, match });
    });
    child.once('exit', (code) => reject(new Error(`${options.name ?? command} exited with ${code}:\n${output}`)));
  });
}

export interface ExampleApp extends Spawned {
  port: number;
}

/** Starts example-app/start.mjs on a free port, configured by `env`, and waits until it listens. */
export async function startExampleApp(env: Record<string, string> = {}): Promise<ExampleApp> {
  // A port found free can be taken before the app binds it (another process's outgoing
  // connection draws from the same range): the app then says so and exits; take another.
  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    try {
      const app = await spawnUntil(process.execPath, [join(repoRoot, 'example-app/start.mjs')], {
        env: { PORT: String(port), ...env },
        ready: /listening on/,
        name: 'example app',
      });
      return { ...app, port };
    } catch (error) {
      if (attempt >= 5 || !/is already in use/.test(String((error as Error).message))) throw error;
    }
  }
}
