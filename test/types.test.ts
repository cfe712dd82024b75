import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const root = join(__dirname, '..');

describe('published types', () => {
  it('compile as a user writes against them (compiling is the assertion)', () => {
    expect(existsSync(join(root, 'dist/cjs/index.d.ts'))).toBe(true); // `npm test` builds first
    let output = '';
    try {
      execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'test/types/tsconfig.json')], {
        cwd: root,
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (error) {
      output = String((error as { stdout?: string }).stdout ?? error);
    }
    expect(output).toBe('');
  });
  // Compiled from an install of the packed package too, ESM and CommonJS: test/pack.test.ts.
});
