// Manifest text -> object, refusing everything the kubelet would choke on and
// everything that could hurt this process (huge inputs, alias bombs).
//
// Everything goes through the `yaml` package, JSON included (YAML 1.2 is a JSON
// superset), so duplicate keys, aliases and error messages follow one set of rules.

import { parseAllDocuments, type Document, type DocumentOptions, type ParseOptions, type SchemaOptions, type ToJSOptions } from 'yaml'
import { ServiceError, ValidationErrors } from '../errors.ts'
import { decodeUtf8, hasLoneSurrogate } from './text.ts'
import { deepFreeze } from '../deep-freeze.ts'
import { RecentValues } from '../recent-values.ts'

/** The kubelet refuses manifest files larger than this (10 MiB). */
export const MAX_MANIFEST_BYTES = 10 * 1024 * 1024

/**
 * How far aliases may expand (the yaml lib multiplies alias uses by alias-node
 * count). A real Pod manifest uses a handful at most; a billion-laughs document
 * trips it after a few dozen steps instead of eating all memory.
 */
export const MAX_ALIAS_COUNT = 100

export type ManifestFormat = 'yaml' | 'json'

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
  }
}

/**
 * Parses a manifest the way a write must see it: one YAML or JSON document whose
 * top level is a mapping, valid UTF-8, at most maxBytes, no duplicate keys.
 * Throws ValidationErrors with one problem otherwise.
 */
export function parseManifest(input: string | Uint8Array, opts: ParseManifestOptions = {}): ParsedManifest {
  const field = opts.field ?? ['manifest']
  const fail = (message: string): never => {
    throw new ValidationErrors([new ServiceError('VALIDATION_FAILED', message, field)])
  }

  const decoded = decodeInput(input, opts.maxBytes ?? MAX_MANIFEST_BYTES)
  if (!decoded.ok) return fail(decoded.reason)
  const { text, bytes } = decoded
  const kept = recentManifests.get(text)
  if (kept) return { text, bytes, ...kept }

  const docs = parseAllDocuments(text, yamlOptions(true))
  const count = documentCount(docs)
  if (count === 0) return fail('The manifest has no YAML document in it (only comments or directives).')
  if (count > 1) {
    return fail(`The manifest holds ${count} YAML documents ('---' separated); a static pod manifest is exactly one Pod.`)
  }
  const value = documentValue((docs as Document[])[0]!)
  if (!value.ok) return fail(value.reason)
  if (!isMapping(value.value)) return fail(`The top level of the manifest must be a mapping (a Pod object), not ${describeValue(value.value)}.`)
  const format = detectFormat(text)
  const notJson = format === 'json' ? jsonSyntaxProblem(text) : null
  if (notJson) return fail(notJson)
  const parsed = { format, object: value.value }
  if (bytes.byteLength <= REMEMBERED_INPUT_MAX_BYTES) recentManifests.set(text, deepFreeze(parsed))
  return { text, bytes, ...parsed }
}

/** Inputs bigger than this are parsed every time: one huge file must not pin megabytes of parse trees. */
export const REMEMBERED_INPUT_MAX_BYTES = 256 * 1024

/**
 * Manifests parsed recently, by their text: a rollout validates one manifest
 * for every node. Only successes are kept (a failure's message names the
 * caller's field), frozen, since every caller gets the same object.
 */
const recentManifests = new RecentValues<string, Pick<ParsedManifest, 'format' | 'object'>>(64)

/** What the kubelet would read from a file; see readLikeKubelet. */
export type KubeletRead =
  | { ok: true; text: string; format: ManifestFormat; value: unknown; documentCount: number }
  | { ok: false; reason: string }

/**
 * Reads a file found in staticPodPath as the kubelet does, for linting: its YAML
 * reader (go-yaml via sigs.k8s.io/yaml) decodes only the FIRST document of a
 * multi-document file and lets a later duplicate key win. So neither makes a
 * file unparseable here; the caller reports the extra documents.
 */
export function readLikeKubelet(bytes: Uint8Array): KubeletRead {
  const decoded = decodeInput(bytes, MAX_MANIFEST_BYTES)
  if (!decoded.ok) return decoded
  const format = detectFormat(decoded.text)
  const notJson = format === 'json' ? jsonSyntaxProblem(decoded.text) : null
  if (notJson) return { ok: false, reason: notJson }
  const docs = parseAllDocuments(decoded.text, yamlOptions(false))
  const count = documentCount(docs)
  if (count === 0) return { ok: false, reason: 'It holds no YAML document (only comments or directives).' }
  const value = documentValue((docs as Document[])[0]!)
  if (!value.ok) return value
  return { ok: true, text: decoded.text, format, value: value.value, documentCount: count }
}

type Decoded = { ok: true; text: string; bytes: Buffer } | { ok: false; reason: string }

// Size is checked on the byte length before anything else, so a huge input
// costs no parsing.
function decodeInput(input: string | Uint8Array, maxBytes: number): Decoded {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength
  if (size > maxBytes) {
    return { ok: false, reason: `The manifest is ${size} bytes; the limit is ${maxBytes} bytes (the kubelet refuses larger files).` }
  }
  let text: string
  let bytes: Buffer
  if (typeof input === 'string') {
    if (hasLoneSurrogate(input)) {
      return { ok: false, reason: 'The manifest contains a lone UTF-16 surrogate, which has no UTF-8 encoding.' }
    }
    text = input
    bytes = Buffer.from(input, 'utf8')
  } else {
    const decoded = decodeUtf8(input)
    if (decoded === null) return { ok: false, reason: 'The manifest is not valid UTF-8.' }
    text = decoded
    bytes = Buffer.from(input) // a copy: the caller may reuse its buffer
  }
  if (text.trim().length === 0) return { ok: false, reason: 'The manifest is empty.' }
  return { ok: true, text, bytes }
}

// parseAllDocuments returns an EmptyStream (an empty array with extras) when
// there is no document at all.
function documentCount(docs: ReturnType<typeof parseAllDocuments>): number {
  return Array.isArray(docs) ? docs.length : 0
}

type DocumentValue = { ok: true; value: unknown } | { ok: false; reason: string }

function documentValue(doc: Document): DocumentValue {
  const [first, ...rest] = doc.errors
  if (first) {
    const more = rest.length > 0 ? ` (and ${rest.length} more error${rest.length > 1 ? 's' : ''})` : ''
    return { ok: false, reason: `${describeYamlError(first.code, firstLine(first.message))}${more}` }
  }
  try {
    // maxAliasCount is enforced here, while aliases are expanded.
    return { ok: true, value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) }
  } catch (err) {
    if (err instanceof ReferenceError) {
      return { ok: false, reason: `The manifest expands aliases too much (${err.message}); a Pod manifest needs no more than a few.` }
    }
    throw err
  }
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
export function detectFormat(text: string): ManifestFormat {
  return /^[^\S\ufeff]*\{/.test(text) ? 'json' : 'yaml'
}

/**
 * The kubelet hands brace-first input straight to its JSON decoder, so YAML
 * flow syntax there (`{kind: Pod}`) or anything after the closing brace makes
 * the file unreadable to it, although the yaml lib would accept it.
 */
function jsonSyntaxProblem(text: string): string | null {
  try {
    JSON.parse(text)
    return null
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err)
    return `The manifest starts with '{', so the kubelet reads it as JSON, but it is not valid JSON (${detail}).`
  }
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
