// Restarting a static pod = changing its manifest, because the kubelet derives
// the pod UID from the file content. The smallest change that means "restart"
// is one annotation. The file is edited as text, not re-serialised: the yaml
// lib's output would reindent kubeadm's non-indented sequences, drop or move
// comments and requote strings, and an operator diffing revisions must see
// exactly one changed line.

import { isDeepStrictEqual } from 'node:util'
import { isMap, isScalar, parseDocument, Scalar, type Pair, type YAMLMap } from 'yaml'
import { ServiceError } from '../errors.ts'
import { isMapping, parseManifest, yamlOptions } from './parse.ts'

export const RESTART_ANNOTATION = 'staticpod-api/restartedAt'

interface TextEdit {
  /** Replace text[start, end) by `insert`. */
  start: number
  end: number
  insert: string
}

/**
 * Sets metadata.annotations["staticpod-api/restartedAt"] to timestamp and
 * changes nothing else in the text. Throws ValidationErrors when the text is
 * not a valid manifest, VALIDATION_FAILED when metadata or annotations are not
 * mappings, WRITE_FAILED if the edit would change anything else (a bug).
 */
export function setRestartAnnotation(text: string, timestamp: string): string {
  const original = parseManifest(text)
  const edit = planEdit(text, timestamp)
  const edited = text.slice(0, edit.start) + edit.insert + text.slice(edit.end)
  assertOnlyAnnotationChanged(original.object, edited, timestamp)
  return edited
}

function planEdit(text: string, timestamp: string): TextEdit {
  // parseManifest (just before) has found any duplicate key in linear time; the yaml lib's uniqueKeys is quadratic.
  const doc = parseDocument(text, yamlOptions(false))
  const root = doc.contents
  const metadata = isMap(root) ? pairNamed(root, 'metadata')?.value : undefined
  if (!isMap(metadata)) {
    throw new ServiceError('VALIDATION_FAILED', 'The manifest has no metadata mapping to put the restart annotation in.', ['manifest', 'metadata'])
  }
  const layout = new Layout(text)
  const value = JSON.stringify(timestamp)
  const annotationsPair = pairNamed(metadata, 'annotations')

  if (!annotationsPair) {
    if (metadata.flow) return layout.flowInsert(metadata, `"annotations": {${JSON.stringify(RESTART_ANNOTATION)}: ${value}}`)
    // One nesting step as the file does it: metadata's keys relative to `metadata:` itself.
    const metadataKey = pairNamed(root as YAMLMap, 'metadata')!
    const step = Math.max(layout.keyColumn(metadata) - layout.column(layout.keyStart(metadataKey)), 1)
    return layout.blockAppend(metadata, ['annotations:', `${' '.repeat(step)}${RESTART_ANNOTATION}: ${value}`])
  }

  const annotations = annotationsPair.value
  if (isMap(annotations)) {
    const existing = pairNamed(annotations, RESTART_ANNOTATION)
    if (existing) return layout.replaceValue(existing, value)
    if (annotations.flow) return layout.flowInsert(annotations, `${JSON.stringify(RESTART_ANNOTATION)}: ${value}`)
    return layout.blockAppend(annotations, [`${RESTART_ANNOTATION}: ${value}`])
  }
  if (annotations === null || (isScalar(annotations) && annotations.value === null)) {
    // `annotations:` with nothing (or null, ~) after it.
    return layout.replaceValue(annotationsPair, `{${JSON.stringify(RESTART_ANNOTATION)}: ${value}}`)
  }
  throw new ServiceError('VALIDATION_FAILED', 'metadata.annotations must be a mapping.', ['manifest', 'metadata', 'annotations'])
}

function pairNamed(map: YAMLMap, key: string): Pair | undefined {
  return map.items.find((pair) => isScalar(pair.key) && pair.key.value === key)
}

type Range = [number, number, number]

function rangeOf(node: unknown): Range | undefined {
  const range = (node as { range?: Range | null } | null)?.range
  return range ?? undefined
}

/** Offsets, columns and line ends of the source text. */
class Layout {
  readonly eol: string

  constructor(readonly text: string) {
    this.eol = text.includes('\r\n') ? '\r\n' : '\n'
  }

  column(offset: number): number {
    return offset - (this.text.lastIndexOf('\n', offset - 1) + 1)
  }

  keyStart(pair: Pair): number {
    const range = rangeOf(pair.key)
    if (!range) throw cannotEdit('a key without a position')
    return range[0]
  }

  /** Indentation of a block map: the column of its first key. */
  keyColumn(map: YAMLMap): number {
    const first = map.items[0]
    if (!first) throw cannotEdit('an empty block mapping')
    return this.column(this.keyStart(first))
  }

  /** Where the last entry of a map ends (its value, or its key when it has no value). */
  private entryEnd(pair: Pair): number {
    const range = rangeOf(pair.value) ?? rangeOf(pair.key)
    if (!range) throw cannotEdit('an entry without a position')
    return range[1]
  }

  replaceValue(pair: Pair, replacement: string): TextEdit {
    const range = rangeOf(pair.value)
    if (!range) throw cannotEdit('a value without a position')
    const [start, end] = range
    // An empty value (`key:`) sits right after the colon and needs a space.
    return start === end ? { start, end, insert: ` ${replacement}` } : { start, end, insert: replacement }
  }

  /** Adds lines after the last entry of a block map, at its key indentation. */
  blockAppend(map: YAMLMap, lines: string[]): TextEdit {
    const indent = ' '.repeat(this.keyColumn(map))
    const last = map.items[map.items.length - 1]!
    const end = this.entryEnd(last)
    const body = lines.map((line) => indent + line)
    const value = last.value
    if (isScalar(value) && (value.type === Scalar.BLOCK_LITERAL || value.type === Scalar.BLOCK_FOLDED) && this.text[end - 1] === '\n') {
      // A block scalar's range ends after its own line break (and any kept blank lines).
      return { start: end, end, insert: body.map((line) => line + this.eol).join('') }
    }
    // After the end of the line the entry ends on, so a trailing comment stays where it is.
    const at = this.lineEnd(this.lastNonSpaceBefore(end))
    return { start: at, end: at, insert: body.map((line) => this.eol + line).join('') }
  }

  /** Adds `entry` to a flow map ({...}, JSON): on its own line when the map is laid out one entry per line. */
  flowInsert(map: YAMLMap, entry: string): TextEdit {
    const range = rangeOf(map)
    const close = range ? range[1] - 1 : -1
    if (this.text[close] !== '}') throw cannotEdit('a flow mapping without a closing brace')
    const last = map.items[map.items.length - 1]
    if (!last) return { start: close, end: close, insert: entry }
    const end = this.entryEnd(last)
    const between = this.text.slice(end, close)
    if (between.includes('\n')) {
      const indent = ' '.repeat(this.column(this.keyStart(last)))
      return { start: end, end, insert: `,${this.eol}${indent}${entry}` }
    }
    return { start: end, end, insert: `, ${entry}` }
  }

  private lastNonSpaceBefore(offset: number): number {
    let i = offset - 1
    while (i > 0 && /\s/.test(this.text[i]!)) i--
    return i
  }

  /** Offset of the line break (\n or \r\n) ending the line that holds `offset`, or the text's end. */
  private lineEnd(offset: number): number {
    const newline = this.text.indexOf('\n', offset)
    if (newline === -1) return this.text.length
    return this.text[newline - 1] === '\r' ? newline - 1 : newline
  }
}

function cannotEdit(what: string): ServiceError {
  return new ServiceError('WRITE_FAILED', `Cannot set the restart annotation: the manifest has ${what} where it was expected.`)
}

// The guarantee callers rely on: the edited text means the same object plus the
// one annotation. Cheap next to a write, so it is always checked.
function assertOnlyAnnotationChanged(before: Record<string, unknown>, editedText: string, timestamp: string): void {
  let after: Record<string, unknown>
  try {
    after = parseManifest(editedText).object
  } catch {
    throw new ServiceError('WRITE_FAILED', 'Setting the restart annotation produced an unparseable manifest; nothing was written.')
  }
  const metadata = before['metadata'] as Record<string, unknown>
  const annotations = isMapping(metadata['annotations']) ? metadata['annotations'] : {}
  const expected = { ...before, metadata: { ...metadata, annotations: { ...annotations, [RESTART_ANNOTATION]: timestamp } } }
  if (!isDeepStrictEqual(after, expected)) {
    throw new ServiceError('WRITE_FAILED', 'Setting the restart annotation would have changed more than that annotation; nothing was written.')
  }
}
