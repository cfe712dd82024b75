import { startRedisServer } from './redis-server';

export default async function globalSetup(): Promise<void> {
  const redis = await startRedisServer();
  process.env['OAUTH_KEEPER_TEST_REDIS_PORT'] = String(redis.port);
  (globalThis as Record<string, unknown>)['__oauthKeeperRedis'] = redis;
}
