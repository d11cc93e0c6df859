// Where things are in a manifest's text, and how to change it there: text
// edits computed from the `yaml` package's parse ranges, never a re-serialised
// document. The yaml lib's own output would reindent kubeadm's non-indented
// sequences, drop or move comments and requote strings, and an operator
// diffing revisions must see exactly the lines a change touches. Both
// setRestartAnnotation (restart.ts) and editInPlace (edit-in-place.ts) plan
// their edits with this one Layout, so a rule about the text (where a new
// entry goes, what a removed one takes with it) is written once.

import { isDeepStrictEqual } from 'node:util'
import { isPair, isScalar, type Pair, type YAMLMap, type YAMLSeq } from 'yaml'
import { ServiceError } from '../errors.ts'
import { parseManifest } from './parse.ts'

export interface TextEdit {
  /** Replace text[start, end) by `insert`. */
  start: number
  end: number
  insert: string
}

/**
 * Applies edits planned on `text` (offsets into the original). Edits may
 * touch but not overlap. Insertions at one offset land in the order given,
 * before a replacement starting there. The final line break, or its absence,
 * is kept.
 */
export function applyEdits(text: string, edits: readonly TextEdit[]): string {
  const order = edits.map((edit, index) => ({ edit, index }))
  order.sort((a, b) => a.edit.start - b.edit.start || a.edit.end - b.edit.end || a.index - b.index)
  // One pass from the start, in pieces joined once: thousands of edits of a large manifest cost no more than the text.
  const pieces: string[] = []
  let at = 0
  for (const { edit } of order) {
    if (edit.start < at || edit.start > edit.end) {
      // A planning bug: two edits of one place would garble the text.
      throw new ServiceError('WRITE_FAILED', 'Cannot edit the manifest in place: two planned edits overlap; nothing was written.')
    }
    pieces.push(text.slice(at, edit.start), edit.insert)
    at = edit.end
  }
  pieces.push(text.slice(at))
  let out = pieces.join('')
  // A text without a final line break keeps it that way, also when its last lines were removed or replaced by whole lines.
  if (!text.endsWith('\n') && out.endsWith('\n')) out = out.slice(0, out.endsWith('\r\n') ? -2 : -1)
  return out
}

/**
 * The guarantee callers rely on: the edited text parses, and to `expected`.
 * Cheap next to a write, so it is always checked.
 */
export function assertParsesTo(editedText: string, expected: unknown, messages: { unparseable: string; different: string }): void {
  let after: Record<string, unknown>
  try {
    after = parseManifest(editedText).object
  } catch {
    throw new ServiceError('WRITE_FAILED', messages.unparseable)
  }
  if (!isDeepStrictEqual(after, expected)) throw new ServiceError('WRITE_FAILED', messages.different)
}

type Range = [number, number, number]

export function rangeOf(node: unknown): Range | undefined {
  const range = (node as { range?: Range | null } | null)?.range
  return range ?? undefined
}

export function pairNamed(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((pair) => isScalar(pair.key) && pair.key.value === key)
}

/** A block scalar (`|`, `>`): its range starts on its parent's line and runs over the lines after it. */
export function isBlockScalar(node: unknown): boolean {
  return isScalar(node) && (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED')
}

type Item = YAMLSeq['items'][number] | Pair

/** Offsets, columns and line ends of the source text, and edits placed by them. */
export class Layout {
  readonly eol: string

  /** `purpose` words the refusals: "Cannot <purpose>: the manifest has ...". */
  constructor(
    readonly text: string,
    private readonly purpose: string,
  ) {
    this.eol = text.includes('\r\n') ? '\r\n' : '\n'
  }

  fail(what: string): ServiceError {
    return new ServiceError('WRITE_FAILED', `Cannot ${this.purpose}: the manifest has ${what} where it was expected.`)
  }

  /** Column of an offset. A BOM is no column: a key right after it is at column 0, as the kubelet reads it. */
  column(offset: number): number {
    const lineStart = this.lineStart(offset)
    return offset - lineStart - (lineStart === 0 && this.text.charCodeAt(0) === 0xfeff && offset > 0 ? 1 : 0)
  }

  lineStart(offset: number): number {
    return this.text.lastIndexOf('\n', offset - 1) + 1
  }

  /** 1-based line of an offset, for messages. */
  line(offset: number): number {
    let line = 1
    for (let i = this.text.indexOf('\n'); i !== -1 && i < offset; i = this.text.indexOf('\n', i + 1)) line++
    return line
  }

  /** Spaces the line holding `offset` starts with. */
  indentOf(offset: number): number {
    const start = this.lineStart(offset)
    let i = start
    while (this.text[i] === ' ') i++
    return i - start
  }

  /** Only indentation (or a BOM) before `offset` on its line. */
  firstOnLine(offset: number): boolean {
    return /^\ufeff?[ \t]*$/.test(this.text.slice(this.lineStart(offset), offset))
  }

  /**
   * Where the line after a node's last line starts, for a node ending at
   * `end`: the node's range ends after its own line break when it is a block
   * (collection or scalar, kept blank lines included), else mid-line before a
   * trailing comment, which belongs to the node's line. The text's end when
   * the last line has no line break.
   */
  lineBoundaryAfter(end: number): number {
    if (end > 0 && this.text[end - 1] === '\n') return end
    const newline = this.text.indexOf('\n', end)
    return newline === -1 ? this.text.length : newline + 1
  }

  lastNonSpaceBefore(offset: number): number {
    let i = offset - 1
    while (i > 0 && /\s/.test(this.text[i]!)) i--
    return i
  }

  /** Whole lines inserted at a line boundary (a line's start, or the text's end). */
  linesAt(boundary: number, lines: string[]): TextEdit {
    if (boundary === this.text.length && !this.text.endsWith('\n')) {
      // The last line has no line break, and the text keeps ending without one.
      return { start: boundary, end: boundary, insert: lines.map((line) => this.eol + line).join('') }
    }
    return { start: boundary, end: boundary, insert: lines.map((line) => line + this.eol).join('') }
  }

  /** Whole lines [start, end) (a line start to a line boundary) replaced by `lines` (none: removed). */
  replaceLines(start: number, end: number, lines: string[]): TextEdit {
    // At the end of a text without a final line break, applyEdits takes the one these lines leave off again.
    return { start, end, insert: lines.map((line) => line + this.eol).join('') }
  }

  keyStart(pair: Pair): number {
    const range = rangeOf(pair.key)
    if (!range) throw this.fail('a key without a position')
    return range[0]
  }

  /** Indentation of a block map: the column of its first key. */
  keyColumn(map: YAMLMap): number {
    const first = map.items[0]
    if (!first) throw this.fail('an empty block mapping')
    return this.column(this.keyStart(first))
  }

  /** Where an entry (pair or item) of a collection starts. */
  entryStart(item: Item): number {
    const range = isPair(item) ? (rangeOf(item.key) ?? rangeOf(item.value)) : rangeOf(item)
    if (!range) throw this.fail('an entry without a position')
    return range[0]
  }

  /** Where an entry ends: its value, or its key when it has no value. */
  entryEnd(item: Item): number {
    const range = isPair(item) ? (rangeOf(item.value) ?? rangeOf(item.key)) : rangeOf(item)
    if (!range) throw this.fail('an entry without a position')
    return range[1]
  }

  /** Offset of the `:` after a pair's key. */
  colonAfter(pair: Pair): number {
    const keyRange = rangeOf(pair.key)
    if (!keyRange) throw this.fail('a key without a position')
    let i = keyRange[1]
    while (this.text[i] === ' ' || this.text[i] === '\t') i++
    if (this.text[i] !== ':') throw this.fail('a key without a colon after it')
    return i
  }

  /** Offset of the `-` of a block sequence's item. */
  dashOf(seq: YAMLSeq, index: number): number {
    // The first item's dash starts the sequence; a later one follows the item before it, past spaces and comment lines.
    let i = index === 0 ? (rangeOf(seq)?.[0] ?? -1) : this.entryEnd(seq.items[index - 1] as Item)
    for (;;) {
      while (i >= 0 && /[ \t\r\n]/.test(this.text[i] ?? '')) i++
      if (this.text[i] !== '#') break
      i = this.text.indexOf('\n', i)
      if (i === -1) break
    }
    if (i < 0 || this.text[i] !== '-') throw this.fail('a sequence item without its dash')
    return i
  }

  replaceValue(pair: Pair, replacement: string): TextEdit {
    const range = rangeOf(pair.value)
    if (!range) throw this.fail('a value without a position')
    const [start, end] = range
    // An empty value (`key:`) sits right after the colon and needs a space.
    return start === end ? { start, end, insert: ` ${replacement}` } : { start, end, insert: replacement }
  }

  /**
   * Adds lines after an entry of a block map (its last by default), at the
   * map's key indentation: after the entry's last line, so a trailing
   * comment stays where it is and a block scalar keeps its lines.
   */
  blockAppend(map: YAMLMap, lines: string[], after: Pair = map.items[map.items.length - 1]!): TextEdit {
    const indent = ' '.repeat(this.keyColumn(map))
    return this.linesAt(this.lineBoundaryAfter(this.entryEnd(after)), lines.map((line) => (line === '' ? '' : indent + line)))
  }

  /** The brackets of a flow collection: offsets of `{` / `[` and of `}` / `]`. */
  brackets(collection: YAMLMap | YAMLSeq): [number, number] {
    const range = rangeOf(collection)
    const open = range ? range[0] : -1
    const close = range ? range[1] - 1 : -1
    if (!range || !'{['.includes(this.text[open] ?? '-') || !'}]'.includes(this.text[close] ?? '-')) {
      throw this.fail('a flow collection without its brackets')
    }
    return [open, close]
  }

  /** A flow collection laid out one entry per line (pretty JSON), rather than on one line. */
  flowIsMultiLine(collection: YAMLMap | YAMLSeq): boolean {
    const last = collection.items[collection.items.length - 1] as Item | undefined
    if (!last) return false
    return this.text.slice(this.entryEnd(last), this.brackets(collection)[1]).includes('\n')
  }

  /** Column new entries of a multi-line flow collection go to: that of its entries. */
  flowEntryColumn(collection: YAMLMap | YAMLSeq, near: number): number {
    const item = collection.items[Math.max(0, near)] as Item | undefined
    if (!item) throw this.fail('an empty flow collection')
    return this.column(this.entryStart(item))
  }

  /**
   * Adds entries to a flow collection ({...}, [...], JSON) after entry
   * `after` (-1: before the first), with `, ` or, when the collection is
   * laid out one entry per line, each on its own line at the entries'
   * column. An empty collection gets them between its brackets, on one line,
   * or `expand`ed one per line (a pretty-printed JSON document).
   */
  flowInsert(collection: YAMLMap | YAMLSeq, entries: string[], after = collection.items.length - 1, expand?: { outer: number; inner: number }): TextEdit {
    const [open, close] = this.brackets(collection)
    const items = collection.items as Item[]
    if (items.length === 0) {
      if (!expand) return { start: close, end: close, insert: entries.join(', ') }
      const inner = this.eol + ' '.repeat(expand.inner)
      return { start: open + 1, end: close, insert: `${inner}${entries.join(`,${inner}`)}${this.eol}${' '.repeat(expand.outer)}` }
    }
    const separator = this.flowIsMultiLine(collection) ? `,${this.eol}${' '.repeat(this.flowEntryColumn(collection, after))}` : ', '
    if (after < 0) {
      const start = this.entryStart(items[0]!)
      return { start, end: start, insert: entries.map((entry) => entry + separator).join('') }
    }
    const end = this.entryEnd(items[after]!)
    return { start: end, end, insert: entries.map((entry) => separator + entry).join('') }
  }

  /**
   * Removes entries first..last (consecutive) of a flow collection and one
   * comma: the one after them when an entry follows, else the one before.
   * Not all of them (the caller writes the empty collection then).
   */
  flowRemove(collection: YAMLMap | YAMLSeq, first: number, last: number): TextEdit {
    const items = collection.items as Item[]
    const next = items[last + 1]
    if (next) return { start: this.entryStart(items[first]!), end: this.entryStart(next), insert: '' }
    const before = items[first - 1]
    if (!before) throw this.fail('a flow collection to empty')
    return { start: this.entryEnd(before), end: this.entryEnd(items[last]!), insert: '' }
  }
}
