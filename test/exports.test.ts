import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as main from '../src/index';
import * as sandbox from '../src/sandbox/index';

// The public surface, pinned: adding or removing an export is a deliberate change here.
const MAIN = [
  'CNBLOGS_DEFAULT_API_URL',
  'CNBLOGS_DEFAULT_ISSUER',
  'CNBLOGS_DEFAULT_SCOPE',
  'CnblogsStrategy',
  'cnblogsProvider',
  'createCnblogsProvider',
  'fetchCnblogsMetadata',
  'oidcHalfHash',
  'verifyCnblogsIdToken',
  'createOAuthFetch',
  'createProxy',
  'guardSessionStore',
  'keepTokens',
  'SopStrategy',
  'callSopGateway',
  'chinaTimestamp',
  'extractResponseNode',
  'signSopParameters',
  'sopProvider',
  'sopSignContent',
  'verifySopResponse',
  'DI_DEFAULT_BASE_URL',
  'DI_DEFAULT_SCOPE',
  'DiStrategy',
  'attachDiCredentials',
  'diBaseURL',
  'diProvider',
  'isDiTokenRejected',
  'unwrapDiTokenResponse',
  'ErrorCodes',
  'Keeper',
  'MemoryBackend',
  'OAuthKeeperError',
  'OAuthKeeperStrategy',
  'RedisBackend',
  'TokenStore',
  'attachBearer',
  'basicAuthorization',
  'defineProvider',
  'ensureAuthorized',
  'isHttp401',
  'isOAuthKeeperError',
  'oauthKeeper',
  'readStandardCallback',
  'readTokenResponse',
  'safeReturnTo',
  'standardRevoke',
  'standardTokenRequest',
  'validateCommonOptions',
];
const SANDBOX = ['SandboxEngine', 'startCnblogsSandbox', 'startDiSandbox', 'startOAuth2Sandbox', 'startSopSandbox'];

describe('public exports', () => {
  it('pins the main entry point', () => {
    expect(Object.keys(main).sort()).toEqual([...MAIN].sort());
  });

  it('pins the sandbox entry point', () => {
    expect(Object.keys(sandbox).sort()).toEqual([...SANDBOX].sort());
  });

  it('pins the error codes', () => {
    expect(Object.isFrozen(main.ErrorCodes)).toBe(true);
    for (const [name, code] of Object.entries(main.ErrorCodes)) expect(code).toBe(`OAUTH_KEEPER_${name}`);
  });

  it('serves the same names from the built ESM and CommonJS entry points', () => {
    const root = join(__dirname, '..');
    const script = (kind: 'esm' | 'cjs', entry: string) =>
      kind === 'cjs'
        ? `console.log(JSON.stringify(Object.keys(require(${JSON.stringify(entry)})).sort()))`
        : `import(${JSON.stringify(entry)}).then((m) => console.log(JSON.stringify(Object.keys(m).sort())))`;
    for (const [entry, names] of [
      ['oauth-keeper', MAIN],
      ['oauth-keeper/sandbox', SANDBOX],
    ] as const) {
      for (const kind of ['cjs', 'esm'] as const) {
        const out = execFileSync(process.execPath, ['-e', script(kind, entry)], { cwd: root, encoding: 'utf8' });
        expect(JSON.parse(out)).toEqual([...names].sort());
      }
    }
  });
});
