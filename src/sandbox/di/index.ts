import { SandboxEngine } from '../engine.js';
import { listen } from '../server.js';
import { api } from './api.js';
import { authorize, tokenEndpoint } from './endpoints.js';
import type { DiSandbox, DiSandboxOptions, DiSandboxState } from './wire.js';

export type { DiCounters, DiRecordedRequest, DiSandbox, DiSandboxOptions, DiWireSettings } from './wire.js';

/**
 * A sandbox of DI开放平台 speaking its real wire protocol (Spring Security OAuth2 2.x):
 * `/oauth/authorize` (login page, 6-character codes, `response_type=code` or `token`),
 * `/oauth/token` (parameters from the query string or a form body; Spring's errors;
 * rotation with reuse detection; the answer shape and `expires_in` type are knobs)
 * and `/api/*` (credentials as `client_id`, `access_token`, `scope` parameters; business
 * errors in an HTTP 200 `errorCode` envelope; `invalid_token` as HTTP 401).
 */
export async function startDiSandbox(options: DiSandboxOptions = {}): Promise<DiSandbox> {
  const engine = new SandboxEngine(options);
  const state: DiSandboxState = {
    engine,
    title: options.title ?? 'DI开放平台 sandbox',
    scopes: new Set(options.scopes ?? ['read_cn', 'read_ep', 'read_jp', 'read_tw']),
    wire: {
      tokenResponseShape: options.tokenResponseShape ?? 'object',
      expiresInType: options.expiresInType ?? 'number',
      reuseUnexpiredTokens: options.reuseUnexpiredTokens ?? false,
      echoTokensInErrors: options.echoTokensInErrors ?? false,
    },
    counters: {
      tokenParametersInQuery: 0,
      tokenParametersInBody: 0,
      apiCredentialsInQuery: 0,
      apiCredentialsInBody: 0,
      apiCredentialsInHeader: 0,
      apiBusinessErrors: 0,
      apiRefused: 0,
    },
    recorded: {},
    current: new Map(),
  };

  const running = await listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if (path === '/oauth/authorize' && (req.method === 'GET' || req.method === 'POST')) return authorize(state, req);
      if (path === '/oauth/token') return tokenEndpoint(state, req);
      if (path.startsWith('/api/')) return api(state, req);
      return undefined;
    },
    options,
  );

  return {
    url: running.url,
    port: running.port,
    engine,
    close: running.close,
    wire: state.wire,
    diCounters: state.counters,
    get lastApiRequest() {
      return state.recorded.api;
    },
    get lastTokenRequest() {
      return state.recorded.token;
    },
  };
}
