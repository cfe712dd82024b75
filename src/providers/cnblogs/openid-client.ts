/**
 * openid-client, loaded on first use. It ships as an ES module only: Node (>= 20.19) loads it
 * from the CommonJS build with require(esm), but a test runner with its own module system
 * (Jest) may not — loaded lazily, it costs nothing to an app that never uses cnblogs.
 */
import type * as OpenidClient from 'openid-client';

export type Oidc = typeof OpenidClient;

let loading: Promise<Oidc> | undefined;

/** @internal */
export function openidClient(): Promise<Oidc> {
  loading ??= import('openid-client');
  return loading;
}
