import type { KeyObject } from 'node:crypto';
import { CnblogsStrategy, type CnblogsOptions } from '../../src/providers/cnblogs/index';
import { SopStrategy, type SopOptions } from '../../src/providers/sop/index';
import { startSopSandbox, type RunningSopSandbox } from '../../src/sandbox/index';

/**
 * Strategies of the built-in providers, configured as their sandboxes expect (the client
 * the sandbox knows, the callback the test app mounts).
 */

/** A CnblogsStrategy for the cnblogs sandbox at `issuer`; its API under the issuer unless `options` say otherwise. */
/**
 * A cnblogs strategy against a sandbox. Unless `responseType` is given, the code flow in the
 * query string, which tests can drive without a browser; `cnblogsDefaultStrategy` keeps the
 * package's default (the documented hybrid flow, answered in the fragment).
 */
export function cnblogsSandboxStrategy(issuer: string, options: Partial<CnblogsOptions> = {}): CnblogsStrategy {
  return cnblogsDefaultStrategy(issuer, { responseType: 'code', ...options });
}

export function cnblogsDefaultStrategy(issuer: string, options: Partial<CnblogsOptions> = {}): CnblogsStrategy {
  return new CnblogsStrategy({
    clientID: 'sandbox-client',
    clientSecret: 'sandbox-secret',
    callbackURL: '/auth/cnblogs/callback',
    issuer,
    apiURL: `${issuer}/api`,
    ...options,
  });
}

export interface SopAppKeys {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

/** The sop sandbox knowing one app, `app-1`, which signs with `appKeys`. */
export function startSopSandboxForApp(appKeys: SopAppKeys): Promise<RunningSopSandbox> {
  return startSopSandbox({ autoApprove: true, apps: [{ appId: 'app-1', publicKey: appKeys.publicKey }] });
}

/** The options of `app-1` against `sandbox`; the gateway is the sandbox's unless `gatewayURL` is given. */
export function sopSandboxOptions(sandbox: RunningSopSandbox, appKeys: SopAppKeys, gatewayURL = `${sandbox.url}/`): SopOptions {
  return {
    clientID: 'app-1',
    callbackURL: '/auth/sop/callback',
    authURL: sandbox.url,
    gatewayURL,
    privateKey: appKeys.privateKey,
    platformPublicKey: sandbox.platformPublicKey,
  };
}

/** The SopStrategy of `app-1` against `sandbox` (see {@link sopSandboxOptions}). */
export function sopSandboxStrategy(sandbox: RunningSopSandbox, appKeys: SopAppKeys, gatewayURL = `${sandbox.url}/`): SopStrategy {
  return new SopStrategy(sopSandboxOptions(sandbox, appKeys, gatewayURL));
}

/** SopOptions against made-up deployment URLs, for unit tests that never reach a gateway. */
export function sopOfflineOptions(privateKey: SopOptions['privateKey'], platformPublicKey: SopOptions['platformPublicKey'], extra: Partial<SopOptions> = {}): SopOptions {
  return {
    clientID: '2019032617262200001',
    callbackURL: '/auth/sop/callback',
    authURL: 'https://openauth.example.com',
    gatewayURL: 'https://open.example.com/',
    privateKey,
    platformPublicKey,
    ...extra,
  };
}
