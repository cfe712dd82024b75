/** @type {import('jest').Config} */

// jose 6, openid-client 6 and oauth4webapi 3 ship ES modules only. Node (>= 20.19) loads
// them from our CommonJS build with require(esm); Jest's module system cannot, so these
// packages are transpiled to CommonJS for the tests (transpile only, no type check).
const esmOnly = ['jose', 'openid-client', 'oauth4webapi'];

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }],
    [`/node_modules/(?:${esmOnly.join('|')})/.+\\.js$`]: [
      'ts-jest',
      { tsconfig: { allowJs: true, module: 'commonjs', target: 'ES2022', isolatedModules: true, sourceMap: false } },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(?:${esmOnly.join('|')})/)`],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  globalSetup: '<rootDir>/test/helpers/global-setup.ts',
  setupFilesAfterEnv: ['<rootDir>/test/helpers/no-unhandled.ts'],
  globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
  testTimeout: 60000,
};
