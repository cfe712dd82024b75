import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as main from '../src/index';
import * as providerKit from '../src/provider/index';
import * as cnblogs from '../src/providers/cnblogs/index';
import * as di from '../src/providers/di';
import * as sop from '../src/providers/sop/index';
import * as sandbox from '../src/sandbox/index';

// The public surface, pinned: adding or removing an export is a deliberate change here.
const MAIN = [
  // What an app mounts and configures.
  'ErrorCodes',
  'OAuthKeeperError',
  'isOAuthKeeperError',
  'defineProvider',
  'OAuthKeeperStrategy',
  'keepTokens',
  'DiStrategy',
  'SopStrategy',
  'CnblogsStrategy',
  'TokenStore',
  'MemoryBackend',
  'RedisBackend',
  'Keeper',
  'oauthKeeper',
  'TokenKeeper',
  'tokenKeeper',
  'ensureAuthorized',
  'authorized',
  'createProxy',
  'guardSessionStore',
  'KeeperSessionStore',
  'createOAuthFetch',
  'safeReturnTo',
  // The instruments `telemetry` records (names, units, attribute keys).
  'TELEMETRY_INSTRUMENTS',
];
/** The kit for provider authors (oauth-keeper/provider). */
const PROVIDER_KIT = [
  'attachBearer',
  'basicAuthorization',
  'defineProvider',
  'grantParameters',
  'isHttp401',
  'readRetryAfter',
  'readStandardCallback',
  'readTokenResponse',
  'standardRevoke',
  'standardTokenRequest',
  'validateCommonOptions',
];
/** Each built-in provider's building blocks (oauth-keeper/providers/<name>). */
const PROVIDERS: Record<string, string[]> = {
  di: ['DI_DEFAULT_BASE_URL', 'DI_DEFAULT_SCOPE', 'DiStrategy', 'attachDiCredentials', 'diBaseURL', 'diProvider', 'isDiTokenRejected', 'unwrapDiTokenResponse'],
  cnblogs: [
    'CNBLOGS_DEFAULT_API_URL',
    'CNBLOGS_DEFAULT_ISSUER',
    'CNBLOGS_DEFAULT_SCOPE',
    'CnblogsStrategy',
    'cnblogsIssuer',
    'cnblogsProfile',
    'cnblogsProvider',
    'cnblogsResponseMode',
    'cnblogsResponseType',
    'createCnblogsProvider',
    'fetchCnblogsMetadata',
    'oidcHalfHash',
    'validateCnblogsOptions',
  ],
  sop: [
    'SOP_STATE_PARAMETER',
    'SOP_TOKEN_METHOD',
    'SopStrategy',
    'callSopGateway',
    'chinaTimestamp',
    'extractResponseNode',
    'readSopTokenNode',
    'responseNodeName',
    'signSopParameters',
    'sopGatewayParameters',
    'sopProvider',
    'sopSign',
    'sopSignContent',
    'sopVerify',
    'verifySopResponse',
  ],
};
const SANDBOX = ['SandboxEngine', 'startCnblogsSandbox', 'startDiSandbox', 'startOAuth2Sandbox', 'startSopSandbox'];

describe('public exports', () => {
  it('pins the main entry point', () => {
    expect(Object.keys(main).sort()).toEqual([...MAIN].sort());
  });

  it('pins the provider kit and each provider subpath', () => {
    expect(Object.keys(providerKit).sort()).toEqual([...PROVIDER_KIT].sort());
    expect(Object.keys(di).sort()).toEqual([...PROVIDERS['di']!].sort());
    expect(Object.keys(cnblogs).sort()).toEqual([...PROVIDERS['cnblogs']!].sort());
    expect(Object.keys(sop).sort()).toEqual([...PROVIDERS['sop']!].sort());
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
      ['oauth-keeper/provider', PROVIDER_KIT],
      ...Object.entries(PROVIDERS).map(([name, names]) => [`oauth-keeper/providers/${name}`, names] as const),
    ] as const) {
      for (const kind of ['cjs', 'esm'] as const) {
        const out = execFileSync(process.execPath, ['-e', script(kind, entry)], { cwd: root, encoding: 'utf8' });
        expect(JSON.parse(out)).toEqual([...names].sort());
      }
    }
  });
});
