import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
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

  it('resolve every subpath under module commonjs with moduleResolution node (typesVersions)', () => {
    // The old resolution finds packages in node_modules only: install the package there by a link.
    const dir = mkdtempSync(join(tmpdir(), 'oauth-keeper-node10-'));
    try {
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(root, join(dir, 'node_modules', 'oauth-keeper'), 'dir');
      for (const name of ['express', 'express-session', 'passport', 'passport-strategy', 'ioredis', 'connect-redis', 'jose', '@types']) {
        symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name), 'dir');
      }
      copyFileSync(join(root, 'test/types/node10.ts'), join(dir, 'usage.ts'));
      let output = '';
      try {
        execFileSync(
          process.execPath,
          [require.resolve('typescript/bin/tsc'), '--noEmit', '--target', 'ES2022', '--module', 'commonjs', '--moduleResolution', 'node10', '--strict', '--esModuleInterop', '--skipLibCheck', 'false', '--types', 'node', 'usage.ts'],
          { cwd: dir, encoding: 'utf8', stdio: 'pipe' },
        );
      } catch (error) {
        output = String((error as { stdout?: string }).stdout ?? error);
      }
      expect(output).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
