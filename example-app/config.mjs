// Reads the example app's configuration from the environment. Only the example app
// reads process.env; the library takes everything as options.
import { existsSync, readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** PEM text, or a path to a file holding it. */
function pem(value) {
  if (value === undefined || value === '') return undefined;
  if (value.includes('-----BEGIN')) return value.replace(/\\n/g, '\n');
  if (existsSync(value)) return readFileSync(value, 'utf8');
  throw new Error(`Expected PEM text or a readable file path, got "${value.slice(0, 40)}"`);
}

export function readConfig(env = process.env) {
  const notices = [];
  const port = Number(env.PORT ?? 3000);
  let tokenKeys = (env.TOKEN_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  if (tokenKeys.length === 0) {
    tokenKeys = [randomBytes(32).toString('base64')];
    notices.push('TOKEN_KEYS is not set: using a random key for this run (stored tokens do not survive a restart).');
  }
  let sessionSecret = env.SESSION_SECRET;
  if (!sessionSecret) {
    sessionSecret = randomBytes(24).toString('hex');
    notices.push('SESSION_SECRET is not set: using a random secret for this run.');
  }
  const jobIntervalSeconds = Number(env.JOB_INTERVAL_SECONDS || 5);
  if (!(jobIntervalSeconds > 0)) throw new Error(`JOB_INTERVAL_SECONDS must be a positive number of seconds, not "${env.JOB_INTERVAL_SECONDS}"`);
  return {
    port,
    jobIntervalSeconds,
    baseURL: env.BASE_URL,
    // Express's "trust proxy": a number of hops, true, or a list such as "loopback, 10.0.0.0/8".
    trustProxy: env.TRUST_PROXY === undefined || env.TRUST_PROXY === '' ? undefined : /^\d+$/.test(env.TRUST_PROXY) ? Number(env.TRUST_PROXY) : env.TRUST_PROXY === 'true' ? true : env.TRUST_PROXY,
    sessionSecret,
    tokenKeys,
    redisURL: env.REDIS_URL || undefined,
    redisClusterNodes: env.REDIS_CLUSTER_NODES
      ? env.REDIS_CLUSTER_NODES.split(',').map((hp) => {
          const [host, p] = hp.trim().split(':');
          return { host, port: Number(p) };
        })
      : undefined,
    di: {
      clientID: env.DI_CLIENT_ID || undefined,
      clientSecret: env.DI_CLIENT_SECRET,
      baseURL: env.DI_BASE_URL || undefined,
      scope: env.DI_SCOPE || undefined,
    },
    cnblogs: {
      clientID: env.CNBLOGS_CLIENT_ID || undefined,
      clientSecret: env.CNBLOGS_CLIENT_SECRET,
      issuer: env.CNBLOGS_ISSUER || undefined,
      apiURL: env.CNBLOGS_API_URL || undefined,
      scope: env.CNBLOGS_SCOPE || undefined,
      responseType: env.CNBLOGS_RESPONSE_TYPE || undefined,
      responseMode: env.CNBLOGS_RESPONSE_MODE || undefined,
    },
    sop: {
      clientID: env.SOP_APP_ID || undefined,
      authURL: env.SOP_AUTH_URL || undefined,
      gatewayURL: env.SOP_GATEWAY_URL || undefined,
      privateKey: pem(env.SOP_PRIVATE_KEY),
      platformPublicKey: pem(env.SOP_PLATFORM_PUBLIC_KEY),
    },
    notices,
  };
}
