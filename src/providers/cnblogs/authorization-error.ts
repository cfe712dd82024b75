/**
 * What a refused cnblogs authorization means for the app's options (the provider
 * definition's `describeAuthorizationError` hook).
 *
 * IdentityServer refuses a flow the client is not registered for (its `AllowedGrantTypes`)
 * with `unauthorized_client` ("Invalid grant type for client"). The cnblogs document
 * registers clients for the hybrid flow, `code id_token`; a client registered that way
 * refuses `code`, and one registered for `code` refuses `code id_token`.
 */
import { cnblogsResponseType, type CnblogsOptions } from './options.js';

export function describeCnblogsAuthorizationError(options: CnblogsOptions, error: string): string | undefined {
  if (error !== 'unauthorized_client') return undefined;
  const asked = cnblogsResponseType(options);
  const other = asked === 'code' ? 'code id_token' : 'code';
  return (
    `cnblogs answers unauthorized_client when the client is registered for another flow than the one asked for (responseType "${asked}"). ` +
    `Set the strategy's responseType to the flow the client was registered with — "${other}"` +
    (other === 'code id_token' ? ', the flow the cnblogs document shows' : '') +
    ` — or change the client's registration at cnblogs.`
  );
}
