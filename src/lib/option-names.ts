/** Options nobody reads: a typo (`onErorr`) is named with the nearest valid name instead of being ignored. */

/** Edit distance (insert, delete, substitute), case-insensitive. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let previous = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= y.length; j += 1) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[y.length]!;
}

/** The known name nearest to `name`, when it is near enough to be what was meant. */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** One sentence per key of `given` that is not in `known`, naming the nearest valid one. */
export function unknownOptions(what: string, given: object, known: readonly string[]): string[] {
  const names = new Set(known);
  return Object.keys(given)
    .filter((key) => !names.has(key))
    .map((key) => {
      const near = nearestName(key, known);
      return `Unknown ${what} option "${key}"${near === undefined ? '' : `; did you mean "${near}"`}? It is not used.`;
    });
}
