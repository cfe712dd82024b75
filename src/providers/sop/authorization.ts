/**
 * The authorization request and its callback: no `state` and no scope (the login
 * transaction is bound through redirect_uri's own query), and the returned `app_id` is checked.
 */
import { ErrorCodes, OAuthKeeperError } from '../../errors.js';
import type { CallbackParams } from '../../provider/types.js';
import { sopName, type SopOptions } from './options.js';

/** The parameter of redirect_uri's own query that carries the login transaction's state. */
export const SOP_STATE_PARAMETER = 'oauth_keeper_state';

/** `{authURL}/oauth2/appToAppAuth`. */
export function appToAppAuthURL(options: SopOptions): string {
  return `${options.authURL.replace(/\/+$/, '')}/oauth2/appToAppAuth`;
}

/** Checks the `app_id` the platform sent back with the code: it must be this app's. */
export function checkCallback(options: SopOptions, params: CallbackParams): void {
  const appId = params.all['app_id'];
  if (appId === undefined) {
    throw new OAuthKeeperError(ErrorCodes.CALLBACK_INVALID, 'The sop callback carries no app_id; the platform always sends it with the code.', {
      provider: sopName(options),
    });
  }
  if (appId !== options.clientID) {
    throw new OAuthKeeperError(
      ErrorCodes.CALLBACK_INVALID,
      'The sop callback carries an app_id other than this app\'s clientID: the code was issued to another app. Start the login again.',
      { provider: sopName(options) },
    );
  }
}

/** `{authURL}/oauth2/appToAppAuth?app_id=...&redirect_uri=...` (no state, no scope: the state rides in redirect_uri). */
export function authorizationURL(options: SopOptions, context: { redirectUri: string }): URL {
  const url = new URL(appToAppAuthURL(options));
  url.searchParams.set('app_id', options.clientID);
  url.searchParams.set('redirect_uri', context.redirectUri);
  return url;
}
