// Kubernetes strategic merge patch, applied as the API server, `kubectl
// patch` and kubeadm's --patches apply it: a port of
// k8s.io/apimachinery/pkg/util/strategicpatch/patch.go at v0.36.3
// (StrategicMergeMapPatchUsingLookupPatchMeta, i.e. mergeMap with
// MergeParallelList and IgnoreUnmatchedNulls). The Go functions keep their
// names in comments so the two can be read side by side; where this port
// differs, the comment says so and why. Go walks a patch's keys in random map
// order; here they are taken in the patch's own order.
//
// The Go code works on the typed object's JSON and hands its result to a typed
// decode (kubeadm decodes the patched bytes into a v1.Pod; the API server
// stores the typed object), which drops what no field holds: leftover
// directives (`$patch` in an element of a replaced list, `$retainKeys` in a new
// element ...) and null values. A static pod manifest is written as it is, so
// every value taken from the patch is settled here the same way (settle).

import { type PatchField, type PatchSchema, UNTAGGED } from '../pod-patch-schema.ts'
import { describePath, hasOwn, isJsonMap, type JsonMap, setKey } from './json-value.ts'

const DIRECTIVE_MARKER = '$patch'
const DELETE_DIRECTIVE = 'delete'
const REPLACE_DIRECTIVE = 'replace'
const MERGE_DIRECTIVE = 'merge'
const RETAIN_KEYS_DIRECTIVE = '$retainKeys'
const DELETE_FROM_PRIMITIVE_LIST_PREFIX = '$deleteFromPrimitiveList'
const SET_ELEMENT_ORDER_PREFIX = '$setElementOrder'

/** Why a patch cannot be applied, and where in the patch (keys and list indexes). */
export class StrategicPatchProblem extends Error {
  constructor(
    message: string,
    readonly at: readonly string[],
  ) {
    super(message)
  }
}

/**
 * Applies `patch` to `original` and returns the result. Both are changed in
 * place (pass copies); the result may share parts with either.
 */
export function strategicMergePatch(original: JsonMap, patch: JsonMap, schema: PatchSchema): JsonMap {
  return mergeMap(original, patch, schema, [])
}

const NO_FIELD: PatchField = {}

function fieldOf(schema: PatchSchema, key: string): PatchField {
  return hasOwn(schema.fields, key) ? schema.fields[key]! : NO_FIELD
}

type Kind = 'map' | 'list' | 'string' | 'number' | 'boolean' | 'null'

function kindOf(value: unknown): Kind {
  if (value === null || value === undefined) return 'null'
  if (Array.isArray(value)) return 'list'
  if (typeof value === 'object') return 'map'
  return typeof value as 'string' | 'number' | 'boolean'
}

function fail(message: string, at: readonly string[]): never {
  throw new StrategicPatchProblem(`${message} (at ${describePath(at)} in the patch).`, at)
}

/** Go's interface equality for the scalars a merge key holds: nil is nil whether null or absent. */
function sameValue(a: unknown, b: unknown): boolean {
  return a === b || ((a === null || a === undefined) && (b === null || b === undefined))
}

// mergeMap
function mergeMap(original: JsonMap | null, patch: JsonMap, schema: PatchSchema, at: readonly string[]): JsonMap {
  if (hasOwn(patch, DIRECTIVE_MARKER)) return handleDirectiveInMergeMap(patch[DIRECTIVE_MARKER], patch, at)
  const result = original ?? {}
  applyRetainKeysDirective(result, patch, at)
  mergePatchIntoOriginal(result, patch, schema, at)

  for (const patchKey of Object.keys(patch)) {
    const patchValue = patch[patchKey]
    const here = [...at, patchKey]
    // preprocessDeletionListForMerging
    const isDeleteList = patchKey.startsWith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
    const key = isDeleteList ? extractKey(patchKey, DELETE_FROM_PRIMITIVE_LIST_PREFIX, here) : patchKey

    if (patchValue === null || patchValue === undefined) {
      delete result[key]
      continue
    }
    if (!hasOwn(result, key)) {
      if (!isDeleteList) takePatchValue(result, key, discardNullValuesFromPatch(patchValue))
      continue
    }
    const originalValue = result[key]
    const kind = kindOf(originalValue)
    if (kind !== kindOf(patchValue)) {
      if (!isDeleteList) takePatchValue(result, key, discardNullValuesFromPatch(patchValue))
      continue
    }
    const field = fieldOf(schema, key)
    if (kind === 'map') {
      // mergeMapHandler
      const merged =
        field.strategy === REPLACE_DIRECTIVE
          ? settle(patchValue)
          : mergeMap(originalValue as JsonMap, patchValue as JsonMap, field.schema ?? UNTAGGED, here)
      setKey(result, key, merged)
    } else if (kind === 'list') {
      setKey(result, key, mergeSliceHandler(originalValue as unknown[], patchValue as unknown[], field, isDeleteList, here))
    } else {
      takePatchValue(result, key, patchValue)
    }
  }
  return result
}

function takePatchValue(result: JsonMap, key: string, patchValue: unknown): void {
  const [value, keep] = removeDirectives(patchValue)
  if (keep) setKey(result, key, settle(value))
  else delete result[key]
}

// handleDirectiveInMergeMap
function handleDirectiveInMergeMap(directive: unknown, patch: JsonMap, at: readonly string[]): JsonMap {
  if (directive === REPLACE_DIRECTIVE) {
    delete patch[DIRECTIVE_MARKER]
    return settle(patch) as JsonMap
  }
  // The key stays, holding an empty mapping: the Go code returns {} here, not a deletion.
  if (directive === DELETE_DIRECTIVE) return {}
  if (directive === MERGE_DIRECTIVE) {
    return fail('"$patch: merge" is not accepted on a mapping (Kubernetes refuses it too): a mapping is merged without it', [...at, DIRECTIVE_MARKER])
  }
  return fail(`Unknown $patch directive ${describeDirective(directive)}: it must be "delete" or "replace"`, [...at, DIRECTIVE_MARKER])
}

function describeDirective(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value) : `of type ${kindOf(value)}`
}

// applyRetainKeysDirective (MergeParallelList: the directive is applied, not kept)
function applyRetainKeysDirective(original: JsonMap, patch: JsonMap, at: readonly string[]): void {
  if (!hasOwn(patch, RETAIN_KEYS_DIRECTIVE)) return
  const retainKeys = patch[RETAIN_KEYS_DIRECTIVE]
  delete patch[RETAIN_KEYS_DIRECTIVE]
  const here = [...at, RETAIN_KEYS_DIRECTIVE]
  if (!Array.isArray(retainKeys)) fail('$retainKeys must be a list of the keys to keep', here)
  const retained = new Set<unknown>(retainKeys)
  for (const [key, value] of Object.entries(patch)) {
    if (value === null || key.startsWith(DELETE_FROM_PRIMITIVE_LIST_PREFIX) || key.startsWith(SET_ELEMENT_ORDER_PREFIX)) continue
    if (!retained.has(key)) fail(`The patch sets ${JSON.stringify(key)}, which its $retainKeys list does not keep`, here)
  }
  for (const key of Object.keys(original)) if (!retained.has(key)) delete original[key]
}

// mergePatchIntoOriginal: the $setElementOrder/<list> directives and their lists.
function mergePatchIntoOriginal(original: JsonMap, patch: JsonMap, schema: PatchSchema, at: readonly string[]): void {
  for (const key of Object.keys(patch)) {
    if (!key.startsWith(SET_ELEMENT_ORDER_PREFIX)) continue
    const setElementOrder = patch[key]
    delete patch[key]
    const here = [...at, key]
    if (!Array.isArray(setElementOrder)) fail(`${key} must be a list`, here)
    const originalKey = extractKey(key, SET_ELEMENT_ORDER_PREFIX, here)
    const foundOriginal = hasOwn(original, originalKey)
    const foundPatch = hasOwn(patch, originalKey)
    const originalList = original[originalKey]
    const patchList = patch[originalKey]
    if (foundOriginal && !Array.isArray(originalList)) fail(`${key} orders ${originalKey}, which is not a list in the pod`, here)
    if (foundPatch && !Array.isArray(patchList)) fail(`${key} orders ${originalKey}, which is not a list in the patch`, [...at, originalKey])
    const originalFieldValue = foundOriginal ? (originalList as unknown[]) : []
    const patchFieldValue = foundPatch ? (patchList as unknown[]) : []
    const field = fieldOf(schema, originalKey)
    const mergeKey = field.mergeKey ?? ''
    validatePatchWithSetOrderList(patchFieldValue, setElementOrder, mergeKey, here)

    let merged: unknown[]
    // What the merge does to the original list's array shows in the order below, as in Go (see GoSlice).
    let serverOrder = originalFieldValue
    if (foundOriginal && !foundPatch) {
      merged = originalFieldValue
    } else if (!foundOriginal && foundPatch) {
      merged = settle(removeDirectives(patchFieldValue)[0]) as unknown[]
    } else if (foundOriginal && foundPatch) {
      const shared = decodedSlice(originalFieldValue)
      merged = mergeSliceHandler(originalFieldValue, patchFieldValue, field, false, [...at, originalKey], shared)
      serverOrder = shared.backing.slice(0, shared.length)
    } else {
      continue
    }

    let patchItems: unknown[]
    let serverOnlyItems: unknown[]
    if (mergeKey === '') {
      // The Go code would hash each map here and panic; a list of maps needs a merge key to be ordered.
      if (merged.some((item) => typeof item === 'object' && item !== null)) {
        fail(`${key} orders a list of mappings that has no merge key`, here)
      }
      ;[patchItems, serverOnlyItems] = partitionPrimitivesByPresentInList(merged, setElementOrder)
    } else {
      ;[patchItems, serverOnlyItems] = partitionMapsByPresentInList(merged, setElementOrder, mergeKey, here)
    }
    const kind = sliceElementType([serverOrder, patchFieldValue], here)
    const both = normalizeElementOrder(patchItems, serverOnlyItems, setElementOrder, serverOrder, mergeKey, kind, here)
    setKey(original, originalKey, both)
    delete patch[originalKey]
  }
}

// validatePatchWithSetOrderList
function validatePatchWithSetOrderList(patchList: unknown[], setOrderList: unknown[], mergeKey: string, at: readonly string[]): void {
  if (setOrderList.length === 0 || patchList.length === 0) return
  const nonDeleteList = mergeKey === '' ? patchList : extractToDeleteItems(patchList, at)[0]
  let patchIndex = 0
  let setOrderIndex = 0
  while (patchIndex < nonDeleteList.length && setOrderIndex < setOrderList.length) {
    if (containsDirectiveMarker(nonDeleteList[patchIndex])) {
      patchIndex++
      continue
    }
    if (mergeKeyValueEqual(nonDeleteList[patchIndex], setOrderList[setOrderIndex], mergeKey, at)) patchIndex++
    setOrderIndex++
  }
  if (patchIndex < nonDeleteList.length && setOrderIndex >= setOrderList.length) {
    fail('The order of the patch list does not match its $setElementOrder list (every element of the patch must be in it, in the same order)', at)
  }
}

function containsDirectiveMarker(item: unknown): boolean {
  return isJsonMap(item) && hasOwn(item, DIRECTIVE_MARKER)
}

// mergeKeyValueEqual
function mergeKeyValueEqual(left: unknown, right: unknown, mergeKey: string, at: readonly string[]): boolean {
  if (mergeKey === '') return sameValue(left, right)
  if (!isJsonMap(left) || !isJsonMap(right)) fail(`Elements of a list merged by ${mergeKey} must be mappings`, at)
  if (!hasOwn(left, mergeKey) || !hasOwn(right, mergeKey)) fail(`An element has no ${mergeKey}, the list's merge key`, at)
  return sameValue(left[mergeKey], right[mergeKey])
}

// extractKey
function extractKey(key: string, prefix: string, at: readonly string[]): string {
  const slash = key.indexOf('/')
  if (slash === -1 || key.slice(0, slash) !== prefix) fail(`${JSON.stringify(key)} is not a directive: it must be ${prefix}/<field>`, at)
  return key.slice(slash + 1)
}

// mergeSliceHandler
function mergeSliceHandler(
  original: unknown[],
  patch: unknown[],
  field: PatchField,
  isDeleteList: boolean,
  at: readonly string[],
  shared?: GoSlice,
): unknown[] {
  // Delete lists are handled the same way whatever the field's strategy.
  if (field.strategy === MERGE_DIRECTIVE || isDeleteList) {
    return mergeSlice(shared ?? decodedSlice(original), patch, field.schema ?? UNTAGGED, field.mergeKey ?? '', isDeleteList, at)
  }
  return settle(patch) as unknown[]
}

// mergeSlice. `originalSlice` is the caller's list as a Go slice: what Go's appends and deletions do to its array.
function mergeSlice(originalSlice: GoSlice, patch: unknown[], schema: PatchSchema, mergeKey: string, isDeleteList: boolean, at: readonly string[]): unknown[] {
  const original = contents(originalSlice)
  if (original.length === 0 && patch.length === 0) return original
  const kind = sliceElementType([original, patch], at)
  let serverOrder: unknown[]
  let patchOrder = patch
  let merged: unknown[]
  if (kind !== 'map') {
    if (isDeleteList) return deleteFromSlice(original, patch)
    merged = deduplicateScalars(appendAll(originalSlice, patch))
    // Where the patch's values fit in the list's array, what deduplicating moved there shows in it.
    serverOrder = contents(originalSlice)
  } else {
    if (mergeKey === '') fail(`A list of mappings in ${schema.name} has no merge key, so it cannot be merged`, at)
    const [remaining, patchRest] = mergeSliceWithSpecialElements(originalSlice, patch, mergeKey, at)
    serverOrder = contents(remaining)
    patchOrder = patchRest
    merged = mergeSliceWithoutSpecialElements(remaining, patchOrder, patch, mergeKey, schema, at)
  }
  const [patchItems, serverOnlyItems] =
    mergeKey === '' ? partitionPrimitivesByPresentInList(merged, patchOrder) : partitionMapsByPresentInList(merged, patchOrder, mergeKey, at)
  return normalizeElementOrder(patchItems, serverOnlyItems, patchOrder, serverOrder, mergeKey, kind, at)
}

// mergeSliceWithSpecialElements: the elements holding $patch. Returns the list
// to merge into and the patch elements left to merge.
function mergeSliceWithSpecialElements(original: GoSlice, patch: unknown[], mergeKey: string, at: readonly string[]): [GoSlice, unknown[]] {
  const withoutSpecialElements: unknown[] = []
  let replace = false
  let result = original
  patch.forEach((item, i) => {
    const element = item as JsonMap
    if (!hasOwn(element, DIRECTIVE_MARKER)) {
      withoutSpecialElements.push(element)
      return
    }
    const here = [...at, String(i)]
    const directive = element[DIRECTIVE_MARKER]
    if (directive === DELETE_DIRECTIVE) {
      if (!hasOwn(element, mergeKey)) fail(`"$patch: delete" needs the element's ${mergeKey} (the list's merge key) to know which to delete`, here)
      result = deleteMatchingEntries(result, mergeKey, element[mergeKey], here)
    } else if (directive === REPLACE_DIRECTIVE) {
      // Go on, so that the other $patch elements are pruned.
      replace = true
    } else if (directive === MERGE_DIRECTIVE) {
      fail('"$patch: merge" is not accepted in a list (Kubernetes: "merging lists cannot yet be specified in the patch")', [...here, DIRECTIVE_MARKER])
    } else {
      fail(`Unknown $patch directive ${describeDirective(directive)}: it must be "delete" or "replace"`, [...here, DIRECTIVE_MARKER])
    }
  })
  if (replace) return [decodedSlice(settle(withoutSpecialElements) as unknown[]), []]
  return [result, withoutSpecialElements]
}

// deleteMatchingEntries
function deleteMatchingEntries(original: GoSlice, mergeKey: string, mergeValue: unknown, at: readonly string[]): GoSlice {
  let result = original
  for (;;) {
    const found = findMapInSliceBasedOnKeyValue(contents(result), mergeKey, mergeValue, at)
    if (!found) return result
    result = removeAt(result, found.index)
  }
}

// mergeSliceWithoutSpecialElements. `patchAsGiven` only locates errors.
function mergeSliceWithoutSpecialElements(
  original: GoSlice,
  patch: unknown[],
  patchAsGiven: unknown[],
  mergeKey: string,
  schema: PatchSchema,
  at: readonly string[],
): unknown[] {
  let merged = original
  for (const item of patch) {
    const element = item as JsonMap
    const here = [...at, String(patchAsGiven.indexOf(item))]
    if (!hasOwn(element, mergeKey)) fail(`The element has no ${mergeKey}, the merge key of this list`, here)
    const found = findMapInSliceBasedOnKeyValue(contents(merged), mergeKey, element[mergeKey], here)
    if (found) merged.backing[found.index] = mergeMap(found.map, element, schema, here)
    else merged = append(merged, settle(element))
  }
  return contents(merged)
}

// findMapInSliceBasedOnKeyValue
function findMapInSliceBasedOnKeyValue(list: unknown[], key: string, value: unknown, at: readonly string[]): { map: JsonMap; index: number } | null {
  for (let index = 0; index < list.length; index++) {
    const item = list[index]
    if (!isJsonMap(item)) fail(`Element ${index} of the pod's list is not a mapping, so the list cannot be merged by ${key}`, at)
    if (hasOwn(item, key) && sameValue(item[key], value)) return { map: item, index }
  }
  return null
}

// deleteFromSlice: $deleteFromPrimitiveList
function deleteFromSlice(current: unknown[], toDelete: unknown[]): unknown[] {
  const doomed = new Set(toDelete)
  return current.filter((value) => !doomed.has(value))
}

// deduplicateScalars, in the same (odd) way, on the slice's array: what it moves
// there shows through the caller's list, and normalizeElementOrder sorts the rest.
function deduplicateScalars(slice: GoSlice): unknown[] {
  const s = slice.backing
  let length = slice.length - 1
  for (let i = 0; i < length; i++) {
    for (let j = i + 1; j <= length; j++) {
      if (s[i] === s[j]) {
        s[j] = s[length]
        length--
        j--
      }
    }
  }
  return s.slice(0, length + 1)
}

// sliceElementType: every element of the same kind, and not a list.
function sliceElementType(lists: unknown[][], at: readonly string[]): Kind {
  let previous: Kind | null = null
  for (const list of lists) {
    for (const value of list) {
      const kind = kindOf(value)
      if (kind === 'null') fail('A list to merge holds a null element', at)
      if (previous === null) {
        if (kind === 'list') fail('Lists of lists cannot be merged', at)
        previous = kind
      } else if (kind !== previous) {
        fail(`The elements of the list to merge are not all of one type (${previous} and ${kind})`, at)
      }
    }
  }
  if (previous === null) fail('There are no elements in the lists to merge', at)
  return previous
}

// partitionPrimitivesByPresentInList
function partitionPrimitivesByPresentInList(original: unknown[], partitionBy: unknown[]): [unknown[], unknown[]] {
  const inPatch = new Set(partitionBy)
  const patch: unknown[] = []
  const serverOnly: unknown[] = []
  for (const value of original) (inPatch.has(value) ? patch : serverOnly).push(value)
  return [patch, serverOnly]
}

// partitionMapsByPresentInList
function partitionMapsByPresentInList(original: unknown[], partitionBy: unknown[], mergeKey: string, at: readonly string[]): [unknown[], unknown[]] {
  const patch: unknown[] = []
  const serverOnly: unknown[] = []
  for (const value of original) {
    if (!isJsonMap(value)) fail(`The list is merged by ${mergeKey}, but one of its elements is not a mapping`, at)
    if (!hasOwn(value, mergeKey)) fail(`An element of the list has no ${mergeKey}, the list's merge key`, at)
    const found = findMapInSliceBasedOnKeyValue(partitionBy, mergeKey, value[mergeKey], at)
    ;(found ? patch : serverOnly).push(value)
  }
  return [patch, serverOnly]
}

// extractToDeleteItems
function extractToDeleteItems(list: unknown[], at: readonly string[]): [unknown[], unknown[]] {
  const nonDelete: unknown[] = []
  const toDelete: unknown[] = []
  for (const value of list) {
    if (!isJsonMap(value)) fail('The elements of a list with a merge key must be mappings', at)
    ;(hasOwn(value, DIRECTIVE_MARKER) && value[DIRECTIVE_MARKER] === DELETE_DIRECTIVE ? toDelete : nonDelete).push(value)
  }
  return [nonDelete, toDelete]
}

// validateMergeKeyInLists
function validateMergeKeyInLists(mergeKey: string, lists: unknown[][], at: readonly string[]): void {
  for (const list of lists) {
    for (const item of list) {
      if (!isJsonMap(item)) fail(`The list is merged by ${mergeKey}, but one of its elements is not a mapping`, at)
      if (!hasOwn(item, mergeKey)) fail(`An element of the list has no ${mergeKey}, the list's merge key`, at)
    }
  }
}

// index: where valueToLookUp is in l (by merge key for mappings), or -1.
function indexOf(list: unknown[], valueToLookUp: unknown, mergeKey: string, kind: Kind): number {
  const valueOf = kind === 'map' ? (item: unknown) => (isJsonMap(item) ? item[mergeKey] : undefined) : (item: unknown) => item
  const wanted = valueOf(valueToLookUp)
  for (let i = 0; i < list.length; i++) if (sameValue(wanted, valueOf(list[i]))) return i
  return -1
}

// normalizeElementOrder
function normalizeElementOrder(
  patch: unknown[],
  serverOnly: unknown[],
  patchOrder: unknown[],
  serverOrder: unknown[],
  mergeKey: string,
  kind: Kind,
  at: readonly string[],
): unknown[] {
  const sortedPatch = normalizeSliceOrder(patch, patchOrder, mergeKey, kind, at)
  const sortedServerOnly = normalizeSliceOrder(serverOnly, serverOrder, mergeKey, kind, at)
  return mergeSortedSlice(sortedServerOnly, sortedPatch, serverOrder, mergeKey, kind)
}

// normalizeSliceOrder
function normalizeSliceOrder(toSort: unknown[], order: unknown[], mergeKey: string, kind: Kind, at: readonly string[]): unknown[] {
  let sorting = toSort
  let toDelete: unknown[] = []
  if (kind === 'map') {
    validateMergeKeyInLists(mergeKey, [toSort, order], at)
    ;[sorting, toDelete] = extractToDeleteItems(toSort, at)
  }
  // Go's less: by position in `order`, and "less" whenever either is not there.
  sliceStable(sorting, (a, b) => {
    const ia = indexOf(order, a, mergeKey, kind)
    if (ia >= 0) {
      const ib = indexOf(order, b, mergeKey, kind)
      if (ib >= 0) return ia < ib
    }
    return true
  })
  return [...sorting, ...toDelete]
}

// mergeSortedSlice: inserts each item of `left` (server-only) into `right` (from the patch),
// before the first one that comes after it in serverOrder; an item not there goes first.
function mergeSortedSlice(left: unknown[], right: unknown[], serverOrder: unknown[], mergeKey: string, kind: Kind): unknown[] {
  const less = (l: unknown, r: unknown): [boolean, boolean] => {
    const li = indexOf(serverOrder, l, mergeKey, kind)
    const ri = indexOf(serverOrder, r, mergeKey, kind)
    return li >= 0 && ri >= 0 ? [li < ri, true] : [false, false]
  }
  const size = left.length + right.length
  const s: unknown[] = []
  let i = 0
  let j = 0
  for (let k = 0; k < size; k++) {
    if (i >= left.length && j < right.length) {
      s.push(right[j++])
    } else if (j >= right.length && i < left.length) {
      s.push(left[i++])
    } else {
      const [isLess, foundBoth] = less(left[i], right[j])
      if (foundBoth && isLess) s.push(left[i++])
      else s.push(right[j++])
    }
  }
  return s
}

/**
 * Go's sort.SliceStable (insertion sort of blocks of 20, then SymMerge), in
 * place. Go's less above is not an ordering when an item is missing from the
 * order list, so only the same algorithm gives the same order then.
 */
function sliceStable(data: unknown[], lessValues: (a: unknown, b: unknown) => boolean): void {
  const less = (i: number, j: number) => lessValues(data[i], data[j])
  const swap = (i: number, j: number) => {
    const t = data[i]
    data[i] = data[j]
    data[j] = t
  }
  const insertionSort = (a: number, b: number) => {
    for (let i = a + 1; i < b; i++) for (let j = i; j > a && less(j, j - 1); j--) swap(j, j - 1)
  }
  const swapRange = (a: number, b: number, n: number) => {
    for (let i = 0; i < n; i++) swap(a + i, b + i)
  }
  const rotate = (a: number, m: number, b: number) => {
    let i = m - a
    let j = b - m
    while (i !== j) {
      if (i > j) {
        swapRange(m - i, m, j)
        i -= j
      } else {
        swapRange(m - i, m + j - i, i)
        j -= i
      }
    }
    swapRange(m - i, m, i)
  }
  const symMerge = (a: number, m: number, b: number): void => {
    if (m - a === 1) {
      let i = m
      let j = b
      while (i < j) {
        const h = (i + j) >>> 1
        if (less(h, a)) i = h + 1
        else j = h
      }
      for (let k = a; k < i - 1; k++) swap(k, k + 1)
      return
    }
    if (b - m === 1) {
      let i = a
      let j = m
      while (i < j) {
        const h = (i + j) >>> 1
        if (!less(m, h)) i = h + 1
        else j = h
      }
      for (let k = m; k > i; k--) swap(k, k - 1)
      return
    }
    const mid = (a + b) >>> 1
    const n = mid + m
    let start: number
    let r: number
    if (m > mid) {
      start = n - b
      r = mid
    } else {
      start = a
      r = m
    }
    const p = n - 1
    while (start < r) {
      const c = (start + r) >>> 1
      if (!less(p - c, c)) start = c + 1
      else r = c
    }
    const end = n - start
    if (start < m && m < end) rotate(start, m, end)
    if (a < start && start < mid) symMerge(a, start, mid)
    if (mid < end && end < b) symMerge(mid, end, b)
  }

  const n = data.length
  let blockSize = 20
  let a = 0
  let b = blockSize
  while (b <= n) {
    insertionSort(a, b)
    a = b
    b += blockSize
  }
  insertionSort(a, n)
  while (blockSize < n) {
    a = 0
    b = 2 * blockSize
    while (b <= n) {
      symMerge(a, a + blockSize, b)
      a = b
      b += 2 * blockSize
    }
    const m = a + blockSize
    if (m < n) symMerge(a, m, n)
    blockSize *= 2
  }
}

// removeDirectives: drops every mapping holding $patch; returns whether the value itself stays.
function removeDirectives(value: unknown): [unknown, boolean] {
  if (value === null || value === undefined) return [value, true]
  if (Array.isArray(value)) {
    const kept: unknown[] = []
    for (const item of value) {
      const [v, keep] = removeDirectives(item)
      if (keep) kept.push(v)
    }
    return [kept, true]
  }
  if (isJsonMap(value)) {
    if (hasOwn(value, DIRECTIVE_MARKER)) return [null, false]
    for (const key of Object.keys(value)) {
      const [v, keep] = removeDirectives(value[key])
      if (keep) setKey(value, key, v)
      else delete value[key]
    }
  }
  return [value, true]
}

// discardNullValuesFromPatch (in place; returns its argument)
function discardNullValuesFromPatch(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const item of value) discardNullValuesFromPatch(item)
  } else if (isJsonMap(value)) {
    for (const key of Object.keys(value)) {
      if (value[key] === null) delete value[key]
      else discardNullValuesFromPatch(value[key])
    }
  }
  return value
}

function isDirectiveKey(key: string): boolean {
  return key === DIRECTIVE_MARKER || key === RETAIN_KEYS_DIRECTIVE || key.startsWith(SET_ELEMENT_ORDER_PREFIX) || key.startsWith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

/**
 * A value from the patch as the typed decode after the Go code leaves it: no
 * directive keys and no null-valued keys in its mappings. In place.
 */
function settle(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const item of value) settle(item)
  } else if (isJsonMap(value)) {
    for (const key of Object.keys(value)) {
      if (value[key] === null || isDirectiveKey(key)) delete value[key]
      else settle(value[key])
    }
  }
  return value
}

// Go slices. The Go code reassigns, appends to and deletes from slices that
// share an array with the caller's list, and mergePatchIntoOriginal reads that
// list again afterwards: where the merge deleted an element and appended
// another, the caller's list shows the new one in the old one's place, and that
// list orders the result. To give the same order, the arrays are modelled here:
// a list decoded from JSON (encoding/json appends each element to a slice
// made empty) has the capacity Go's append growth leaves it.

interface GoSlice {
  /** The array, shared by every slice made from it; only the first `length` items are the slice's. */
  backing: unknown[]
  length: number
  capacity: number
}

function contents(slice: GoSlice): unknown[] {
  return slice.backing.slice(0, slice.length)
}

function decodedSlice(items: unknown[]): GoSlice {
  return { backing: items.slice(), length: items.length, capacity: decodedCapacity(items.length) }
}

/** append(s, v): in the same array while it has room. */
function append(slice: GoSlice, value: unknown): GoSlice {
  if (slice.length < slice.capacity) {
    slice.backing[slice.length] = value
    return { backing: slice.backing, length: slice.length + 1, capacity: slice.capacity }
  }
  const backing = contents(slice)
  backing.push(value)
  return { backing, length: slice.length + 1, capacity: grownCapacity(slice.capacity, slice.length + 1) }
}

function appendAll(slice: GoSlice, values: unknown[]): GoSlice {
  if (slice.length + values.length <= slice.capacity) {
    values.forEach((value, i) => (slice.backing[slice.length + i] = value))
    return { backing: slice.backing, length: slice.length + values.length, capacity: slice.capacity }
  }
  const backing = [...contents(slice), ...values]
  return { backing, length: backing.length, capacity: grownCapacity(slice.capacity, backing.length) }
}

/** append(s[:i], s[i+1:]...): the tail moves down in the same array. */
function removeAt(slice: GoSlice, index: number): GoSlice {
  slice.backing.copyWithin(index, index + 1, slice.length)
  return { backing: slice.backing, length: slice.length - 1, capacity: slice.capacity }
}

function decodedCapacity(length: number): number {
  let capacity = 0
  for (let n = 1; n <= length; n++) if (n > capacity) capacity = grownCapacity(capacity, n)
  return capacity
}

// runtime.growslice for a []interface{} (16-byte elements) in the Go releases
// Kubernetes is built with (1.22 and later: malloc headers on objects with
// pointers above 512 bytes), with the runtime's size classes.
const ELEMENT_BYTES = 16
const SIZE_CLASSES = [
  0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704,
  768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472,
  9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768,
]
const MAX_SMALL_SIZE = 32768
const MALLOC_HEADER_BYTES = 8
const PAGE_BYTES = 8192

function grownCapacity(oldCapacity: number, newLength: number): number {
  let capacity: number
  const double = oldCapacity * 2
  if (newLength > double) {
    capacity = newLength
  } else if (oldCapacity < 256) {
    capacity = double
  } else {
    capacity = oldCapacity
    while (capacity < newLength) capacity += Math.floor((capacity + 3 * 256) / 4)
  }
  return Math.floor(roundUpSize(capacity * ELEMENT_BYTES) / ELEMENT_BYTES)
}

function roundUpSize(size: number): number {
  if (size <= MAX_SMALL_SIZE - MALLOC_HEADER_BYTES) {
    const request = size > 512 ? size + MALLOC_HEADER_BYTES : size
    const sizeClass = SIZE_CLASSES.find((c) => c >= request) ?? MAX_SMALL_SIZE
    return sizeClass - (request - size)
  }
  return Math.ceil(size / PAGE_BYTES) * PAGE_BYTES
}
