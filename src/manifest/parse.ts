// Manifest text -> object, refusing everything the kubelet would choke on and
// everything that could hurt this process (huge inputs, alias bombs, inputs
// whose parse would take far more memory or time than their size suggests).
//
// YAML goes through the `yaml` package. JSON (brace-first input, which the
// kubelet reads as JSON) goes through JSON.parse when it is valid JSON: the
// same object as the `yaml` package makes of it (YAML 1.2 is a JSON superset),
// for a small part of the memory and time. Invalid JSON takes the YAML path, so
// its error messages are the ones it always had.
//
// Duplicate keys are found in one pass over the parse, not by the `yaml`
// package's uniqueKeys (which compares every key with every earlier one).

import {
  Composer,
  type CST,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  Parser,
  Schema,
  type CollectionTag,
  type Document,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type Tags,
  type ToJSOptions,
  type YAMLSeq,
} from 'yaml'
import { ServiceError, ValidationErrors } from '../errors.ts'
import { decodeUtf8, hasLoneSurrogate } from './text.ts'
import { RecentValues } from '../recent-values.ts'

/** The kubelet refuses manifest files larger than this (10 MiB). */
export const MAX_MANIFEST_BYTES = 10 * 1024 * 1024

/**
 * How far aliases may expand (the yaml lib multiplies alias uses by alias-node
 * count). A real Pod manifest uses a handful at most; a billion-laughs document
 * trips it after a few dozen steps instead of eating all memory.
 */
const MAX_ALIAS_COUNT = 100

/**
 * The most tokens (scalars and indicators such as `-`, `:`, `,`, `{`; not
 * whitespace or comments) a manifest may have, YAML or JSON. The `yaml`
 * package holds about 500 bytes of heap per token while it parses, whatever
 * the size of the text (10 MB of `[a,a,a,...]` would take over 4 GB), and the
 * value made of them up to about 70 (an empty object each). This bounds one
 * parse to about 200 MB while it runs and what it leaves to about 30 MB. A Pod
 * manifest has a few thousand tokens; 100,000 labels are 300,000.
 */
export const MAX_MANIFEST_TOKENS = 400_000

/** Heap a parsed value holds per token at most (an empty object per token, frozen): for the caches' weights. */
const HELD_BYTES_PER_TOKEN = 72

/**
 * Parses kept for the next caller, by text: a rollout validates one manifest
 * for every node, and every read of a node shapes its answer from the stored
 * text. Bounded by count and by what they hold (their texts and values, about),
 * whatever the size of each one, so a node holding 10 MB manifests costs no
 * parse per read.
 */
const PARSE_CACHE_MAX_ENTRIES = 64
export const PARSE_CACHE_MAX_BYTES = 32 * 1024 * 1024

type ManifestFormat = 'yaml' | 'json'

export interface ParsedManifest {
  /** Exactly the text given (or the bytes decoded), untouched. */
  text: string
  /** The UTF-8 bytes of `text`: what gets written and hashed. */
  bytes: Buffer
  format: ManifestFormat
  object: Record<string, unknown>
}

export interface ParseManifestOptions {
  maxBytes?: number
  /** Field path prefix for errors; ['manifest'] by default. */
  field?: string[]
}

export type YamlOptions = ParseOptions & DocumentOptions & SchemaOptions & ToJSOptions

export function yamlOptions(uniqueKeys: boolean): YamlOptions {
  return {
    uniqueKeys,
    maxAliasCount: MAX_ALIAS_COUNT,
    // The kubelet's YAML reader (go-yaml) honours `<<` merge keys; without this
    // a manifest using them would validate as a different object than it runs as.
    merge: true,
    prettyErrors: true,
    // The yaml lib would otherwise print warnings (e.g. for non-string keys) on stderr.
    logLevel: 'error',
    // !!omap with its duplicate check in one pass (the yaml lib's compares each key with all earlier ones).
    customTags: withLinearOmap,
  }
}

/**
 * Parses a manifest the way a write must see it: one YAML or JSON document whose
 * top level is a mapping, valid UTF-8, at most maxBytes, no duplicate keys.
 * Throws ValidationErrors with one problem otherwise. The object is frozen: it
 * may be shared with the next caller of the same text.
 */
export function parseManifest(input: string | Uint8Array, opts: ParseManifestOptions = {}): ParsedManifest {
  const field = opts.field ?? ['manifest']
  const fail = (message: string): never => {
    throw new ValidationErrors([new ServiceError('VALIDATION_FAILED', message, field)])
  }

  const decoded = decodeInput(input, opts.maxBytes ?? MAX_MANIFEST_BYTES)
  if (!decoded.ok) return fail(decoded.reason)
  const { text, byteLength } = decoded
  const parsed = analysed(text, byteLength)
  if (parsed.tooComplex) return fail(parsed.tooComplex)
  const count = parsed.documentCount
  if (count === 0) return fail('The manifest has no YAML document in it (only comments or directives).')
  if (count > 1) {
    return fail(`The manifest holds ${count} YAML documents ('---' separated); a static pod manifest is exactly one Pod.`)
  }
  if (parsed.writeProblem) return fail(parsed.writeProblem)
  const value = parsed.value
  if (!isMapping(value)) return fail(`The top level of the manifest must be a mapping (a Pod object), not ${describeValue(value)}.`)
  if (parsed.jsonProblem) return fail(parsed.jsonProblem)
  return withBytes({ text, format: parsed.format, object: value })
}

/**
 * The bytes are made when first asked for (most callers never do): encoding
 * the text again gives exactly the bytes it was decoded from, since those
 * were valid UTF-8, and a fresh Buffer that no caller shares.
 */
function withBytes(parsed: Omit<ParsedManifest, 'bytes'>): ParsedManifest {
  let bytes: Buffer | undefined
  return {
    ...parsed,
    get bytes(): Buffer {
      bytes ??= Buffer.from(parsed.text, 'utf8')
      return bytes
    },
  }
}

/** What the kubelet would read from a file; see readLikeKubelet. */
export type KubeletRead =
  | {
      ok: true
      text: string
      format: ManifestFormat
      value: unknown
      documentCount: number
      /** About how much heap the text and the value hold: the weight to keep them by in a cache. */
      heldBytes: number
    }
  | { ok: false; reason: string }

/**
 * Reads a file found in staticPodPath as the kubelet does, for linting: its YAML
 * reader (go-yaml via sigs.k8s.io/yaml) decodes only the FIRST document of a
 * multi-document file and lets a later duplicate key win. So neither makes a
 * file unparseable here; the caller reports the extra documents. The value is
 * frozen (shared with parseManifest's callers of the same text).
 */
export function readLikeKubelet(bytes: Uint8Array): KubeletRead {
  const decoded = decodeInput(bytes, MAX_MANIFEST_BYTES)
  if (!decoded.ok) return decoded
  const parsed = analysed(decoded.text, decoded.byteLength)
  if (parsed.jsonProblem) return { ok: false, reason: parsed.jsonProblem }
  if (parsed.tooComplex) return { ok: false, reason: parsed.tooComplex }
  if (parsed.documentCount === 0) return { ok: false, reason: 'It holds no YAML document (only comments or directives).' }
  if (parsed.readProblem) return { ok: false, reason: parsed.readProblem }
  return { ok: true, text: parsed.text, format: parsed.format, value: parsed.value, documentCount: parsed.documentCount, heldBytes: parsed.heldBytes }
}

/** What readDocument makes of a text. */
export type DocumentRead =
  | { ok: true; format: ManifestFormat; documentCount: number; value: unknown }
  | { ok: false; reason: string }

/**
 * Reads a text that is not a Pod (a patch, whose top level may be a list) as
 * strictly as parseManifest reads a manifest: valid UTF-8, at most maxBytes
 * and MAX_MANIFEST_TOKENS, aliases bounded, no duplicate keys. Brace-first
 * text that is not strict JSON is read as YAML, as kubeadm and kubectl read
 * patches. The value is the first document's (undefined when there is none),
 * frozen; the caller judges documentCount. Reasons speak of "the manifest".
 */
export function readDocument(input: string | Uint8Array, maxBytes = MAX_MANIFEST_BYTES, opts: { remember?: boolean } = {}): DocumentRead {
  const decoded = decodeInput(input, maxBytes)
  if (!decoded.ok) return decoded
  // remember: false for a text that holds secrets (a kubeconfig's client-key-data): not kept in the parse cache.
  const parsed = opts.remember === false ? analyse(decoded.text, decoded.byteLength) : analysed(decoded.text, decoded.byteLength)
  if (parsed.tooComplex) return { ok: false, reason: parsed.tooComplex }
  if (parsed.writeProblem) return { ok: false, reason: parsed.writeProblem }
  return { ok: true, format: parsed.format, documentCount: parsed.documentCount, value: parsed.value }
}

/**
 * Everything both readers need from one parse of a text; independent of the
 * caller (no field paths), so it can be kept for the next one.
 */
interface Analysis {
  /** The text parsed (the cache's key: a caller with an equal text may get this string). */
  text: string
  format: ManifestFormat
  /** Set when the text has too many tokens to parse; nothing else is then known. */
  tooComplex: string | null
  /** About how much heap the text and the value hold (what a cache weighs it by). */
  heldBytes: number
  documentCount: number
  /** Why the first document cannot be read at all (syntax error, alias bomb); null when it can. */
  readProblem: string | null
  /** Why a write refuses the first document: the read problem, or duplicate keys. */
  writeProblem: string | null
  /** The first document's value (frozen; later duplicate keys win) when readProblem is null. */
  value: unknown
  /** Set when the text starts with '{' but is not strict JSON. */
  jsonProblem: string | null
}

const recentParses = new RecentValues<string, Analysis>(PARSE_CACHE_MAX_ENTRIES, PARSE_CACHE_MAX_BYTES)

function analysed(text: string, byteLength: number): Analysis {
  const kept = recentParses.get(text)
  if (kept) return kept
  const parsed = Object.freeze(analyse(text, byteLength))
  recentParses.set(text, parsed, parsed.heldBytes)
  return parsed
}

function analyse(text: string, byteLength: number): Analysis {
  // V8 holds a string with any character above U+00FF at two bytes per character.
  const textBytes = byteLength === text.length ? text.length : 2 * text.length
  const format = detectFormat(text)
  if (format === 'json') {
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err)
      const jsonProblem = `The manifest starts with '{', so the kubelet reads it as JSON, but it is not valid JSON (${detail}).`
      // The YAML parse only words the other problems as they always were.
      return { ...analyseYaml(text, format, textBytes), jsonProblem }
    }
    const scan = scanJson(text)
    if (!scan) return { ...unparsed(text, format, textBytes), tooComplex: tooManyTokens('JSON') }
    const { duplicates } = scan
    const writeProblem = duplicates.length > 0 ? describeProblems([duplicateKeyProblem(text, duplicates[0]!)], duplicates.length - 1) : null
    return {
      ...unparsed(text, format, textBytes + scan.tokens * HELD_BYTES_PER_TOKEN),
      documentCount: 1,
      writeProblem,
      value: shareable(value),
    }
  }
  return analyseYaml(text, format, textBytes)
}

function unparsed(text: string, format: ManifestFormat, heldBytes: number): Analysis {
  return { text, format, tooComplex: null, heldBytes, documentCount: 0, readProblem: null, writeProblem: null, value: undefined, jsonProblem: null }
}

function tooManyTokens(format: string): string {
  return `The manifest has more than ${MAX_MANIFEST_TOKENS} ${format} tokens (keys, values, list items and other indicators); staticpod-api reads no more, to bound the memory one manifest takes. A Pod manifest has a few thousand.`
}

interface Problem {
  code: string
  /** First line of the message, with "at line L, column C" as the yaml lib words it. */
  message: string
  /** Where the yaml lib would have reported it while composing the document: it reports in that order. */
  order: number
}

class TooManyTokens extends Error {}

function analyseYaml(text: string, format: ManifestFormat, textBytes: number): Analysis {
  const lineCounter = new LineCounter()
  const parser = new Parser(lineCounter.addNewLine)
  const composer = new Composer(yamlOptions(false))
  const counted = { tokens: 0 }
  let docs: Document.Parsed[]
  try {
    docs = Array.from(composer.compose(countedTokens(parser, lineCounter, text, counted)))
  } catch (err) {
    if (!(err instanceof TooManyTokens)) throw err
    return { ...unparsed(text, format, textBytes), tooComplex: tooManyTokens('YAML') }
  }
  const base = unparsed(text, format, textBytes + counted.tokens * HELD_BYTES_PER_TOKEN)
  const doc = docs[0]
  if (!doc) return base
  const at = (offset: number) => lineCounter.linePos(offset)
  const syntax = doc.errors.map((e) => problemOf(e.code, e.message, e.pos[0], at))
  const duplicates = duplicateKeyProblems(doc, text, at)
  // In the order the yaml lib would have reported them all.
  const all = duplicates.length === 0 ? syntax : mergeInOrder(syntax, duplicates)
  let readProblem: string | null = null
  let value: unknown
  if (syntax.length > 0) {
    readProblem = describeProblems(syntax, syntax.length - 1)
  } else {
    try {
      // maxAliasCount is enforced here, while aliases are expanded.
      value = shareable(doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }))
    } catch (err) {
      if (!(err instanceof Error)) throw err
      // A ReferenceError is the alias limit; anything else the yaml lib throws here
      // is a document it cannot turn into a value (e.g. `<<: 1`, which go-yaml refuses too).
      readProblem =
        err instanceof ReferenceError
          ? `The manifest expands aliases too much (${err.message}); a Pod manifest needs no more than a few.`
          : `YAML error: ${firstLine(err.message).replace(/\.$/, '')}.`
    }
  }
  const writeProblem = all.length > 0 ? describeProblems(all, all.length - 1) : readProblem
  return { ...base, documentCount: docs.length, readProblem, writeProblem, value }
}

// parseAllDocuments's lexer -> parser feed, refusing past MAX_MANIFEST_TOKENS
// before the parse trees of that many tokens exist.
function* countedTokens(parser: Parser, lineCounter: LineCounter, text: string, counted: { tokens: number }): Generator<CST.Token> {
  lineCounter.addNewLine(0)
  let longQuoted = false
  for (const lexeme of new Lexer().lex(text)) {
    if (countsAsToken(lexeme) && ++counted.tokens > MAX_MANIFEST_TOKENS) throw new TooManyTokens()
    if (lexeme.length >= LONG_QUOTED && lexeme.charCodeAt(0) === 0x22) longQuoted = true
    for (const token of parser.next(lexeme)) {
      if (longQuoted) quickQuotedScalars(token)
      longQuoted = false
      yield token
    }
  }
  for (const token of parser.end()) {
    if (longQuoted) quickQuotedScalars(token)
    yield token
  }
}

/** Double-quoted scalars at least this long are read as single-quoted ones when that is the same. */
const LONG_QUOTED = 256

/**
 * The yaml lib builds a double-quoted string one character at a time (about
 * 33 bytes of heap and 0.2 µs per character: 2 s and 330 MB for 10 MB). A
 * double-quoted scalar without backslashes, line breaks and single quotes means
 * exactly what the same characters single-quoted do, which it reads with one
 * regular expression; so such tokens are retyped, with the same length and
 * offsets, before the document is composed.
 */
function quickQuotedScalars(root: CST.Token): void {
  const pending: unknown[] = [root]
  while (pending.length > 0) {
    const node = pending.pop()
    if (typeof node !== 'object' || node === null) continue
    if (Array.isArray(node)) {
      for (const child of node) pending.push(child)
      continue
    }
    const token = node as { type?: string; source?: unknown }
    if (token.type === 'double-quoted-scalar' && typeof token.source === 'string') {
      const source = token.source
      if (source.length >= LONG_QUOTED && source.endsWith('"') && !/[\\\n\r']/.test(source.slice(1, -1))) {
        token.type = 'single-quoted-scalar'
        token.source = `'${source.slice(1, -1)}'`
      }
      continue
    }
    for (const child of Object.values(node)) if (typeof child === 'object' && child !== null) pending.push(child)
  }
}

// Scalars and indicators count; whitespace, newlines, comments and the
// lexer's control characters (document, scalar and BOM marks) do not.
function countsAsToken(lexeme: string): boolean {
  const c = lexeme.charCodeAt(0)
  return !(Number.isNaN(c) || c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x23 || c === 0x02 || c === 0x1f || c === 0xfeff)
}

function problemOf(code: string, message: string, offset: number, at: (offset: number) => { line: number; col: number }, order = offset): Problem {
  // As the yaml lib's prettyErrors words it (errors without a position are left as they are).
  if (offset === -1) return { code, message: firstLine(message), order }
  const { line, col } = at(offset)
  return { code, message: firstLine(`${message} at line ${line}, column ${col}`), order }
}

function describeProblems(problems: Problem[], more: number): string {
  const first = problems[0]!
  const tail = more > 0 ? ` (and ${more} more error${more > 1 ? 's' : ''})` : ''
  return `${describeYamlError(first.code, first.message)}${tail}`
}

// Both lists in their order already; a duplicate first on a tie (the yaml lib checks a pair before what follows it).
function mergeInOrder(syntax: Problem[], duplicates: Problem[]): Problem[] {
  const merged: Problem[] = []
  let i = 0
  let j = 0
  while (i < syntax.length || j < duplicates.length) {
    if (j >= duplicates.length || (i < syntax.length && syntax[i]!.order < duplicates[j]!.order)) merged.push(syntax[i++]!)
    else merged.push(duplicates[j++]!)
  }
  return merged
}

/**
 * Keys repeated in a mapping, in one walk over the document: per mapping a
 * Set of its keys' scalar values. The same rule as the yaml lib's uniqueKeys
 * (scalar keys with equal values; NaN never equals NaN there), and so the same
 * answer for `<<` merge keys: each one is a value of its own, a duplicate of
 * nothing, and the keys it merges in are not compared with the mapping's own.
 * Each is placed where the yaml lib reports it: in a block mapping once the
 * key is read, in a flow mapping ({...}, JSON) once the value is.
 */
function duplicateKeyProblems(doc: Document.Parsed, text: string, at: (offset: number) => { line: number; col: number }): Problem[] {
  const problems: Problem[] = []
  const pending: unknown[] = [doc.contents]
  while (pending.length > 0) {
    const node = pending.pop()
    if (isMap(node)) {
      const seen = new Set<unknown>()
      node.items.forEach((pair, i) => {
        const key = pair.key
        if (isScalar(key)) {
          const keyValue = key.value
          if (seen.has(keyValue) && !(typeof keyValue === 'number' && Number.isNaN(keyValue))) {
            const keyRange = key.range ?? [-1, -1, -1]
            const valueEnd = rangeOf(pair.value)?.[1] ?? keyRange[1]
            const offset = node.flow ? keyRange[0] : blockKeyStart(text, rangeOf(node.items[i - 1]?.value), keyRange[0])
            problems.push(problemOf('DUPLICATE_KEY', 'Map keys must be unique', offset, at, node.flow ? valueEnd : keyRange[1]))
          } else {
            seen.add(keyValue)
          }
        }
        pending.push(pair.key, pair.value)
      })
    } else if (isSeq(node)) {
      for (const item of node.items) {
        if (isPair(item)) pending.push(item.key, item.value)
        else pending.push(item)
      }
    } else if (isPair(node)) {
      pending.push(node.key, node.value)
    }
    // Scalars and aliases hold no keys (an alias's target is walked where it is defined).
  }
  return problems.sort((a, b) => a.order - b.order)
}

function rangeOf(node: unknown): [number, number, number] | undefined {
  return (node as { range?: [number, number, number] } | null | undefined)?.range ?? undefined
}

/**
 * Where the yaml lib says a block mapping's key starts: where the tokens before
 * it start, which is the end of the previous value when that value is empty
 * (`a:`) and only a line break and indentation follow it.
 */
function blockKeyStart(source: string, previousValue: [number, number, number] | undefined, keyOffset: number): number {
  if (!previousValue || previousValue[0] !== previousValue[2] || keyOffset < previousValue[2]) return keyOffset
  let i = previousValue[2]
  if (source.charCodeAt(i) === 0x0d) i++
  if (source.charCodeAt(i) !== 0x0a) return keyOffset
  for (i++; i < keyOffset; i++) if (source.charCodeAt(i) !== 0x20) return keyOffset
  return previousValue[2]
}

function duplicateKeyProblem(text: string, offset: number): Problem {
  // LineCounter's rule: lines end at '\n'; columns count UTF-16 units from 1.
  let line = 1
  let lineStart = 0
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++
    lineStart = i + 1
  }
  return { code: 'DUPLICATE_KEY', message: `Map keys must be unique at line ${line}, column ${offset - lineStart + 1}`, order: offset }
}

/**
 * One pass over a text JSON.parse accepted: its tokens (strings and the
 * characters {}[],:), up to MAX_MANIFEST_TOKENS (null past that), and the
 * offsets of the keys that repeat an earlier key of the same object. Keys
 * compare by their decoded value, as JSON.parse (and the yaml lib) see them.
 * In the yaml lib's order: a repeated key is reported once its value has been
 * read, so after those inside it.
 */
export function scanJson(text: string): { tokens: number; duplicates: number[] } | null {
  const duplicates: number[] = []
  // Per open object its keys (made at the first) and the offset of its current key if that is a repeat (-1: not); null for arrays.
  const objects: Array<{ keys: Set<string> | null; repeat: number } | null> = []
  const endPair = (): void => {
    const top = objects[objects.length - 1]
    if (top && top.repeat !== -1) {
      duplicates.push(top.repeat)
      top.repeat = -1
    }
  }
  let tokens = 0
  let expectKey = false
  const n = text.length
  let i = 0
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      if (++tokens > MAX_MANIFEST_TOKENS) return null
      // The closing quote: the first one after an even number of backslashes.
      let end = text.indexOf('"', i + 1)
      for (;;) {
        let backslashes = 0
        for (let k = end - 1; text.charCodeAt(k) === 0x5c; k--) backslashes++
        if (backslashes % 2 === 0) break
        end = text.indexOf('"', end + 1)
      }
      const top = objects[objects.length - 1]
      if (expectKey && top) {
        const raw = text.slice(i + 1, end)
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw
        top.keys ??= new Set()
        if (top.keys.has(key)) top.repeat = i
        else top.keys.add(key)
        expectKey = false
      }
      i = end + 1
      continue
    }
    if (c === 0x7b || c === 0x5b || c === 0x7d || c === 0x5d || c === 0x2c || c === 0x3a) {
      if (++tokens > MAX_MANIFEST_TOKENS) return null
      if (c === 0x7b) {
        objects.push({ keys: null, repeat: -1 })
        expectKey = true
      } else if (c === 0x5b) {
        objects.push(null)
        expectKey = false
      } else if (c === 0x7d || c === 0x5d) {
        endPair()
        objects.pop()
        expectKey = false
      } else if (c === 0x2c) {
        endPair()
        const top = objects[objects.length - 1]
        expectKey = top !== undefined && top !== null
      }
    }
    i++
  }
  return { tokens, duplicates }
}

/**
 * Makes a parsed value fit to be shared: frozen all the way down (so a caller
 * that tried to change it fails at once instead of changing what the next one
 * gets; binary data from !!binary stays as it is, since a typed array cannot
 * be frozen), and its strings flat. The yaml lib builds a double-quoted string
 * one character at a time, which V8 keeps as a rope of ~32 bytes per character
 * until something flattens it: 10 MB of quoted env values would be held as
 * 240 MB. ToNumber flattens a string in place (as the flatstr package does).
 */
function shareable<T>(root: T): T {
  const pending: unknown[] = [root]
  while (pending.length > 0) {
    const node = pending.pop()
    if (typeof node !== 'object' || node === null || ArrayBuffer.isView(node) || Object.isFrozen(node)) continue
    Object.freeze(node)
    const children = node instanceof Map ? [...node.keys(), ...node.values()] : node instanceof Set ? [...node] : Object.values(node)
    for (const child of children) {
      if (typeof child === 'string') {
        if (child.length > 1) _flattened += Number(child) ? 1 : 0
      } else if (typeof child === 'object' && child !== null) {
        pending.push(child)
      }
    }
  }
  return root
}

let _flattened = 0 // written, never read: it uses ToNumber's result, so that no optimiser drops the call

// !!omap as the yaml lib defines it, with its duplicate-key check in one pass
// (the same rule: equal scalar values, by SameValueZero as Array#includes).
function withLinearOmap(tags: Tags): Tags {
  return [...tags.filter((tag) => typeof tag === 'string' || tag.tag !== OMAP_TAG), linearOmap]
}

const OMAP_TAG = 'tag:yaml.org,2002:omap'
const knownTags = new Schema({ resolveKnownTags: true }).knownTags
const libraryOmap = knownTags[OMAP_TAG] as CollectionTag & { nodeClass: new () => YAMLSeq }
const libraryPairs = knownTags['tag:yaml.org,2002:pairs'] as CollectionTag
const linearOmap: CollectionTag = {
  ...libraryOmap,
  resolve(value, onError, options) {
    const pairs = libraryPairs.resolve!(value, onError, options) as YAMLSeq
    const seen = new Set<unknown>()
    for (const item of pairs.items) {
      const key = isPair(item) ? item.key : undefined
      if (!isScalar(key)) continue
      if (seen.has(key.value)) onError(`Ordered maps must not include duplicate keys: ${String(key.value)}`)
      else seen.add(key.value)
    }
    return Object.assign(new libraryOmap.nodeClass(), pairs)
  },
}

type Decoded = { ok: true; text: string; byteLength: number } | { ok: false; reason: string }

// Size is checked on the byte length before anything else, so a huge input
// costs no parsing.
function decodeInput(input: string | Uint8Array, maxBytes: number): Decoded {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength
  if (size > maxBytes) {
    return { ok: false, reason: `The manifest is ${size} bytes; the limit is ${maxBytes} bytes (the kubelet refuses larger files).` }
  }
  let text: string
  if (typeof input === 'string') {
    if (hasLoneSurrogate(input)) {
      return { ok: false, reason: 'The manifest contains a lone UTF-16 surrogate, which has no UTF-8 encoding.' }
    }
    text = input
  } else {
    const decoded = decodeUtf8(input)
    if (decoded === null) return { ok: false, reason: 'The manifest is not valid UTF-8.' }
    text = decoded
  }
  if (text.trim().length === 0) return { ok: false, reason: 'The manifest is empty.' }
  return { ok: true, text, byteLength: size }
}

function describeYamlError(code: string, message: string): string {
  // The yaml lib's message already carries "at line L, column C".
  const text = message.replace(/:$/, '')
  return code === 'DUPLICATE_KEY' ? `Duplicate key: ${text}.` : `YAML syntax error: ${text}.`
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0] ?? s
}

/**
 * JSON when the first character that is not whitespace is '{': the kubelet's
 * rule (apimachinery's hasJSONPrefix). A BOM is not whitespace to it, so
 * BOM + '{' is YAML.
 */
function detectFormat(text: string): ManifestFormat {
  return /^[^\S\ufeff]*\{/.test(text) ? 'json' : 'yaml'
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
}

/** "a list", "the string \"x\"" ...: for messages about a value of the wrong type. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'empty (null)'
  if (Array.isArray(value)) return 'a list'
  if (value instanceof Uint8Array) return 'binary data'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${String(value)}`
  return 'a mapping'
}
