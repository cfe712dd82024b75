import { SandboxEngine, type Fault } from '../engine.js';
import { listen } from '../server.js';
import { api, userinfo } from './api.js';
import { authorize, discovery, revocation, tokenEndpoint } from './endpoints.js';
import { jwks, newSigningKey } from './id-token.js';
import {
  allowedResponseTypes,
  DEFAULT_USERS,
  type CnblogsSandbox,
  type CnblogsSandboxFaultTarget,
  type CnblogsSandboxOptions,
  type CnblogsSandboxState,
  type IdTokenTamper,
} from './options.js';

export type {
  CnblogsIssued,
  CnblogsSandbox,
  CnblogsSandboxClient,
  CnblogsSandboxCounters,
  CnblogsSandboxFaultTarget,
  CnblogsSandboxOptions,
  CnblogsSandboxResponseType,
  CnblogsSandboxUser,
  IdTokenTamper,
} from './options.js';

/**
 * A sandbox of 博客园's IdentityServer and OpenAPI, on one port:
 * `/.well-known/openid-configuration` (+ `/jwks`), `/connect/authorize` (login page;
 * `code` with PKCE S256, hybrid `code id_token` in the fragment or as a form_post page),
 * `/connect/token` (code: 10 min, single use; refresh only with `offline_access`;
 * client_credentials), `/connect/userinfo`, `/connect/revocation` (RFC 7009), and the
 * Bearer-protected API `/api/users` (PascalCase), `/api/users/v2` (camelCase) and
 * `/api/blogs/{blogApp}/posts`.
 */
export async function startCnblogsSandbox(options: CnblogsSandboxOptions = {}): Promise<CnblogsSandbox> {
  for (const client of options.clients ?? []) allowedResponseTypes(client);
  const engine = new SandboxEngine({
    ...options,
    accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 86_400,
    users: options.users ?? DEFAULT_USERS.map((u) => ({ ...u })),
  });
  const knobs = {
    idTokenTamper: options.idTokenTamper ?? null,
    idTokenTtlSeconds: options.idTokenTtlSeconds ?? 300,
    mutateTokenAnswer: options.mutateTokenAnswer ?? null,
  };
  const state: CnblogsSandboxState = {
    engine,
    title: options.title ?? '博客园 (cnblogs) sandbox',
    unauthorizedClient: options.unauthorizedClient ?? 'error_page',
    knobs,
    oidcCounters: { discovery: 0, jwks: 0 },
    issued: [],
    oidcFaults: new Map<CnblogsSandboxFaultTarget, Fault[]>(),
    keys: [await newSigningKey()],
    issuer: '',
  };

  const running = await listen(
    engine,
    (req) => {
      const path = req.url.pathname;
      if (path === '/.well-known/openid-configuration' && req.method === 'GET') return discovery(state);
      if (path === '/.well-known/openid-configuration/jwks' && req.method === 'GET') return jwks(state);
      if (path === '/connect/authorize' && (req.method === 'GET' || req.method === 'POST')) return authorize(state, req);
      if (path === '/connect/token') return tokenEndpoint(state, req);
      if (path === '/connect/userinfo' && (req.method === 'GET' || req.method === 'POST')) return userinfo(engine, req);
      if (path === '/connect/revocation' && req.method === 'POST') return revocation(state, req);
      if (path.startsWith('/api/')) return api(engine, req);
      return undefined;
    },
    options,
  );
  state.issuer = running.url;

  return {
    url: running.url,
    port: running.port,
    engine,
    close: () => running.close(),
    issuer: state.issuer,
    get signingKeyId() {
      return state.keys[state.keys.length - 1]!.kid;
    },
    get idTokenTamper() {
      return knobs.idTokenTamper;
    },
    set idTokenTamper(value: IdTokenTamper | null) {
      knobs.idTokenTamper = value;
    },
    get idTokenTtlSeconds() {
      return knobs.idTokenTtlSeconds;
    },
    set idTokenTtlSeconds(value: number) {
      knobs.idTokenTtlSeconds = value;
    },
    get mutateTokenAnswer() {
      return knobs.mutateTokenAnswer;
    },
    set mutateTokenAnswer(value: ((body: Record<string, unknown>) => unknown) | null) {
      knobs.mutateTokenAnswer = value;
    },
    oidcCounters: state.oidcCounters,
    issued: state.issued,
    async rotateSigningKey() {
      const next = await newSigningKey();
      state.keys = [...state.keys.slice(-1), next];
      return next.kid;
    },
    injectOidcFault(target: CnblogsSandboxFaultTarget, fault: Fault) {
      const list = state.oidcFaults.get(target) ?? [];
      list.push({ ...fault, times: fault.times ?? 1 });
      state.oidcFaults.set(target, list);
    },
  };
}
