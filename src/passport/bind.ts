import type { ProviderDefinition, ProviderOptions, Profile } from '../provider/types.js';
import type { StrategyOptions } from './options.js';
import { OAuthKeeperStrategy } from './strategy.js';
import type {
  AnyVerifyFunction,
  AnyVerifyFunctionWithRequest,
  NoRequest,
  OAuth2VerifyFunction,
  OAuth2VerifyFunctionWithParams,
  OAuth2VerifyFunctionWithRequest,
  OAuth2VerifyFunctionWithRequestAndParams,
  VerifyFunction,
  VerifyFunctionWithRequest,
  WithRequest,
} from './verify.js';

/**
 * The constructor of a strategy bound to one provider — `new DiStrategy(options, verify?)`
 * — with each verify shape typed, as the generic strategy's own constructor is.
 */
export interface BoundStrategy<O extends ProviderOptions> {
  new <User = Profile>(options: O & StrategyOptions & NoRequest, verify?: VerifyFunction<User>): OAuthKeeperStrategy<O, User>;
  new <User = Profile>(options: O & StrategyOptions & NoRequest, verify: OAuth2VerifyFunction<User>): OAuthKeeperStrategy<O, User>;
  new <User = Profile>(options: O & StrategyOptions & NoRequest, verify: OAuth2VerifyFunctionWithParams<User>): OAuthKeeperStrategy<O, User>;
  new <User = Profile>(options: O & StrategyOptions & WithRequest, verify: VerifyFunctionWithRequest<User>): OAuthKeeperStrategy<O, User>;
  new <User = Profile>(options: O & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequest<User>): OAuthKeeperStrategy<O, User>;
  new <User = Profile>(options: O & StrategyOptions & WithRequest, verify: OAuth2VerifyFunctionWithRequestAndParams<User>): OAuthKeeperStrategy<O, User>;
}

/**
 * A strategy class of its own for one provider (`DiStrategy`, `SopStrategy`, ...): a
 * subclass of {@link OAuthKeeperStrategy} that only fills in the definition, made fresh
 * per instance by `definition()` when it holds caches of its own.
 */
export function bindProvider<O extends ProviderOptions>(className: string, definition: () => ProviderDefinition<O>): BoundStrategy<O> {
  const Bound = class extends OAuthKeeperStrategy<O, unknown> {
    constructor(options: O & StrategyOptions & { passReqToCallback?: boolean }, verify?: AnyVerifyFunction<unknown> | AnyVerifyFunctionWithRequest<unknown>) {
      super(definition(), options, verify);
    }
  };
  Object.defineProperty(Bound, 'name', { value: className });
  return Bound as unknown as BoundStrategy<O>;
}
