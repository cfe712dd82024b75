// `npm start`'s build: nothing when dist/ is newer than every source, else an incremental
// TypeScript build (tsc keeps its .tsbuildinfo inside dist/, so deleting dist/ starts over).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stamp = join(root, 'dist', '.built');

function newest(path) {
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let latest = info.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const inputs = ['src', 'package.json', 'tsconfig.json', 'tsconfig.build.esm.json', 'tsconfig.build.cjs.json'].map((p) => join(root, p)).filter(existsSync);
const sources = Math.max(...inputs.map(newest));
const built = existsSync(stamp) && existsSync(join(root, 'dist', 'esm')) && existsSync(join(root, 'dist', 'cjs')) ? statSync(stamp).mtimeMs : 0;
if (built >= sources) {
  console.log('oauth-keeper: dist/ is up to date (no rebuild).');
  process.exit(0);
}
console.log('oauth-keeper: sources changed, rebuilding dist/ (incremental)…');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
for (const [config, info] of [
  ['tsconfig.build.esm.json', 'dist/.esm.tsbuildinfo'],
  ['tsconfig.build.cjs.json', 'dist/.cjs.tsbuildinfo'],
]) {
  const run = spawnSync(process.execPath, [tsc, '-p', config, '--incremental', '--tsBuildInfoFile', info], { cwd: root, stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
const mark = spawnSync(process.execPath, [join(root, 'scripts', 'mark-dist.cjs')], { cwd: root, stdio: 'inherit' });
if (mark.status !== 0) process.exit(mark.status ?? 1);
writeFileSync(stamp, `${new Date().toISOString()}\n`);
