import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The shape of src/, checked on every run: arrows point one way — lib/ (machinery: no
 * Express, no Passport) ← passport/ (the strategy adapter) ← middleware/ (what an app
 * mounts) ← index.ts — with no import cycle, type-only imports included, and no source
 * file longer than 400 lines.
 */

const SRC = join(__dirname, '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const FILES = sources(SRC);
const rel = (path: string) => relative(SRC, path).replace(/\\/g, '/');

/** Every module a file imports or re-exports, relative ones resolved to files of src/, packages by name. */
function importsOf(file: string): { local: string[]; packages: string[] } {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/g)].map((m) => m[1]!);
  const local: string[] = [];
  const packages: string[] = [];
  for (const specifier of specifiers) {
    if (!specifier.startsWith('.')) {
      packages.push(specifier);
      continue;
    }
    const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
    if (!FILES.includes(target)) throw new Error(`${rel(file)} imports ${specifier}, which is no file of src/`);
    local.push(target);
  }
  return { local, packages };
}

const GRAPH = new Map(FILES.map((file) => [file, importsOf(file)]));

describe('the shape of src/', () => {
  it('has no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...path.slice(path.indexOf(file)), file].map(rel).join(' → '));
        return;
      }
      state.set(file, 'open');
      for (const next of GRAPH.get(file)!.local) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of FILES) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('lib/, store/ and provider/ know neither Express, Passport nor the layers above them', () => {
    const wrong: string[] = [];
    for (const [file, { local, packages }] of GRAPH) {
      const from = rel(file);
      if (!/^(lib|store|provider)\//.test(from)) continue;
      for (const target of local.map(rel)) if (/^(middleware|passport|providers|sandbox)\//.test(target) || target === 'index.ts') wrong.push(`${from} → ${target}`);
      for (const name of packages) if (/^(express|passport|express-session|connect-redis)(\/|$)/.test(name)) wrong.push(`${from} → ${name}`);
    }
    expect(wrong).toEqual([]);
  });

  it('passport/ does not reach into middleware/', () => {
    const wrong = [...GRAPH].flatMap(([file, { local }]) =>
      rel(file).startsWith('passport/') ? local.map(rel).filter((t) => t.startsWith('middleware/')).map((t) => `${rel(file)} → ${t}`) : [],
    );
    expect(wrong).toEqual([]);
  });

  it("is the tree the README's table of src/ describes: every source file is named in its folder's row", () => {
    const readme = readFileSync(join(SRC, '..', 'README.md'), 'utf8');
    const rows = new Map([...readme.matchAll(/^\| `([\w/]+)\/` \| (.*) \|$/gm)].map((m) => [m[1]!, m[2]!]));
    const missing = FILES.map(rel)
      .filter((file) => file.includes('/') && !file.endsWith('/index.ts'))
      .filter((file) => {
        const parts = file.split('/');
        const base = parts.at(-1)!.replace(/\.ts$/, '');
        if (parts[0] === 'providers' && parts.length === 3) return !new RegExp(`\\b${base}\\b`).test(rows.get('providers') ?? '');
        if (parts[0] === 'sandbox' && parts.length === 3) return !(rows.get('sandbox') ?? '').includes(`\`${parts[1]}/\``);
        const folder = parts.slice(0, -1).join('/');
        return !(rows.get(folder) ?? '').includes(`\`${base}.ts\``);
      });
    expect(missing).toEqual([]);
  });

  it('has no source file over 400 lines', () => {
    const long = FILES.map((file) => [rel(file), readFileSync(file, 'utf8').split('\n').length] as const).filter(([, lines]) => lines > 400);
    expect(long).toEqual([]);
  });
});
