import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { startRedisServer, type RedisProcess } from './redis-server';

export interface RedisCluster {
  nodes: Array<{ host: string; port: number }>;
  client(): Cluster;
  stop(): Promise<void>;
}

/** Starts a private 3-master Redis Cluster on free loopback ports and waits until it serves every slot. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'oauth-keeper-cluster-'));
  const servers: RedisProcess[] = [];
  for (let i = 0; i < masters; i += 1) {
    servers.push(
      await startRedisServer([
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${i}.conf`),
        '--cluster-node-timeout', '5000',
        '--dir', dir,
      ]),
    );
  }
  const nodes = servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
  execFileSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    stdio: 'pipe',
  });
  // Wait until every node agrees the cluster is up.
  const deadline = Date.now() + 30_000;
  for (const node of nodes) {
    for (;;) {
      const info = execFileSync('redis-cli', ['-p', String(node.port), 'cluster', 'info'], { encoding: 'utf8' });
      if (info.includes('cluster_state:ok')) break;
      if (Date.now() > deadline) throw new Error(`cluster node ${node.port} did not reach cluster_state:ok`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const clients: Cluster[] = [];
  return {
    nodes,
    client: () => {
      const client = new Cluster(nodes);
      clients.push(client);
      return client;
    },
    stop: async () => {
      await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
      await Promise.all(servers.map((s) => s.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
