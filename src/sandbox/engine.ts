import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A sandbox user who can log in on the sandbox's login page. */
export interface SandboxUser {
  username: string;
  password: string;
  id: string;
  name: string;
}

export interface SandboxClient {
  clientId: string;
  clientSecret: string;
}

/** Knobs every sandbox shares; all can be changed while it runs (`sandbox.settings.x = ...`). */
export interface SandboxSettings {
  /** Access token lifetime in seconds. Default 3600. */
  accessTokenTtlSeconds: number;
  /** Refresh token lifetime in seconds; `null` = never expires. Default 30 days. */
  refreshTokenTtlSeconds: number | null;
  /** Issue a new refresh token on each refresh. Default true. */
  rotateRefreshTokens: boolean;
  /** A reused (already rotated) refresh token is refused and revokes its whole family. Default true. */
  detectRefreshReuse: boolean;
  /** Skip the login page and approve as the first user (handy for HTTP-level tests). Default false. */
  autoApprove: boolean;
  /**
   * How long the token endpoint takes to answer a code exchange, in ms: a number, or
   * `[min, max]` for a delay drawn at random per request, so that concurrent logins
   * really overlap. Default 0.
   */
  codeExchangeDelayMs: number | readonly [number, number];
}

export interface SandboxCounters {
  authorize: number;
  token: number;
  authorizationCode: number;
  refresh: number;
  refreshReuse: number;
  api: number;
  userinfo: number;
  revoke: number;
}

export type FaultTarget = 'token' | 'api' | 'userinfo' | 'revoke';

/** One injected fault: answer with a status, delay, send a broken body or a bad signature. */
export interface Fault {
  status?: number;
  body?: string;
  /** Headers of a `status` answer (`retry-after`, ...). */
  headers?: Record<string, string>;
  delayMs?: number;
  malformed?: boolean;
  badSignature?: boolean;
  /** How many requests it applies to. Default 1. */
  times?: number;
  /** Holds the answer until this promise settles: lets a test decide exactly when a slow answer arrives. */
  until?: Promise<unknown>;
}

export interface Grant {
  clientId: string;
  userId: string;
  scope: string;
  /** Values a protocol wants to keep with the grant (nonce, redirect_uri...). */
  extra: Record<string, string>;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken?: string;
  expiresIn: number;
  refreshExpiresIn: number | null;
  grant: Grant;
}

interface CodeEntry {
  grant: Grant;
  redirectUri: string;
  codeChallenge?: string;
  expiresAt: number;
  used: boolean;
}

interface AccessEntry {
  grant: Grant;
  family: string;
  expiresAt: number;
}

interface RefreshEntry {
  grant: Grant;
  family: string;
  expiresAt: number | null;
  /** Rotated away: using it again is reuse. */
  spent: boolean;
}

export type EngineError = { error: 'invalid_grant' | 'invalid_client' | 'invalid_request'; description: string };

function token(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The authorization server behind every sandbox: codes, access and refresh tokens,
 * rotation with reuse detection, counters and fault injection. Each sandbox wraps it
 * in its provider's wire protocol.
 */
export class SandboxEngine {
  readonly settings: SandboxSettings;
  readonly counters: SandboxCounters = {
    authorize: 0,
    token: 0,
    authorizationCode: 0,
    refresh: 0,
    refreshReuse: 0,
    api: 0,
    userinfo: 0,
    revoke: 0,
  };
  readonly users: SandboxUser[];
  readonly clients: SandboxClient[];
  readonly #codes = new Map<string, CodeEntry>();
  readonly #access = new Map<string, AccessEntry>();
  readonly #refresh = new Map<string, RefreshEntry>();
  readonly #revokedFamilies = new Set<string>();
  readonly #faults = new Map<FaultTarget, Fault[]>();
  #exchangesWaiting = 0;
  #peakExchangesWaiting = 0;

  constructor(options: Partial<SandboxSettings> & { users?: SandboxUser[]; clients?: SandboxClient[] } = {}) {
    this.settings = {
      accessTokenTtlSeconds: options.accessTokenTtlSeconds ?? 3600,
      refreshTokenTtlSeconds: options.refreshTokenTtlSeconds === undefined ? 30 * 24 * 3600 : options.refreshTokenTtlSeconds,
      rotateRefreshTokens: options.rotateRefreshTokens ?? true,
      detectRefreshReuse: options.detectRefreshReuse ?? true,
      autoApprove: options.autoApprove ?? false,
      codeExchangeDelayMs: options.codeExchangeDelayMs ?? 0,
    };
    this.users = options.users ?? [{ username: 'alice', password: 'wonderland', id: '1001', name: 'Alice Sandbox' }];
    this.clients = options.clients ?? [{ clientId: 'sandbox-client', clientSecret: 'sandbox-secret' }];
  }

  /** Queues a fault for the next request(s) to `target`. */
  injectFault(target: FaultTarget, fault: Fault): void {
    const list = this.#faults.get(target) ?? [];
    list.push({ ...fault, times: fault.times ?? 1 });
    this.#faults.set(target, list);
  }

  /** Faults queued for `target` and not yet taken by a request. */
  pendingFaults(target: FaultTarget): number {
    return (this.#faults.get(target) ?? []).reduce((n, f) => n + (f.times ?? 1), 0);
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** Takes the next fault for `target`, if any. */
  takeFault(target: FaultTarget): Fault | undefined {
    const list = this.#faults.get(target);
    const fault = list?.[0];
    if (!list || !fault) return undefined;
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) list.shift();
    return fault;
  }

  /** Waits as `settings.codeExchangeDelayMs` says, before a code exchange is answered. */
  async delayCodeExchange(): Promise<void> {
    const delay = this.settings.codeExchangeDelayMs;
    const ms = typeof delay === 'number' ? delay : delay[0] + Math.random() * (delay[1] - delay[0]);
    this.#exchangesWaiting += 1;
    this.#peakExchangesWaiting = Math.max(this.#peakExchangesWaiting, this.#exchangesWaiting);
    try {
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
    } finally {
      this.#exchangesWaiting -= 1;
    }
  }

  /** The most code exchanges that were waiting for their answer at one time: proof that logins overlapped. */
  get peakConcurrentCodeExchanges(): number {
    return this.#peakExchangesWaiting;
  }

  resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof SandboxCounters>) this.counters[key] = 0;
  }

  findClient(clientId: string | undefined): SandboxClient | undefined {
    return this.clients.find((c) => c.clientId === clientId);
  }

  authenticateClient(clientId: string | undefined, clientSecret: string | undefined): SandboxClient | undefined {
    const client = this.findClient(clientId);
    if (!client || clientSecret === undefined || !safeEqual(client.clientSecret, clientSecret)) return undefined;
    return client;
  }

  login(username: string | undefined, password: string | undefined): SandboxUser | undefined {
    return this.users.find((u) => u.username === username && password !== undefined && safeEqual(u.password, password));
  }

  issueCode(grant: Grant, redirectUri: string, codeChallenge?: string, length = 32): string {
    const code = length <= 8 ? randomBytes(8).toString('base64url').slice(0, length) : randomBytes(length / 2).toString('hex');
    this.#codes.set(code, {
      grant,
      redirectUri,
      expiresAt: Date.now() + 10 * 60_000,
      used: false,
      ...(codeChallenge === undefined ? {} : { codeChallenge }),
    });
    return code;
  }

  /** Redeems a code once. `redirectUri` must match the authorization request's when given. */
  redeemCode(code: string, clientId: string, redirectUri: string | undefined, codeVerifier?: string): Grant | EngineError {
    const entry = this.#codes.get(code);
    if (!entry || entry.used || entry.expiresAt <= Date.now()) {
      return { error: 'invalid_grant', description: 'Invalid authorization code' };
    }
    entry.used = true;
    if (entry.grant.clientId !== clientId) return { error: 'invalid_grant', description: 'code was issued to another client' };
    if (redirectUri !== undefined && redirectUri !== entry.redirectUri) {
      return { error: 'invalid_grant', description: 'redirect_uri does not match' };
    }
    if (entry.codeChallenge !== undefined) {
      if (codeVerifier === undefined) return { error: 'invalid_grant', description: 'code_verifier missing' };
      const challenge = createHash('sha256').update(codeVerifier).digest('base64url');
      if (!safeEqual(challenge, entry.codeChallenge)) return { error: 'invalid_grant', description: 'code_verifier mismatch' };
    }
    return entry.grant;
  }

  issueTokens(grant: Grant, family = token(8), withRefresh = true): IssuedTokens {
    const accessToken = token();
    const expiresIn = this.settings.accessTokenTtlSeconds;
    this.#access.set(accessToken, { grant, family, expiresAt: Date.now() + expiresIn * 1000 });
    const issued: IssuedTokens = { accessToken, expiresIn, refreshExpiresIn: this.settings.refreshTokenTtlSeconds, grant };
    if (withRefresh) {
      const refreshToken = token();
      const ttl = this.settings.refreshTokenTtlSeconds;
      this.#refresh.set(refreshToken, { grant, family, expiresAt: ttl === null ? null : Date.now() + ttl * 1000, spent: false });
      issued.refreshToken = refreshToken;
    }
    return issued;
  }

  /** Refresh grant with rotation; reuse of a rotated token revokes the family (RFC 9700 §4.14.2). */
  refresh(refreshToken: string, clientId: string): IssuedTokens | EngineError {
    const entry = this.#refresh.get(refreshToken);
    if (!entry || this.#revokedFamilies.has(entry.family)) return { error: 'invalid_grant', description: 'Invalid refresh token' };
    if (entry.grant.clientId !== clientId) return { error: 'invalid_grant', description: 'refresh token was issued to another client' };
    if (entry.expiresAt !== null && entry.expiresAt <= Date.now()) return { error: 'invalid_grant', description: 'refresh token expired' };
    if (entry.spent) {
      this.counters.refreshReuse += 1;
      if (this.settings.detectRefreshReuse) {
        this.revokeFamily(entry.family);
        return { error: 'invalid_grant', description: 'refresh token reuse detected; the grant is revoked' };
      }
    }
    if (!this.settings.rotateRefreshTokens) {
      const issued = this.issueTokens(entry.grant, entry.family, false);
      issued.refreshToken = refreshToken;
      return issued;
    }
    entry.spent = true;
    return this.issueTokens(entry.grant, entry.family, true);
  }

  /** The grant behind a live access token, or undefined. */
  verifyAccessToken(accessToken: string | undefined): Grant | undefined {
    if (accessToken === undefined) return undefined;
    const entry = this.#access.get(accessToken);
    if (!entry || entry.expiresAt <= Date.now() || this.#revokedFamilies.has(entry.family)) return undefined;
    return entry.grant;
  }

  /** RFC 7009: revoking either token of a family revokes the family. */
  revoke(tokenValue: string): void {
    const family = this.#access.get(tokenValue)?.family ?? this.#refresh.get(tokenValue)?.family;
    if (family !== undefined) this.revokeFamily(family);
  }

  revokeFamily(family: string): void {
    this.#revokedFamilies.add(family);
  }

  /** Expires every access token now (simulates time passing). */
  expireAccessTokens(): void {
    for (const entry of this.#access.values()) entry.expiresAt = 0;
  }

  userById(id: string): SandboxUser | undefined {
    return this.users.find((u) => u.id === id);
  }
}
