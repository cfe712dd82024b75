import { randomBytes } from 'node:crypto';
import { Passport } from 'passport';
import { DiStrategy, ErrorCodes, MemoryBackend, OAuthKeeperError, oauthKeeper, tokenKeeper, TokenStore } from '../../../src/index';
import { nearestName, unknownOptions } from '../../../src/lib/option-names';
import { CnblogsStrategy } from '../../../src/providers/cnblogs/index';

const store = () => new TokenStore({ backend: new MemoryBackend(), encryptionKeys: [randomBytes(32)] });
const di = () => new DiStrategy({ clientID: 'c', clientSecret: 's', callbackURL: '/auth/di/callback', baseURL: 'https://di.example' });

/** The process warnings a function emits (through process.emitWarning), as "code: message". */
async function warningsOf(run: () => unknown): Promise<string[]> {
  const seen: string[] = [];
  const spy = jest.spyOn(process, 'emitWarning').mockImplementation(((warning: string | Error, options?: { type?: string; code?: string }) => {
    if (options?.type === 'OAuthKeeperWarning') seen.push(`${options.code}: ${String(warning)}`);
  }) as typeof process.emitWarning);
  try {
    run();
  } finally {
    spy.mockRestore();
  }
  return seen;
}

describe('option names', () => {
  it('finds the nearest known name for a typo, and nothing for an unrelated word', () => {
    expect(nearestName('onErorr', ['onError', 'owner', 'routes'])).toBe('onError');
    expect(nearestName('sessioncookiename', ['sessionCookieName'])).toBe('sessionCookieName');
    expect(nearestName('baseUrl', ['baseURL'])).toBe('baseURL');
    expect(nearestName('color', ['onError', 'owner', 'routes'])).toBeUndefined();
    expect(unknownOptions('keeper', { store: 1, onErorr: 2 }, ['store', 'onError'])).toEqual([
      'Unknown keeper option "onErorr"; did you mean "onError"? It is not used.',
    ]);
  });

  it('the keeper refuses an option it does not read, naming the nearest one and the valid ones', () => {
    const error = (() => {
      try {
        oauthKeeper({ strategies: [di()], store: store(), passport: new Passport(), onErorr: () => undefined } as never);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(OAuthKeeperError);
    expect((error as OAuthKeeperError).code).toBe(ErrorCodes.CONFIGURATION_INVALID);
    expect((error as OAuthKeeperError).message).toMatch(/Unknown keeper option "onErorr"; did you mean "onError"\?.*Valid options: .*onError/);
    // A worker's keeper knows only its own options: passport is not one of them.
    expect(() => tokenKeeper({ strategies: [di()], store: store(), passport: new Passport() } as never)).toThrow(/Unknown keeper option "passport"/);
    expect(() => oauthKeeper({ strategies: [di()], store: store(), passport: new Passport(), routes: false, logIn: false })).not.toThrow();
  });

  it('a strategy warns about an option its provider does not have, and about passport-oauth2-only ones', async () => {
    const typo = await warningsOf(() => new DiStrategy({ clientID: 'c', clientSecret: 's', callbackURL: '/cb', baseUrl: 'https://di.example' } as never));
    expect(typo).toEqual(['OAUTH_KEEPER_UNKNOWN_OPTION: Unknown di strategy option "baseUrl"; did you mean "baseURL"? It is not used.']);
    const legacy = await warningsOf(() => new CnblogsStrategy({ clientID: 'c', clientSecret: 's', callbackURL: '/cb', state: true } as never));
    expect(legacy).toHaveLength(1);
    expect(legacy[0]).toMatch(/does not use the passport-oauth2 option "state": state and PKCE are always on/);
    expect(await warningsOf(() => di())).toEqual([]);
    expect(
      await warningsOf(
        () =>
          new CnblogsStrategy({
            clientID: 'c',
            clientSecret: 's',
            callbackURL: '/cb',
            name: 'blog',
            issuer: 'https://oauth.cnblogs.com',
            responseType: 'code',
            passReqToCallback: false,
            skipUserProfile: true,
            timeoutMs: 5000,
          }),
      ),
    ).toEqual([]);
  });
});
