// A manifest changed to a new value by editing its text, not by writing the
// new object out: operators patch kubeadm's kube-apiserver.yaml and etcd.yaml
// and must see a diff of exactly the lines their change touches. Comments, key
// order, quoting, indentation, blank lines and every untouched line stay
// byte-identical; the yaml lib's stringify would reindent kubeadm's
// non-indented sequences, requote strings and drop comments.
//
// The old value's YAML nodes and the target are walked together; each
// difference becomes a text edit on the node's source range (yaml-layout.ts
// says where things are), and the edits are applied at once. New text is
// written in the file's own style (indentation step, sequence indentation,
// JSON stays JSON). Whatever the plan, the result must parse to exactly the
// target, or nothing is returned.

import { isDeepStrictEqual } from 'node:util'
import { isAlias, isMap, isNode, isPair, isScalar, isSeq, parseDocument, Scalar, stringify, visit, type Pair, type YAMLMap, type YAMLSeq } from 'yaml'
import { ServiceError } from '../errors.ts'
import { isMapping, parseManifest, yamlOptions } from './parse.ts'
import { applyEdits, assertParsesTo, isBlockScalar, Layout, rangeOf, type TextEdit } from './yaml-layout.ts'

type Path = Array<string | number>

/** Where a node sits: the value of a pair of a map, or an item of a sequence. */
type Slot = { kind: 'pair'; pair: Pair; map: YAMLMap } | { kind: 'item'; seq: YAMLSeq }

/**
 * The fields that identify an item of a Kubernetes list (the strategic merge
 * patch keys): an old and a new item with the same one are the same item,
 * edited. The ones only their own lists have come first, so a volumeMount is
 * known by its mountPath rather than by the volume's name it shares.
 */
const MERGE_KEYS = ['mountPath', 'devicePath', 'containerPort', 'ip', 'name'] as const

/** Above this many old × new items, sequences are aligned by their common head and tail only (the alignment is quadratic). */
const LCS_MAX_CELLS = 4_000_000

/**
 * The yaml lib's scalar output as a YAML 1.1 reader (the kubelet's go-yaml)
 * reads it too: `yes`, `on`, `1_000` or a timestamp stay quoted. No folding.
 */
const SCALAR_OPTIONS = { compat: 'yaml-1.1', lineWidth: 0, doubleQuotedAsJSON: true } as const

/**
 * The text of `text` changed so that it parses to `target` (a plain JSON-compatible object), by the
 * smallest text edits: every line that does not hold a changed value stays byte-identical.
 * Returns `text` itself when it already parses to `target`. Throws ServiceError WRITE_FAILED when it
 * cannot be done in place (say what and where) or when the result would not parse to exactly `target`
 * (always checked, like restart.ts's assertOnlyAnnotationChanged).
 *
 * `text` must be a manifest parseManifest accepts (else its ValidationErrors).
 * A key of `target` whose value is undefined is absent, as in JSON. Refused
 * (WRITE_FAILED): a target that is not JSON data; an edit that would touch an
 * alias, an anchor, a tag, a merge key (`<<`) or a complex key (they make one
 * piece of text stand for several values, or a value other than its text).
 */
export function editInPlace(text: string, target: Record<string, unknown>): string {
  const parsed = parseManifest(text)
  const wanted = jsonData(target, [])
  if (isDeepStrictEqual(parsed.object, wanted)) return text
  // parseManifest has found any duplicate key in linear time; the yaml lib's uniqueKeys is quadratic.
  const doc = parseDocument(text, yamlOptions(false))
  const planner = new Planner(text, doc.contents as YAMLMap, parsed.format === 'json')
  planner.diff(doc.contents, parsed.object, wanted, [], undefined)
  const edited = applyEdits(text, planner.edits)
  assertParsesTo(edited, wanted, {
    unparseable: 'Editing the manifest in place produced an unparseable manifest; nothing was written.',
    different: 'Editing the manifest in place would not have produced exactly the new manifest; nothing was written.',
  })
  return edited
}

/** How the file lays out what it nests: new text follows it. */
interface FileStyle {
  /** Columns from a key to the keys of the mapping under it. */
  step: number
  /** Columns from a key to the dashes of the sequence under it: 0 as kubeadm and kubectl write them. */
  seqIndent: number
  /** Spaces after a dash. */
  dashGap: number
  /** JSON only: columns per nesting level, and whether the document is laid out one entry per line. */
  jsonStep: number
  jsonMultiLine: boolean
}

class Planner {
  readonly edits: TextEdit[] = []
  private readonly layout: Layout
  private readonly style: FileStyle

  constructor(
    private readonly text: string,
    root: YAMLMap,
    private readonly json: boolean,
  ) {
    this.layout = new Layout(text, 'edit the manifest in place')
    this.style = this.detectStyle(root)
  }

  /** Plans the edits that turn `node` (whose value is `old`) into `next`. */
  diff(node: unknown, old: unknown, next: unknown, path: Path, slot: Slot | undefined): void {
    if (isDeepStrictEqual(old, next)) return
    this.guard(node, path)
    if (isMap(node) && isMapping(old) && isMapping(next)) return this.diffMap(node, old, next, path, slot)
    if (isSeq(node) && Array.isArray(old) && Array.isArray(next)) return this.diffSeq(node, old, next, path, slot)
    if (isScalar(node) && !isCollection(old) && !isCollection(next)) return this.editScalar(node, next, path, slot)
    this.replace(node, next, path, slot)
  }

  // A node the edit goes through or changes: it must stand for itself only.
  private guard(node: unknown, path: Path): void {
    if (node === null || node === undefined) throw this.refuse('is a key without a value', path)
    if (isAlias(node)) throw this.refuse(`is an alias (*${node.source})`, path, node)
    const props = node as { anchor?: string; tag?: string }
    if (props.anchor) throw this.refuse(`has an anchor (&${props.anchor})`, path, node)
    if (props.tag) throw this.refuse(`has a tag (${props.tag})`, path, node)
  }

  /** A node removed or replaced must hold no anchor: an alias elsewhere would lose its value. */
  private assertNoAnchor(node: unknown, path: Path): void {
    if (isPair(node)) {
      this.assertNoAnchor(node.key, path)
      return this.assertNoAnchor(node.value, path)
    }
    if (!isNode(node)) return
    visit(node, {
      Node: (_key, inner) => {
        if (inner.anchor) throw this.refuse(`would be removed or replaced, but holds an anchor (&${inner.anchor}) an alias may use`, path, inner)
      },
    })
  }

  private refuse(what: string, path: Path, node?: unknown): ServiceError {
    const start = rangeOf(node)?.[0]
    const where = start === undefined ? '' : ` (line ${this.layout.line(start)})`
    return new ServiceError(
      'WRITE_FAILED',
      `Cannot edit in place: ${describePath(path)} ${what}${where}; replace the whole manifest with updateStaticPod.`,
      ['manifest', ...path],
    )
  }

  // ---- mappings

  private diffMap(node: YAMLMap, old: Record<string, unknown>, next: Record<string, unknown>, path: Path, slot: Slot | undefined): void {
    const keys = node.items.map((pair) => {
      const key = pair.key
      if (!isScalar(key)) throw this.refuse('is a mapping with a complex key (`? ...`)', path, key)
      if (typeof key.value === 'symbol') throw this.refuse('is a mapping with a merge key (`<<`), whose keys are not all its own', path, key)
      // As the yaml lib names the key in the object (toJS).
      return key.value === null ? '' : String(key.value)
    })
    const present = new Set(keys)
    const added = Object.keys(next).filter((key) => !present.has(key))
    const survivors = node.items.flatMap((_pair, i) => (Object.hasOwn(next, keys[i]!) ? [i] : []))

    if (node.items.length === 0) {
      // `{}`: a block mapping is never empty.
      return this.push(this.layout.flowInsert(node, this.flowEntries(node, next, added, -1), -1, this.expansion(node)))
    }
    if (survivors.length === 0) {
      if (added.length === 0) return this.empty(node, path, slot)
      const layout = this.layout
      const firstKey = layout.keyStart(node.items[0]!)
      if (node.flow || !layout.firstOnLine(firstKey)) return this.replace(node, next, path, slot)
      // Every key new: the old entries' lines go, the new ones take the place of the first, and the comments between stay.
      node.items.forEach((pair, i) => {
        this.assertNoAnchor(pair, [...path, keys[i]!])
        this.push(layout.replaceLines(layout.lineStart(layout.keyStart(pair)), layout.lineBoundaryAfter(layout.entryEnd(pair)), []))
      })
      const lines = added.flatMap((key) => this.pairLines(key, next[key])).map((line) => indent(line, layout.keyColumn(node)))
      return this.push(layout.linesAt(layout.lineStart(firstKey), lines))
    }
    for (const i of survivors) {
      const pair = node.items[i]!
      const key = keys[i]!
      this.diff(pair.value, old[key], next[key], [...path, key], { kind: 'pair', pair, map: node })
    }

    const removed = node.items.flatMap((_pair, i) => (Object.hasOwn(next, keys[i]!) ? [] : [i]))
    for (const i of removed) this.assertNoAnchor(node.items[i], [...path, keys[i]!])
    if (node.flow) {
      for (const [first, last] of runs(removed)) this.push(this.layout.flowRemove(node, first, last))
    } else {
      let covered = -1
      for (const i of removed) {
        if (i <= covered) continue
        const pair = node.items[i]!
        const start = this.layout.keyStart(pair)
        if (this.layout.firstOnLine(start)) {
          this.push(this.layout.replaceLines(this.layout.lineStart(start), this.layout.lineBoundaryAfter(this.layout.entryEnd(pair)), []))
        } else if (i === 0) {
          // The first key of a sequence item (`- command:`): the first key kept moves up after the dash, over the removed ones.
          this.push({ start, end: this.layout.keyStart(node.items[survivors[0]!]!), insert: '' })
          covered = survivors[0]!
        } else {
          throw this.layout.fail('a mapping key after another on its line')
        }
      }
    }

    if (added.length === 0) return
    const after = survivors[survivors.length - 1]!
    if (node.flow) return this.push(this.layout.flowInsert(node, this.flowEntries(node, next, added, after), after))
    this.push(this.layout.blockAppend(node, added.flatMap((key) => this.pairLines(key, next[key])), node.items[after]!))
  }

  // ---- sequences

  private diffSeq(node: YAMLSeq, old: unknown[], next: unknown[], path: Path, slot: Slot | undefined): void {
    if (node.items.some(isPair)) throw this.refuse('is a sequence of single-pair mappings (`[a: b]`)', path, node)
    if (node.items.length === 0) {
      return this.push(this.layout.flowInsert(node, next.map((value) => this.flowValue(value, node, this.expansion(node)?.inner)), -1, this.expansion(node)))
    }
    const matches = align(old, next)
    if (matches.length === 0) {
      if (next.length === 0) return this.empty(node, path, slot)
      return this.replace(node, next, path, slot)
    }
    const matchedOld = new Set(matches.map(([i]) => i))
    const survivors = matches.map(([i]) => i)
    // New items between matches go after the match before them (so a comment above the next one stays with it), or before the first.
    const leading = next.slice(0, matches[0]![1])
    if (leading.length > 0) this.push(this.insertItems(node, -1, survivors[0]!, leading))
    matches.forEach(([i, j], k) => {
      this.diff(node.items[i], old[i], next[j], [...path, i], { kind: 'item', seq: node })
      const following = next.slice(j + 1, matches[k + 1]?.[1] ?? next.length)
      if (following.length > 0) this.push(this.insertItems(node, i, survivors[0]!, following))
    })

    const removed = old.flatMap((_item, i) => (matchedOld.has(i) ? [] : [i]))
    for (const i of removed) this.assertNoAnchor(node.items[i], [...path, i])
    if (node.flow) {
      for (const [first, last] of runs(removed)) this.push(this.layout.flowRemove(node, first, last))
      return
    }
    let covered = -1
    for (const i of removed) {
      if (i <= covered) continue
      const dash = this.layout.dashOf(node, i)
      if (this.layout.firstOnLine(dash)) {
        this.push(this.layout.replaceLines(this.layout.lineStart(dash), this.layout.lineBoundaryAfter(this.layout.entryEnd(node.items[i]!)), []))
      } else if (i === 0) {
        // The first item of a sequence in a sequence (`- - a`): the first item kept moves up, over the removed ones.
        this.push({ start: dash, end: this.layout.dashOf(node, survivors[0]!), insert: '' })
        covered = survivors[0]!
      } else {
        throw this.layout.fail('a sequence item after another on its line')
      }
    }
  }

  /** New items after old item `after` (-1: before the first kept one, `first`). */
  private insertItems(node: YAMLSeq, after: number, first: number, values: unknown[]): TextEdit {
    if (node.flow) {
      const column = this.json && this.layout.flowIsMultiLine(node) ? this.layout.flowEntryColumn(node, after) : undefined
      return this.layout.flowInsert(node, values.map((value) => this.flowValue(value, node, column)), after)
    }
    const layout = this.layout
    const dash = layout.dashOf(node, Math.max(after, 0))
    const column = layout.column(dash)
    const itemStart = layout.entryStart(node.items[Math.max(after, 0)]!)
    const gap = layout.lineStart(itemStart) === layout.lineStart(dash) ? itemStart - dash - 1 : this.style.dashGap
    const type = scalarTypeOf(node.items.find(isScalar))
    const lines = values.flatMap((value) => this.itemLines(value, gap, type))
    if (after >= 0) return layout.linesAt(layout.lineBoundaryAfter(layout.entryEnd(node.items[after]!)), lines.map((line) => indent(line, column)))
    const firstDash = layout.dashOf(node, first)
    if (layout.firstOnLine(firstDash)) return layout.linesAt(layout.lineStart(firstDash), lines.map((line) => indent(line, column)))
    // Before an item that shares its line with the dash of an outer item (`- - a`).
    const pad = layout.eol + ' '.repeat(column)
    return { start: firstDash, end: firstDash, insert: lines.map((line, k) => (k === 0 ? line : indent(line, column))).join(layout.eol) + pad }
  }

  // ---- scalars

  private editScalar(node: Scalar, next: unknown, path: Path, slot: Slot | undefined): void {
    const range = rangeOf(node)
    if (!range) throw this.layout.fail('a value without a position')
    const [start, end] = range
    if (isBlockScalar(node)) {
      const block = typeof next === 'string' && !this.inFlow(slot) ? this.blockScalar(next, node.type!, this.blockContentColumn(node)) : undefined
      if (block === undefined) return this.replace(node, next, path, slot)
      // The block's range ends after its line break, unless it ends the text without one.
      const text = this.text[end - 1] === '\n' ? block : block.slice(0, block.length - this.layout.eol.length)
      return this.push({ start, end, insert: text })
    }
    this.push(this.inlineAt(start, end, this.scalarText(next, node.type, this.inFlow(slot), false)))
  }

  /** The column the lines of a block scalar are at (or would be, for an empty one). */
  private blockContentColumn(node: Scalar): number {
    const [start, end] = rangeOf(node)!
    const body = this.text.slice(this.layout.lineBoundaryAfter(start), end)
    const line = body.split('\n').find((l) => l.trim() !== '')
    return line === undefined ? this.layout.indentOf(start) + this.style.step : line.length - line.trimStart().length
  }

  /**
   * A block scalar written by the yaml lib, its lines at `column`. Undefined
   * when the value needs an indentation indicator (a first line starting with
   * a space), which would mean something else once re-indented, or has
   * characters a block scalar cannot hold.
   */
  private blockScalar(value: string, type: Scalar.Type, column: number): string | undefined {
    const firstLine = value.split('\n').find((l) => l !== '') ?? ''
    // eslint-disable-next-line no-control-regex
    if (value === '' || /^[ \t]/.test(firstLine) || /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\ufeff\u2028\u2029]/.test(value)) return undefined
    const scalar = new Scalar(value)
    scalar.type = type
    const out = stringify({ k: scalar }, { ...SCALAR_OPTIONS, indent: 2 })
    const newline = out.indexOf('\n')
    const header = out.slice(3, newline)
    if (!/^[|>][-+]?$/.test(header)) return undefined
    const lines = out.slice(newline + 1, -1).split('\n').map((line) => (line === '' ? '' : ' '.repeat(column) + line.slice(2)))
    return [header, ...lines].map((line) => line + this.layout.eol).join('')
  }

  // ---- replacing a value whole

  /** `node`'s text replaced by `next` written at its place: for a value of another type, or a collection written anew. */
  private replace(node: unknown, next: unknown, path: Path, slot: Slot | undefined): void {
    this.assertNoAnchor(node, path)
    const layout = this.layout
    const range = rangeOf(node)
    if (!range) throw layout.fail('a value without a position')
    const [start, end] = range
    const flowNode = (isMap(node) || isSeq(node)) && node.flow
    if (!slot) {
      // The top level, all of it new: a JSON document written anew in its layout (a block one never gets here).
      if (!flowNode) throw layout.fail('a top level to write anew')
      return this.push({ start, end, insert: this.flowValue(next, node, this.style.jsonMultiLine ? layout.indentOf(start) : undefined) })
    }

    if (this.inFlow(slot)) {
      const parent = slot.kind === 'pair' ? slot.map : slot.seq
      const column = this.json && layout.flowIsMultiLine(parent) ? layout.indentOf(start) : undefined
      return this.push({ start, end, insert: this.flowValue(next, parent, column) })
    }
    if (flowNode && isCollection(next)) {
      // `[a, b]` in a block mapping stays a flow collection.
      return this.push({ start, end, insert: this.flowValue(next, node, undefined) })
    }
    const blockNode = ((isMap(node) || isSeq(node)) && !node.flow) || isBlockScalar(node)
    // Without the line break (and kept blank lines) a block ends with.
    const contentEnd = blockNode ? layout.lastNonSpaceBefore(end) + 1 : end
    const nested = isNonEmptyCollection(next)

    if (slot.kind === 'item') {
      const column = layout.column(start)
      const text = nested ? this.blockLines(next).map((line, k) => (k === 0 ? line : indent(line, column))).join(layout.eol) : this.inlineText(next)
      return this.push(this.inlineAt(start, contentEnd, text))
    }

    const pair = slot.pair
    const colon = layout.colonAfter(pair)
    const keyColumn = layout.column(layout.keyStart(pair))
    const lines = nested ? this.blockLines(next).map((line) => indent(line, keyColumn + (Array.isArray(next) ? this.style.seqIndent : this.style.step))) : []
    if (!blockNode || isBlockScalar(node)) {
      // The old value starts on the key's line.
      if (!nested) return this.push(this.inlineAt(start, contentEnd, this.inlineText(next)))
      const restOfLine = this.text.slice(contentEnd, layout.lineBoundaryAfter(contentEnd))
      // `key: value` → `key:`, but `key: value # why` → `key:  # why`: a comment needs the space before it.
      const from = /^[ \t]*\r?\n?$/.test(restOfLine) ? colon + 1 : start
      this.push({ start: from, end: contentEnd, insert: '' })
      return this.push(layout.linesAt(layout.lineBoundaryAfter(contentEnd), lines))
    }
    // A block collection, on the lines after its key.
    if (!layout.firstOnLine(start)) throw layout.fail('a block collection that does not start its line')
    if (!nested) this.push({ start: colon + 1, end: colon + 1, insert: ` ${this.inlineText(next)}` })
    this.push(layout.replaceLines(layout.lineStart(start), layout.lineBoundaryAfter(end), lines))
  }

  /** A collection with nothing left: `{}` / `[]`. */
  private empty(node: YAMLMap | YAMLSeq, path: Path, slot: Slot | undefined): void {
    if (!node.flow && !slot) {
      // The top level of a YAML document, every key gone: `{}` in place of the first, and the comments stay.
      const layout = this.layout
      this.assertNoAnchor(node, path)
      for (const pair of (node as YAMLMap).items) {
        this.push(layout.replaceLines(layout.lineStart(layout.keyStart(pair)), layout.lineBoundaryAfter(layout.entryEnd(pair)), []))
      }
      return this.push(layout.linesAt(layout.lineStart(layout.keyStart((node as YAMLMap).items[0]!)), ['{}']))
    }
    if (!node.flow) return this.replace(node, isMap(node) ? {} : [], path, slot)
    this.assertNoAnchor(node, path)
    const [open, close] = this.layout.brackets(node)
    this.push({ start: open + 1, end: close, insert: '' })
  }

  /** `text` in place of [start, end); a value that was empty (`key:`) gets the spaces around it. */
  private inlineAt(start: number, end: number, text: string): TextEdit {
    if (start !== end) return { start, end, insert: text }
    const before = /[ \t]/.test(this.text[start - 1] ?? ' ') ? '' : ' '
    const after = this.text[start] === '#' ? ' ' : ''
    return { start, end, insert: before + text + after }
  }

  private inFlow(slot: Slot | undefined): boolean {
    return slot !== undefined && (slot.kind === 'pair' ? slot.map.flow : slot.seq.flow) === true
  }

  /** An empty JSON collection in a document laid out one entry per line gets its entries one per line too. */
  private expansion(node: YAMLMap | YAMLSeq): { outer: number; inner: number } | undefined {
    if (!this.json || !this.style.jsonMultiLine) return undefined
    const outer = this.layout.indentOf(this.layout.brackets(node)[0])
    return { outer, inner: outer + this.style.jsonStep }
  }

  private push(edit: TextEdit): void {
    this.edits.push(edit)
  }

  // ---- rendering new text

  /** A block collection's lines, relative to its own column. */
  private blockLines(value: unknown): string[] {
    if (Array.isArray(value)) return value.flatMap((item) => this.itemLines(item, this.style.dashGap, undefined))
    return Object.entries(value as Record<string, unknown>).flatMap(([key, inner]) => this.pairLines(key, inner))
  }

  private pairLines(key: string, value: unknown): string[] {
    const keyText = this.keyText(key, false, false)
    if (!isNonEmptyCollection(value)) return [`${keyText}: ${this.inlineText(value)}`]
    const step = Array.isArray(value) ? this.style.seqIndent : this.style.step
    return [`${keyText}:`, ...this.blockLines(value).map((line) => indent(line, step))]
  }

  private itemLines(value: unknown, gap: number, type: Scalar.Type | undefined): string[] {
    const dash = `-${' '.repeat(gap)}`
    if (!isNonEmptyCollection(value)) return [dash + this.inlineText(value, type)]
    return this.blockLines(value).map((line, k) => (k === 0 ? dash + line : indent(line, gap + 1)))
  }

  /** A value on one line in block context: a scalar, `{}` or `[]`. */
  private inlineText(value: unknown, type?: Scalar.Type): string {
    if (Array.isArray(value)) return '[]'
    if (isMapping(value)) return '{}'
    return this.scalarText(value, type, false, false)
  }

  private flowEntries(node: YAMLMap, next: Record<string, unknown>, keys: string[], after: number): string[] {
    const quoted = this.flowQuoted(node)
    const column = this.json && this.style.jsonMultiLine ? (node.items.length === 0 ? this.expansion(node)!.inner : this.layout.flowEntryColumn(node, after)) : undefined
    const multiLine = column !== undefined && (node.items.length === 0 || this.layout.flowIsMultiLine(node))
    return keys.map((key) => `${this.keyText(key, quoted, true)}: ${this.flowValue(next[key], node, multiLine ? column : undefined)}`)
  }

  /**
   * A value in flow context. In a JSON document laid out one entry per line
   * (`column` given: the column of the line it starts on) as JSON.stringify
   * lays it out at the file's step; else on one line, JSON-quoted when the
   * collection's entries are.
   */
  private flowValue(value: unknown, collection: YAMLMap | YAMLSeq, column: number | undefined): string {
    if (column !== undefined && isNonEmptyCollection(value)) {
      return JSON.stringify(value, null, this.style.jsonStep).split('\n').map((line, k) => (k === 0 ? line : indent(line, column))).join(this.layout.eol)
    }
    return this.flowText(value, this.flowQuoted(collection))
  }

  private flowText(value: unknown, quoted: boolean): string {
    if (Array.isArray(value)) return `[${value.map((item) => this.flowText(item, quoted)).join(', ')}]`
    if (isMapping(value)) {
      return `{${Object.entries(value).map(([key, inner]) => `${this.keyText(key, quoted, true)}: ${this.flowText(inner, quoted)}`).join(', ')}}`
    }
    return this.scalarText(value, quoted ? Scalar.QUOTE_DOUBLE : Scalar.PLAIN, true, quoted)
  }

  /** New entries of a flow collection are double-quoted when its first one is (JSON-like YAML), or the file is JSON. */
  private flowQuoted(collection: YAMLMap | YAMLSeq): boolean {
    if (this.json) return true
    const first = collection.items[0]
    const scalar = isPair(first) ? first.key : first
    return isScalar(scalar) && scalar.type === Scalar.QUOTE_DOUBLE
  }

  private keyText(key: string, quoted: boolean, inFlow: boolean): string {
    // A plain `<<` would be a merge key.
    return this.scalarText(key, quoted || key === '<<' ? Scalar.QUOTE_DOUBLE : Scalar.PLAIN, inFlow, true)
  }

  /**
   * A scalar on one line, in the style asked for where the value allows it:
   * plain only when it reads back as this string (not `true`, `1.0`, `null`,
   * `0x1`, `yes` ...) and has nothing YAML would take as syntax (`: `, ` #`,
   * a leading `-` and space, `,` in flow); single-quoted without line
   * breaks; double-quoted otherwise, and always in JSON. Numbers, booleans
   * and null are written plain, or they would be strings.
   */
  private scalarText(value: unknown, type: Scalar.Type | undefined, inFlow: boolean, isKey: boolean): string {
    if (value === null) return 'null'
    if (typeof value === 'boolean') return String(value)
    if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value)
    const text = value as string
    if (this.json) return JSON.stringify(text)
    if ((type ?? Scalar.PLAIN) === Scalar.PLAIN) {
      const plain = yamlScalar(text, Scalar.PLAIN)
      if (!/^["']/.test(plain) && !plain.includes('\n') && !(inFlow && /[,[\]{}]/.test(text)) && !(isKey && plain.length > 1024)) return plain
    } else if (type === Scalar.QUOTE_SINGLE && !text.includes('\n')) {
      const single = yamlScalar(text, Scalar.QUOTE_SINGLE)
      if (single.startsWith("'") && !single.includes('\n')) return single
    }
    const double = yamlScalar(text, Scalar.QUOTE_DOUBLE)
    return double.includes('\n') ? JSON.stringify(text) : double
  }

  // ---- the file's style

  private detectStyle(root: YAMLMap): FileStyle {
    const layout = this.layout
    let step: number | undefined
    let seqIndent: number | undefined
    let dashGap: number | undefined
    let jsonStep: number | undefined
    const pending: Array<{ node: unknown; keyColumn: number | undefined }> = [{ node: root, keyColumn: undefined }]
    while (pending.length > 0 && (step === undefined || seqIndent === undefined || dashGap === undefined || (this.json && jsonStep === undefined))) {
      const { node, keyColumn } = pending.pop()!
      if (isMap(node) && node.items.length > 0) {
        if (node.flow) {
          if (jsonStep === undefined && layout.flowIsMultiLine(node)) {
            const found = layout.flowEntryColumn(node, 0) - layout.indentOf(layout.brackets(node)[0])
            if (found > 0) jsonStep = found
          }
        } else if (keyColumn !== undefined && step === undefined) {
          const found = layout.keyColumn(node) - keyColumn
          if (found > 0) step = found
        }
        for (const pair of [...node.items].reverse()) {
          const keyRange = rangeOf(pair.key)
          pending.push({ node: pair.value, keyColumn: node.flow || !keyRange ? undefined : layout.column(keyRange[0]) })
        }
      } else if (isSeq(node) && node.items.length > 0) {
        if (!node.flow) {
          const dash = layout.dashOf(node, 0)
          if (keyColumn !== undefined && seqIndent === undefined) seqIndent = Math.max(0, layout.column(dash) - keyColumn)
          const start = rangeOf(node.items[0])?.[0]
          if (dashGap === undefined && start !== undefined && layout.lineStart(start) === layout.lineStart(dash) && start > dash) dashGap = start - dash - 1
        }
        for (const item of [...node.items].reverse()) pending.push({ node: item, keyColumn: undefined })
      }
    }
    return {
      step: step ?? 2,
      // Kubernetes' own YAML (kubeadm, kubectl) does not indent sequences under their key.
      seqIndent: seqIndent ?? 0,
      dashGap: dashGap ?? 1,
      jsonStep: jsonStep ?? 2,
      jsonMultiLine: this.json && root.flow === true && root.items.length > 0 && layout.flowIsMultiLine(root),
    }
  }
}

/** A string as the yaml lib writes it in `type` (or the style it falls back to), without the document's line break. */
function yamlScalar(value: string, type: Scalar.Type): string {
  const scalar = new Scalar(value)
  scalar.type = type
  return stringify(scalar, SCALAR_OPTIONS).replace(/\n$/, '')
}

function scalarTypeOf(node: Scalar | undefined): Scalar.Type | undefined {
  const type = node?.type
  return type === Scalar.QUOTE_DOUBLE || type === Scalar.QUOTE_SINGLE || type === Scalar.PLAIN ? type : undefined
}

function indent(line: string, columns: number): string {
  return line === '' ? '' : ' '.repeat(columns) + line
}

function isCollection(value: unknown): boolean {
  return Array.isArray(value) || isMapping(value)
}

function isNonEmptyCollection(value: unknown): boolean {
  return Array.isArray(value) ? value.length > 0 : isMapping(value) && Object.keys(value).length > 0
}

/** Sorted indices as runs of consecutive ones: [first, last] each. */
function runs(indices: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const i of indices) {
    const last = out[out.length - 1]
    if (last && last[1] === i - 1) last[1] = i
    else out.push([i, i])
  }
  return out
}

/**
 * Which old item becomes which new one, as [old, new] pairs increasing in
 * both: equal items (the longest common subsequence), then in each gap
 * between them the same list item edited (same merge key), the same flag
 * (`--name=`) with another value, or a scalar at the same place in the gap.
 * The rest is removed or inserted whole.
 */
function align(old: unknown[], next: unknown[]): Array<[number, number]> {
  const a = old.map(canonical)
  const b = next.map(canonical)
  let head = 0
  while (head < a.length && head < b.length && a[head] === b[head]) head++
  let tail = 0
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++
  const equal: Array<[number, number]> = []
  for (let i = 0; i < head; i++) equal.push([i, i])
  equal.push(...commonSubsequence(a, b, head, a.length - tail, head, b.length - tail))
  for (let k = tail; k > 0; k--) equal.push([a.length - k, b.length - k])

  const matches: Array<[number, number]> = []
  let previous: [number, number] = [-1, -1]
  for (const match of [...equal, [a.length, b.length] as [number, number]]) {
    matches.push(...gapPairs(old, next, previous[0] + 1, match[0], previous[1] + 1, match[1]))
    if (match[0] < a.length) matches.push(match)
    previous = match
  }
  return matches
}

function commonSubsequence(a: string[], b: string[], aFrom: number, aTo: number, bFrom: number, bTo: number): Array<[number, number]> {
  const n = aTo - aFrom
  const m = bTo - bFrom
  if (n === 0 || m === 0 || n * m > LCS_MAX_CELLS) return []
  // lengths[i][j]: the longest common subsequence of a[aFrom + i ..] and b[bFrom + j ..].
  const width = m + 1
  const lengths = new Uint32Array((n + 1) * width)
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lengths[i * width + j] = a[aFrom + i] === b[bFrom + j] ? lengths[(i + 1) * width + j + 1]! + 1 : Math.max(lengths[(i + 1) * width + j]!, lengths[i * width + j + 1]!)
    }
  }
  const out: Array<[number, number]> = []
  let i = 0
  let j = 0
  while (i < n && j < m) {
    if (a[aFrom + i] === b[bFrom + j]) {
      out.push([aFrom + i, bFrom + j])
      i++
      j++
    } else if (lengths[(i + 1) * width + j]! >= lengths[i * width + j + 1]!) {
      i++
    } else {
      j++
    }
  }
  return out
}

function gapPairs(old: unknown[], next: unknown[], oldFrom: number, oldTo: number, newFrom: number, newTo: number): Array<[number, number]> {
  // Old items of the gap by merge key value and by flag name, each in order, so finding one is not a scan of the gap.
  const byIdentity = new Map<string, number[]>()
  for (let i = oldFrom; i < oldTo; i++) {
    const identity = identityOf(old[i])
    if (identity !== undefined) byIdentity.set(identity, [...(byIdentity.get(identity) ?? []), i])
  }
  const pairs: Array<[number, number]> = []
  let last = oldFrom - 1
  for (let j = newFrom; j < newTo; j++) {
    const value = next[j]
    const identity = identityOf(value)
    const candidates = identity === undefined ? undefined : byIdentity.get(identity)
    while (candidates && candidates.length > 0 && candidates[0]! <= last) candidates.shift()
    let found = candidates?.[0] ?? -1
    const same = oldFrom + (j - newFrom)
    if (found < 0 && !isCollection(value) && same > last && same < oldTo && !isCollection(old[same])) found = same
    if (found >= 0) {
      pairs.push([found, j])
      last = found
    }
  }
  return pairs
}

/** What makes an old and a new list item the same one: a mapping's merge key and its value, a scalar's flag name. */
function identityOf(value: unknown): string | undefined {
  if (Array.isArray(value)) return undefined
  if (isMapping(value)) {
    const key = mergeKeyOf(value)
    return key === undefined ? undefined : `${key}\u0000${typeof value[key]}\u0000${String(value[key])}`
  }
  const flag = flagName(value)
  return flag === undefined ? undefined : `--\u0000${flag}`
}

function mergeKeyOf(item: Record<string, unknown>): string | undefined {
  return MERGE_KEYS.find((key) => typeof item[key] === 'string' || typeof item[key] === 'number')
}

/** `--advertise-address` of `--advertise-address=10.0.0.1`. */
function flagName(value: unknown): string | undefined {
  return typeof value === 'string' ? /^(--?[A-Za-z0-9][\w.-]*)(=|$)/.exec(value)?.[1] : undefined
}

/** A value as a string, equal for equal values whatever their key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner: unknown) =>
    isMapping(inner) && !Array.isArray(inner) ? Object.fromEntries(Object.entries(inner).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) : inner,
  )
}

/** A copy of the target as JSON data (keys holding undefined left out, as JSON does), or a refusal naming what is not. */
function jsonData(value: unknown, path: Path): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (Array.isArray(value)) {
    const out: unknown[] = []
    for (let i = 0; i < value.length; i++) {
      if (value[i] === undefined) throw notJson('undefined', [...path, i])
      out.push(jsonData(value[i], [...path, i]))
    }
    return out
  }
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown
    if (proto === Object.prototype || proto === null) {
      // fromEntries defines the keys as own properties, a `__proto__` key included.
      return Object.fromEntries(Object.entries(value).flatMap(([key, inner]) => (inner === undefined ? [] : [[key, jsonData(inner, [...path, key])]])))
    }
  }
  throw notJson(typeof value === 'number' ? String(value) : typeof value === 'object' ? ((value as object).constructor?.name ?? 'an object') : typeof value, path)
}

function notJson(what: string, path: Path): ServiceError {
  return new ServiceError('WRITE_FAILED', `Cannot edit in place: the new manifest's ${describePath(path)} is not JSON data (${what}).`, ['manifest', ...path])
}

/** `spec.containers[0].image`, `metadata.annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"]`. */
function describePath(path: Path): string {
  if (path.length === 0) return 'the top level'
  return path
    .map((part, i) => (typeof part === 'number' ? `[${part}]` : /^[A-Za-z_][\w-]*$/.test(part) ? `${i === 0 ? '' : '.'}${part}` : `[${JSON.stringify(part)}]`))
    .join('')
}
