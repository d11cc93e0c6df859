// Tables as kubectl prints them (its printers' text/tabwriter settings: a
// column is as wide as its widest cell plus 3 spaces, at least 6; the last
// column is not padded), headers upper-case, an empty cell as <none>.

export type Cell = string | number | boolean | null | undefined

const MIN_WIDTH = 6
const PADDING = 3

export function table(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => headers.map((_, i) => cellText(r[i])))]
  const widths = headers.map((_, i) => Math.max(MIN_WIDTH, ...text.map((r) => width(r[i] ?? '') + PADDING)))
  return text.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(Math.max(0, (widths[i] ?? 0) - width(c))))).join('').trimEnd()).join('\n') + '\n'
}

function cellText(c: Cell): string {
  if (c === null || c === undefined || c === '') return '<none>'
  // One line per row: a message with a line break would break the table.
  return String(c).replace(/[\r\n\t]+/g, ' ')
}

/** Display width: code points (wide characters are rare in names and messages). */
function width(s: string): number {
  return [...s].length
}

/** A "key: value" block (describe), values aligned after the longest key. */
export function fields(pairs: ReadonlyArray<readonly [string, Cell]>, indent = ''): string {
  const w = Math.max(...pairs.map(([k]) => k.length)) + 2
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(w)}${cellText(v)}`.trimEnd()).join('\n') + '\n'
}

/** Indents every line of a block. */
export function indent(block: string, by = '  '): string {
  return block
    .split('\n')
    .map((l) => (l === '' ? l : by + l))
    .join('\n')
}
