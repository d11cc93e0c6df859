// JSON patch (RFC 6902) through fast-json-patch, one operation at a time so
// that a failure names its operation. The library finds keys with `obj[key]`,
// which would see Object.prototype's (`toString`, `constructor`) as keys the
// document has; it works on a copy without prototypes instead.

import jsonpatch, { type Operation } from 'fast-json-patch'
import { ServiceError } from '../../errors.ts'
import { copyJson, isJsonMap, type JsonMap } from './json-value.ts'

export const MAX_JSON_PATCH_OPERATIONS = 1000

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test'])

/** A JSON pointer (RFC 6901): empty, or '/'-separated tokens where '~' only starts ~0 or ~1. */
function pointerProblem(pointer: unknown): string | null {
  if (typeof pointer !== 'string') return 'must be a JSON pointer string (e.g. /spec/containers/0/image)'
  if (pointer !== '' && !pointer.startsWith('/')) return 'must be empty or start with "/"'
  if (/~(?![01])/.test(pointer)) return 'has a "~" that is not "~0" (for ~) or "~1" (for /)'
  return null
}

/** Problems with the operations' own shape, each with the index of its operation. */
export function jsonPatchProblems(operations: unknown[]): Array<{ index: number; message: string }> {
  const problems: Array<{ index: number; message: string }> = []
  operations.forEach((operation, index) => {
    const say = (message: string) => problems.push({ index, message: `Operation ${index} of the JSON patch ${message}.` })
    if (!isJsonMap(operation)) return say('must be a mapping with op and path')
    const { op, path, from } = operation
    if (typeof op !== 'string' || !OPS.has(op)) {
      return say(`has op ${typeof op === 'string' ? JSON.stringify(op.slice(0, 40)) : 'missing or not a string'}; it must be one of add, remove, replace, move, copy, test`)
    }
    const pathProblem = pointerProblem(path)
    if (pathProblem) return say(`(${op}): its path ${pathProblem}`)
    if (op === 'move' || op === 'copy') {
      const fromProblem = pointerProblem(from)
      if (fromProblem) return say(`(${op} ${String(path)}): its from ${fromProblem}`)
      // RFC 6902 4.4: a value cannot be moved into itself.
      if (op === 'move' && (path as string).startsWith(`${from as string}/`)) return say(`(move ${String(path)}): from ${String(from)} is a parent of path`)
    }
    if ((op === 'add' || op === 'replace' || op === 'test') && !Object.prototype.hasOwnProperty.call(operation, 'value')) {
      return say(`(${op} ${String(path)}) has no value`)
    }
  })
  return problems
}

/**
 * Applies the operations to a copy of `document`; nothing of the document is
 * changed. A failing test is CONFLICT; any other failure VALIDATION_FAILED,
 * both at ['change', 'patch', <operation index>].
 */
export function applyJsonPatch(document: JsonMap, operations: readonly Operation[]): unknown {
  let doc = copyJson(document, { nullPrototype: true })
  operations.forEach((given, index) => {
    // The library's test compares with the value's own hasOwnProperty, so a test value keeps its prototype.
    const operation = copyJson(given, { nullPrototype: given.op !== 'test' }) as Operation
    try {
      doc = jsonpatch.applyOperation(doc, operation, true, true, true, index).newDocument
    } catch (err) {
      throw operationError(err, operation, index)
    }
  })
  return copyJson(doc)
}

function operationError(err: unknown, operation: Operation, index: number): ServiceError {
  const field = ['change', 'patch', String(index)]
  const path = JSON.stringify(operation.path)
  const named = `Operation ${index} of the JSON patch (${operation.op} ${path})`
  if (err instanceof jsonpatch.JsonPatchError) {
    if (err.name === 'TEST_OPERATION_FAILED') {
      return new ServiceError('CONFLICT', `${named} failed: the manifest holds another value at ${path}. Nothing was written.`, field)
    }
    return new ServiceError('VALIDATION_FAILED', `${named} cannot be applied: ${reasonOf(err.name, operation)}.`, field)
  }
  if (err instanceof TypeError && /__proto__|prototype/.test(err.message)) {
    return new ServiceError('VALIDATION_FAILED', `${named} cannot be applied: it reaches __proto__ or constructor/prototype, which no Pod field is.`, field)
  }
  // Anything else the library trips over on a document it does not expect (RangeError on a deep value ...).
  return new ServiceError('VALIDATION_FAILED', `${named} cannot be applied to this manifest.`, field)
}

function reasonOf(name: string, operation: Operation): string {
  const from = 'from' in operation ? JSON.stringify(operation.from) : ''
  switch (name) {
    case 'OPERATION_PATH_UNRESOLVABLE':
      return `the manifest has no value at ${JSON.stringify(operation.path)}`
    case 'OPERATION_FROM_UNRESOLVABLE':
      return `the manifest has no value at its from, ${from}`
    case 'OPERATION_PATH_CANNOT_ADD':
      return 'the mapping or list it adds to does not exist (add creates only the last key of its path)'
    case 'OPERATION_PATH_ILLEGAL_ARRAY_INDEX':
      return 'its path goes into a list with something other than an index or "-"'
    case 'OPERATION_VALUE_OUT_OF_BOUNDS':
      return 'its index is past the end of the list'
    default:
      return `the operation is not valid (${name})`
  }
}
