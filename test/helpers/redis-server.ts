import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { startRedisServerOn } from './redis-restart';

/** A free loopback port, chosen by the OS. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RedisProcess {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts a private redis-server (never the machine's shared one) and waits until it answers PING. */
export async function startRedisServer(extraArgs: string[] = []): Promise<RedisProcess> {
  return startRedisServerOn(await freePort(), extraArgs);
}
