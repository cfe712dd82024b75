// Medians, spreads and number formatting for RESULTS.md.

export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function spread(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (!v.length) return [NaN, NaN];
  return [Math.min(...v), Math.max(...v)];
}

/** "0.93 (0.88–0.97)" */
export function ratioText(values, digits = 2) {
  const [lo, hi] = spread(values);
  if (!Number.isFinite(lo)) return 'n/a';
  return `**${median(values).toFixed(digits)}** (${lo.toFixed(digits)}–${hi.toFixed(digits)})`;
}

export function int(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a';
}

export function fixed(x, digits = 1) {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** Markdown table from a header row and rows. */
export function table(header, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Rotate an array by `by`, so each round starts with another variant. */
export function rotate(list, by) {
  const k = ((by % list.length) + list.length) % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}
