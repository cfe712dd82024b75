import type { RedisProcess } from './redis-server';

export default async function globalTeardown(): Promise<void> {
  const redis = (globalThis as Record<string, unknown>)['__oauthKeeperRedis'] as RedisProcess | undefined;
  await redis?.stop();
}
