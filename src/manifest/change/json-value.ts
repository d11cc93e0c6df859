// Copies of JSON data that a change may then edit freely. Iterative, so a
// deeply nested manifest cannot overflow the stack; checked, so what comes out
// is JSON (what a manifest file can hold), whatever came in.

export type JsonMap = Record<string, unknown>

export function isJsonMap(value: unknown): value is JsonMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function hasOwn(object: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key)
}

/**
 * Sets a key as a data property: an assignment to `__proto__` would change
 * the object's prototype instead of adding the key JSON text can hold.
 */
export function setKey(object: JsonMap, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
  else object[key] = value
}

/** A value that is not JSON, where it is. */
export class NotJson extends Error {
  constructor(
    message: string,
    readonly path: string[],
  ) {
    super(message)
  }
}

export interface CopyOptions {
  /**
   * Objects without a prototype, for code that looks keys up with `obj[key]`
   * (fast-json-patch): `toString` or `constructor` then is a key the document
   * has or has not, never one inherited from Object.prototype.
   */
  nullPrototype?: boolean
  /** Deeper values are refused (NotJson); unbounded by default. */
  maxDepth?: number
}

interface Pending {
  from: unknown
  into: JsonMap | unknown[]
  key: string | number
  parent: Pending | null
  depth: number
}

function pathOf(p: Pending | null): string[] {
  const path: string[] = []
  for (let at = p; at && at.parent; at = at.parent) path.push(String(at.key))
  return path.reverse()
}

/**
 * A deep copy made of plain objects, arrays and JSON scalars (key order
 * kept). Throws NotJson for anything else: a Map or Set (YAML !!omap, !!set),
 * binary data, a number JSON cannot write (.nan, .inf), undefined, or a value
 * nested deeper than maxDepth.
 */
export function copyJson(value: unknown, options: CopyOptions = {}): unknown {
  const { nullPrototype = false, maxDepth = Infinity } = options
  const holder: unknown[] = [undefined]
  const root: Pending = { from: value, into: holder, key: 0, parent: null, depth: 0 }
  const pending: Pending[] = [root]
  while (pending.length > 0) {
    const p = pending.pop()!
    const { from } = p
    let copy: unknown
    if (from === null || typeof from === 'string' || typeof from === 'boolean') {
      copy = from
    } else if (typeof from === 'number') {
      if (!Number.isFinite(from)) throw new NotJson(`${String(from)} is not a number JSON can hold`, pathOf(p))
      copy = from
    } else if (typeof from === 'object' && (p.depth > maxDepth)) {
      throw new NotJson(`it is nested more than ${maxDepth} levels deep`, pathOf(p))
    } else if (Array.isArray(from)) {
      const list: unknown[] = new Array<unknown>(from.length).fill(null)
      for (let i = from.length - 1; i >= 0; i--) pending.push({ from: from[i], into: list, key: i, parent: p, depth: p.depth + 1 })
      copy = list
    } else if (typeof from === 'object' && isPlainObject(from)) {
      const map: JsonMap = nullPrototype ? (Object.create(null) as JsonMap) : {}
      const keys = Object.keys(from)
      // Every key now, in order (a later write keeps its place), children after.
      for (const key of keys) setKey(map, key, null)
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!
        pending.push({ from: (from as JsonMap)[key], into: map, key, parent: p, depth: p.depth + 1 })
      }
      copy = map
    } else {
      throw new NotJson(`${describeNonJson(from)} is not JSON`, pathOf(p))
    }
    if (Array.isArray(p.into)) p.into[p.key as number] = copy
    else setKey(p.into, p.key as string, copy)
  }
  return holder[0]
}

function isPlainObject(value: object): boolean {
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function describeNonJson(value: unknown): string {
  if (value === undefined) return 'undefined'
  if (value instanceof Map) return 'a YAML ordered map (!!omap)'
  if (value instanceof Set) return 'a YAML set (!!set)'
  if (ArrayBuffer.isView(value)) return 'binary data (!!binary)'
  if (value instanceof Date) return 'a timestamp'
  return typeof value === 'object' ? `an object of class ${String((value as object).constructor?.name ?? 'unknown')}` : `a ${typeof value}`
}

const SHOWN_PATH_SEGMENTS = 12

/** "spec.containers[0].image" for ['spec', 'containers', '0', 'image']; a long one cut short. */
export function describePath(path: readonly string[]): string {
  let out = ''
  for (const segment of path.slice(0, SHOWN_PATH_SEGMENTS)) {
    if (/^(0|[1-9][0-9]*)$/.test(segment)) out += `[${segment}]`
    else out += out === '' ? segment : `.${segment}`
  }
  if (path.length > SHOWN_PATH_SEGMENTS) out += `…(${path.length} levels)`
  return out === '' ? 'the top level' : out
}
