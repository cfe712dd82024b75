// Which build of oauth-keeper the servers load. Other work goes on in this tree while a run
// lasts (and rebuilds dist/), so a run first copies dist/esm into bench/.snapshot/ and every
// server of the run loads that copy: one build for the whole run. Without a snapshot (a script
// run on its own), the package resolves itself as 'oauth-keeper' through its exports.
import { cpSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
let snapshot = null;

/** Copy dist/esm now; returns { dir, builtAt } (builtAt: mtime of dist/esm/index.js). */
export function snapshotBuild() {
  const source = join(root, 'dist', 'esm');
  const builtAt = statSync(join(source, 'index.js')).mtime;
  const dir = join(root, 'bench', '.snapshot', `oauth-keeper-${process.pid}`);
  rmSync(join(root, 'bench', '.snapshot'), { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cpSync(source, join(dir, 'esm'), { recursive: true });
  snapshot = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { dir, builtAt };
}

export function buildDir() {
  return snapshot;
}

/** Import specifier of the package's main entry or a subpath ('sandbox'), from `dir` when given. */
export function entry(dir, subpath = '') {
  if (!dir) return subpath ? `oauth-keeper/${subpath}` : 'oauth-keeper';
  return pathToFileURL(join(dir, 'esm', subpath ? `${subpath}/index.js` : 'index.js')).href;
}
