/**
 * `sop` — SOP open-platform app authorization (应用授权): an Alipay-style, self-hosted
 * gateway. Every deployment has its own URLs, so there are no URL defaults.
 *
 * What makes it unlike RFC 6749, all handled in this folder and nowhere else:
 * - the authorization request carries no `state` and no scope: the login transaction
 *   is bound through redirect_uri's own query, and the returned `app_id` is checked
 *   (authorization.ts);
 * - there is no token endpoint and no client secret: code exchange and refresh are an
 *   RSA-signed gateway call (`open.auth.token.app`), and the answer is signed too
 *   (token.ts, gateway.ts, signing.ts, response-node.ts);
 * - failures of the auth service come back inside a `code: "10000"` envelope (token.ts);
 * - gateway refusals name their fix, even unsigned ones, of which only code and sub_code
 *   are read; none of them, nor any unsigned answer, ever costs a stored token (refusal.ts);
 * - negative lifetimes mean "never expires" (token.ts);
 * - business calls are signed gateway calls carrying `app_auth_token`, and the answer
 *   must be verified over the raw text of its response node before it is used (api.ts).
 *
 * This file holds the definition and the strategy; options.ts the options and their checks.
 */
import { defineProvider } from '../../provider/define.js';
import type { Profile } from '../../provider/types.js';
import { bindProvider } from '../../passport/bind.js';
import type { OAuthKeeperStrategy } from '../../passport/strategy.js';
import { sopApi } from './api.js';
import { appToAppAuthURL, authorizationURL, checkCallback, SOP_STATE_PARAMETER } from './authorization.js';
import { SOP_NAME, validateOptions, type SopOptions } from './options.js';
import { requestToken } from './token.js';

export type { SopOptions } from './options.js';
export { chinaTimestamp, signSopParameters, sopSign, sopSignContent, sopVerify, type SopKey, type SopSignType } from './signing.js';
export {
  extractResponseNode,
  responseNodeName,
  verifySopResponse,
  type VerifiedSopResponse,
  type VerifySopResponseOptions,
} from './response-node.js';
export { callSopGateway, sopGatewayParameters } from './gateway.js';
export { readSopTokenNode, SOP_TOKEN_METHOD } from './token.js';
export { SOP_STATE_PARAMETER } from './authorization.js';

/** The `sop` provider definition: data plus the hooks of this folder. */
export const sopProvider = defineProvider<SopOptions>({
  name: SOP_NAME,
  optionNames: ['authURL', 'gatewayURL', 'privateKey', 'platformPublicKey', 'signType'],
  authorizationURL: appToAppAuthURL,
  tokenURL: (options) => options.gatewayURL,
  scope: [],
  pkce: false,
  nonce: false,
  clientAuthentication: 'none',
  stateTransport: { kind: 'redirect_uri', parameter: SOP_STATE_PARAMETER },
  formPostCallback: false,
  api: sopApi,
  hooks: {
    validateOptions,
    authorizationURL,
    checkCallback,
    requestToken,
  },
});

/**
 * Passport strategy for SOP app authorization. `clientID` is the app's `app_id`.
 *
 * ```ts
 * passport.use(new SopStrategy({
 *   clientID: '2019032617262200001',
 *   callbackURL: '/auth/sop/callback',
 *   authURL: 'https://openauth.example.com',
 *   gatewayURL: 'https://open.example.com/',
 *   privateKey: readFileSync('app-private-key.pem', 'utf8'),
 *   platformPublicKey: readFileSync('platform-public-key.pem', 'utf8'),
 * }));
 * ```
 */
export const SopStrategy = bindProvider('SopStrategy', () => sopProvider);
export type SopStrategy<User = Profile> = OAuthKeeperStrategy<SopOptions, User>;
