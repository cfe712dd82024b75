import { configurationError } from '../errors.js';
import { unknownOptions } from '../lib/option-names.js';
import type { ApiClient } from '../lib/api/client.js';
import { ApiTransport } from '../lib/api/transport.js';
import type { KeeperApiOptions } from '../lib/api/types.js';
import { RefreshCoordinator, type RefreshOptions } from '../lib/refresh.js';
import { attachTelemetry, telemetryProblem, type TelemetryOption } from '../lib/telemetry.js';
import type { TokenStore } from '../store/token-store.js';
import type { AnyStrategy, KeeperLogger } from './context.js';
import type { OwnerParts } from './owner-tokens.js';
import { apiClients } from './fetch.js';
import { OwnerTokens } from './owner-tokens.js';

export interface TokenKeeperOptions {
  /** The provider strategies (the same ones the web app gives `oauthKeeper`; their names key the store). */
  strategies: ReadonlyArray<AnyStrategy>;
  /** The token store shared with the web app: the same backend, `encryptionKeys` and `prefix`. */
  store: TokenStore;
  refresh?: RefreshOptions;
  logger?: KeeperLogger;
  /**
   * Options of the API calls made through `forOwner(owner).fetch` (`timeoutMs`, buffer
   * limits), and `dispatcher`: the undici Dispatcher of every API call of the keeper.
   */
  api?: KeeperApiOptions;
  /**
   * Metrics (and spans) of logins, refreshes, lock waits, API calls and store errors
   * through OpenTelemetry: `{ meter: metrics.getMeter('oauth-keeper'), tracer? }`, or `true`
   * for `@opentelemetry/api`'s global meter and tracer (loaded only then). Off by default.
   */
  telemetry?: TelemetryOption;
}

const EVENTS = ['refresh:start', 'refresh:success', 'refresh:failure', 'refresh:retry', 'lock:wait', 'reauthorization:required'] as const;

/**
 * The registry of strategies, the token store and the refresh coordinator, and what code
 * without a request uses of them: `forOwner(owner)`. A worker builds one with
 * `tokenKeeper({ strategies, store })` — no Express, session or Passport needed; the web
 * app's {@link Keeper} is one too.
 */
export class TokenKeeper {
  /** The option names this keeper reads; any other key is refused, naming the nearest one. */
  static readonly optionNames: readonly string[] = Object.freeze(['strategies', 'store', 'refresh', 'logger', 'api', 'telemetry']);

  readonly store: TokenStore;
  readonly refresher: RefreshCoordinator;
  protected readonly logger: KeeperLogger;
  /** @internal The connection pool of the keeper's API calls (or the app's `api.dispatcher`). */
  readonly apiTransport: ApiTransport;
  readonly #strategies = new Map<string, AnyStrategy>();
  readonly #parts: OwnerParts;

  constructor(options: TokenKeeperOptions) {
    if (!options || !Array.isArray(options.strategies) || options.strategies.length === 0) {
      throw configurationError('oauthKeeper needs strategies: [new DiStrategy(...), ...] with at least one strategy.');
    }
    if (!options.store || typeof options.store.get !== 'function') {
      throw configurationError('oauthKeeper needs store: new TokenStore({ backend, encryptionKeys }).');
    }
    // A typo (onErorr) is refused rather than silently doing nothing.
    const unknown = unknownOptions('keeper', options, (new.target as typeof TokenKeeper).optionNames);
    if (unknown.length > 0) throw configurationError(`${unknown.join(' ')} Valid options: ${(new.target as typeof TokenKeeper).optionNames.join(', ')}.`);
    this.store = options.store;
    this.apiTransport = new ApiTransport(options.api?.dispatcher);
    this.refresher = new RefreshCoordinator(options.store, options.refresh);
    const logger = options.logger ?? {};
    this.logger = logger;
    const problem = telemetryProblem(options.telemetry);
    if (problem) throw configurationError(problem);
    attachTelemetry(options.telemetry, this.refresher.events, this.store.events, (message, fields) => logger.warn?.(message, fields));
    const debug = logger.debug?.bind(logger);
    if (debug) {
      // Refresh events carry no token; they go to the debug log as they are.
      for (const name of EVENTS) this.refresher.events.on(name, (event: object) => debug(name, { ...event }));
    }
    for (const strategy of options.strategies) {
      if (this.#strategies.has(strategy.name)) {
        throw configurationError(`Two strategies are named "${strategy.name}"; give one of them another name option.`);
      }
      this.#strategies.set(strategy.name, strategy);
      // Said once, at start-up: what the app should know about a strategy's configuration.
      for (const warning of strategy.provider.startupWarnings?.(strategy.options) ?? []) logger.warn?.(warning, { provider: strategy.name });
    }
    const client = apiClients(this, options.api);
    const providers = Object.freeze([...this.#strategies.keys()]);
    this.#parts = Object.freeze({
      store: this.store,
      refresher: this.refresher,
      providers,
      logger,
      strategy: (provider: string) => this.strategy(provider),
      client: (provider: string): ApiClient => client(provider),
    });
  }

  /**
   * Events: `refresh:start`, `refresh:success`, `refresh:failure`, `refresh:retry`,
   * `lock:wait`, `reauthorization:required`. No event carries a token.
   */
  get events(): RefreshCoordinator['events'] {
    return this.refresher.events;
  }

  get providers(): string[] {
    return [...this.#strategies.keys()];
  }

  strategy(provider: string): AnyStrategy {
    const strategy = this.#strategies.get(provider);
    if (!strategy) {
      throw configurationError(`No strategy named "${provider}" was given to oauthKeeper; known: ${this.providers.join(', ')}.`);
    }
    return strategy;
  }

  /**
   * Closes the keeper's own connections to provider APIs once the calls on them are done
   * (a later call opens new ones). They never keep the process from exiting; this is for
   * a tidy shutdown. A dispatcher given as `api.dispatcher` is the app's to close.
   */
  close(): Promise<void> {
    return this.apiTransport.close();
  }

  /**
   * The tokens of an owner the app chose (the keeper's `owner` option at login: typically
   * your user id), for code that has no request: `token(provider)`, `fetch(provider, path,
   * init)`, `connections()`, `disconnect(provider)`. Throws CONFIGURATION_INVALID for a key
   * that is no owner key (1–128 characters of `A–Z a–z 0–9 . _ - @ + = ~ :`).
   */
  forOwner(owner: string): OwnerTokens {
    return new OwnerTokens(this.#parts, owner);
  }
}

/** A keeper for workers, queue consumers and scripts: `tokenKeeper({ strategies, store })`, then `forOwner(owner)`. */
export function tokenKeeper(options: TokenKeeperOptions): TokenKeeper {
  return new TokenKeeper(options);
}
