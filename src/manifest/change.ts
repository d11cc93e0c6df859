// What a change (the contract's StaticPodChangeInput) does to a Pod object:
// a patch as kubeadm's --patches and kubectl patch apply it, then images, then
// flags. Pure: the caller reads each node's manifest, applies the change to
// it, and validates and writes the result.
//
// A change is checked once (checkChange), before any node is read, and the
// checked form applied to every node's pod (applyChange): what can be wrong
// with the change itself is said once, and what can be wrong with it on one
// node (a container that node's pod does not have, a failing JSON patch test)
// is said for that node.

import { apply as applyMergePatch } from 'json-merge-patch'
import type { Operation } from 'fast-json-patch'
import { deepFreeze } from '../deep-freeze.ts'
import { quoteInput, ServiceError, ValidationErrors } from '../errors.ts'
import { sha256Hex } from './hash.ts'
import { describeValue, MAX_MANIFEST_BYTES, readDocument } from './parse.ts'
import { POD_PATCH_SCHEMA } from './pod-patch-schema.ts'
import { flagProblem, flagValueProblem, setFlag } from './change/flags.ts'
import { imageProblem, tagProblem, withTag } from './change/image.ts'
import { applyJsonPatch, jsonPatchProblems, MAX_JSON_PATCH_OPERATIONS } from './change/json-patch.ts'
import { copyJson, describePath, isJsonMap, type JsonMap, NotJson } from './change/json-value.ts'
import { strategicMergePatch, StrategicPatchProblem } from './change/strategic.ts'

export type PatchType = 'STRATEGIC' | 'MERGE' | 'JSON'

interface ImageChange {
  container: string
  image?: string | null
  tag?: string | null
}

interface FlagChange {
  container: string
  flag: string
  value?: string | null
}

export interface ManifestChange {
  /** YAML or JSON text in patchType's format. */
  patch?: string | null
  /** STRATEGIC when absent or null. */
  patchType?: PatchType | null
  images?: ImageChange[] | null
  flags?: FlagChange[] | null
}

export const MAX_IMAGE_CHANGES = 100
export const MAX_FLAG_CHANGES = 100
/** A Pod is about a dozen levels deep; a patch nested far deeper is not about a Pod. */
const MAX_PATCH_DEPTH = 100
const MAX_CONTAINER_NAME_LENGTH = 253

declare const checked: unique symbol

type CheckedPatch =
  | { readonly type: 'STRATEGIC' | 'MERGE'; readonly value: Readonly<JsonMap> }
  | { readonly type: 'JSON'; readonly operations: readonly Operation[] }

interface CheckedImage {
  readonly container: string
  /** Exactly one of image and tag. */
  readonly image: string | null
  readonly tag: string | null
}

interface CheckedFlag {
  readonly container: string
  readonly flag: string
  /** null removes the flag. */
  readonly value: string | null
}

/** A change whose own shape is right, its patch parsed; frozen, so one can be applied to many pods. Made only by checkChange. */
export interface CheckedChange {
  readonly [checked]: true
  readonly patch: CheckedPatch | null
  readonly images: readonly CheckedImage[]
  readonly flags: readonly CheckedFlag[]
}

type Field = Array<string | number>

class Problems {
  readonly list: ServiceError[] = []
  add(field: Field, message: string): void {
    this.list.push(new ServiceError('VALIDATION_FAILED', message, ['change', ...field]))
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw new ValidationErrors(this.list)
  }
}

/**
 * Checks the change's own shape before any node is read (the patch text is
 * parsed here, once). Throws ValidationErrors (VALIDATION_FAILED) listing every
 * problem, with field paths rooted at ['change', ...].
 */
export function checkChange(change: ManifestChange): CheckedChange {
  const problems = new Problems()
  if (!isJsonMap(change)) {
    problems.add([], `The change must be a mapping with patch, images or flags, not ${describeValue(change)}.`)
    problems.throwIfAny()
  }
  const patch = checkPatch(change.patch, change.patchType, problems)
  const images = checkList(change.images, 'images', MAX_IMAGE_CHANGES, problems, checkImage)
  const flags = checkList(change.flags, 'flags', MAX_FLAG_CHANGES, problems, checkFlag)
  // Two entries for one thing: which should win is not for staticpod-api to guess.
  duplicates(images, 'images', 'container', (i) => i.container, (i) => `Container ${quoteInput(i.container)}`, problems)
  duplicates(flags, 'flags', 'flag', (f) => `${f.container}\u0000${f.flag}`, (f) => `Flag ${f.flag} of container ${quoteInput(f.container)}`, problems)
  if (problems.list.length === 0 && patch === null && images.length === 0 && flags.length === 0) {
    problems.add([], 'The change changes nothing: give a patch, images or flags.')
  }
  problems.throwIfAny()
  return deepFreeze({ patch, images: images.filter((i) => i !== null), flags: flags.filter((f) => f !== null) }) as unknown as CheckedChange
}

const PATCH_TYPES: readonly PatchType[] = ['STRATEGIC', 'MERGE', 'JSON']

function checkPatch(text: unknown, patchType: unknown, problems: Problems): CheckedPatch | null {
  let type: PatchType = 'STRATEGIC'
  if (patchType !== undefined && patchType !== null) {
    if (typeof patchType !== 'string' || !(PATCH_TYPES as readonly string[]).includes(patchType)) {
      problems.add(['patchType'], `patchType must be one of ${PATCH_TYPES.join(', ')}, not ${typeof patchType === 'string' ? quoteInput(patchType) : describeValue(patchType)}.`)
      return null
    }
    type = patchType as PatchType
  }
  if (text === undefined || text === null) return null
  if (typeof text !== 'string') {
    problems.add(['patch'], `patch must be YAML or JSON text, not ${describeValue(text)}.`)
    return null
  }
  const value = readPatch(text, problems)
  if (value === undefined) return null
  const wrongShape = (what: string) => problems.add(['patch'], `A ${type} patch must be ${what}, not ${describeValue(value)}.`)
  if (type === 'JSON') {
    if (!Array.isArray(value)) {
      wrongShape('a list of operations ([{op: replace, path: /spec/..., value: ...}])')
      return null
    }
    if (value.length > MAX_JSON_PATCH_OPERATIONS) {
      problems.add(['patch'], `The JSON patch has ${value.length} operations; the limit is ${MAX_JSON_PATCH_OPERATIONS}.`)
      return null
    }
    const opProblems = jsonPatchProblems(value)
    for (const p of opProblems) problems.add(['patch', String(p.index)], p.message)
    return opProblems.length > 0 ? null : { type, operations: value as Operation[] }
  }
  if (!isJsonMap(value)) {
    wrongShape('a mapping (a part of a Pod: {spec: {containers: [...]}})')
    return null
  }
  const keyProblem = forbiddenKey(value, type)
  if (keyProblem) {
    problems.add(['patch', ...keyProblem.path], keyProblem.message)
    return null
  }
  return { type, value }
}

/** The patch's value (a copy, checked to be JSON), or undefined after adding the problem. */
function readPatch(text: string, problems: Problems): unknown {
  const say = (message: string) => {
    problems.add(['patch'], message)
    return undefined
  }
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > MAX_MANIFEST_BYTES) return say(`The patch is ${bytes} bytes; the limit is ${MAX_MANIFEST_BYTES} bytes.`)
  const read = readDocument(text)
  if (!read.ok) return say(read.reason.replace(/^The manifest\b/, 'The patch').replace('one manifest takes', 'one patch takes'))
  if (read.documentCount === 0) return say('The patch has no YAML document in it (only comments or directives).')
  if (read.documentCount > 1) {
    return say(`The patch holds ${read.documentCount} YAML documents ('---' separated); a change takes one patch (apply the others as changes of their own).`)
  }
  try {
    return copyJson(read.value, { maxDepth: MAX_PATCH_DEPTH })
  } catch (err) {
    if (!(err instanceof NotJson)) throw err
    return say(`The patch holds a value JSON cannot (at ${describePath(err.path)}: ${err.message}).`)
  }
}

/**
 * A key no Pod has and the patch code must not meet: `__proto__` anywhere;
 * in a MERGE patch also `constructor` and `prototype`, where json-merge-patch
 * would silently stop merging the rest of that mapping. In a STRATEGIC patch,
 * a `$patch` directive Kubernetes does not know.
 */
function forbiddenKey(root: JsonMap, type: PatchType): { path: string[]; message: string } | null {
  const pending: Array<{ value: unknown; path: string[] }> = [{ value: root, path: [] }]
  while (pending.length > 0) {
    const { value, path } = pending.pop()!
    if (Array.isArray(value)) {
      value.forEach((item, i) => pending.push({ value: item, path: [...path, String(i)] }))
      continue
    }
    if (!isJsonMap(value)) continue
    for (const key of Object.keys(value)) {
      const here = [...path, key]
      if (key === '__proto__' || (type === 'MERGE' && (key === 'constructor' || key === 'prototype'))) {
        return { path: here, message: `The patch has a key ${JSON.stringify(key)} (at ${describePath(here)}), which no Pod field has and which cannot be merged safely.` }
      }
      if (type === 'STRATEGIC' && key === '$patch' && value[key] !== 'delete' && value[key] !== 'replace') {
        const merge = value[key] === 'merge'
        return {
          path: here,
          message: merge
            ? `"$patch: merge" (at ${describePath(here)}) is not accepted (Kubernetes refuses it too): mappings are merged without it, and lists by their merge key.`
            : `$patch (at ${describePath(here)}) must be "delete" or "replace".`,
        }
      }
      pending.push({ value: value[key], path: here })
    }
  }
  return null
}

function checkList<T>(
  list: unknown,
  name: 'images' | 'flags',
  max: number,
  problems: Problems,
  checkOne: (item: JsonMap, field: Field, problems: Problems) => T | null,
): Array<T | null> {
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) {
    problems.add([name], `${name} must be a list, not ${describeValue(list)}.`)
    return []
  }
  if (list.length > max) {
    problems.add([name], `${name} has ${list.length} entries; the limit is ${max}.`)
    return []
  }
  // One entry per given one (null where refused), so that indexes stay those of the input.
  return list.map((item: unknown, i) => {
    if (isJsonMap(item)) return checkOne(item, [name, i], problems)
    problems.add([name, i], `${name}[${i}] must be a mapping with container and ${name === 'images' ? 'image or tag' : 'flag'}, not ${describeValue(item)}.`)
    return null
  })
}

function checkContainerName(value: unknown, field: Field, problems: Problems): string | null {
  if (typeof value !== 'string' || value.length === 0) {
    problems.add([...field, 'container'], `container is required: the name of one of the pod's containers.`)
    return null
  }
  if (value.length > MAX_CONTAINER_NAME_LENGTH) {
    problems.add([...field, 'container'], `container ${quoteInput(value)} is longer than any container name can be.`)
    return null
  }
  return value
}

function checkImage(item: JsonMap, field: Field, problems: Problems): CheckedImage | null {
  const container = checkContainerName(item['container'], field, problems)
  const image = item['image'] ?? null
  const tag = item['tag'] ?? null
  if ((image === null) === (tag === null)) {
    problems.add(field, image === null ? 'Give image (a full reference) or tag (only the tag).' : 'Give image or tag, not both: image is the full reference, tag only its tag.')
    return null
  }
  let ok = container !== null
  const [key, given, problemOf] = image !== null ? (['image', image, imageProblem] as const) : (['tag', tag, tagProblem] as const)
  const problem = typeof given === 'string' ? problemOf(given) : `must be a string, not ${describeValue(given)}`
  if (problem) {
    problems.add([...field, key], `${typeof given === 'string' ? `${key} ${quoteInput(given)}` : key} ${problem}.`)
    ok = false
  }
  return ok ? { container: container!, image: image as string | null, tag: tag as string | null } : null
}

function checkFlag(item: JsonMap, field: Field, problems: Problems): CheckedFlag | null {
  const container = checkContainerName(item['container'], field, problems)
  const flag = item['flag']
  const value = item['value'] ?? null
  let ok = container !== null
  if (typeof flag !== 'string') {
    problems.add([...field, 'flag'], `flag is required: a flag name with its dashes, e.g. --audit-log-maxage.`)
    ok = false
  } else {
    const problem = flagProblem(flag)
    if (problem) {
      problems.add([...field, 'flag'], `flag ${quoteInput(flag)} ${problem}.`)
      ok = false
    }
  }
  if (value !== null) {
    const problem = typeof value === 'string' ? flagValueProblem(value) : `must be a string (or null to remove the flag), not ${describeValue(value)}`
    if (problem) {
      problems.add([...field, 'value'], `value ${problem}.`)
      ok = false
    }
  }
  return ok ? { container: container!, flag: flag as string, value: value as string | null } : null
}

function duplicates<T>(
  items: Array<T | null>,
  name: string,
  field: string,
  keyOf: (item: T) => string,
  what: (item: T) => string,
  problems: Problems,
): void {
  const first = new Map<string, number>()
  items.forEach((item, i) => {
    if (item === null) return
    const key = keyOf(item)
    const earlier = first.get(key)
    if (earlier === undefined) first.set(key, i)
    else problems.add([name, i, field], `${what(item)} is already changed by ${name}[${earlier}]; give each once.`)
  })
}

/**
 * Applies patch, then images, then flags to a deep copy of `pod`; `pod` itself
 * is never changed. The result is plain JSON data. Throws ServiceError:
 * VALIDATION_FAILED (field ['change', ...]: a container the pod does not have,
 * a patch that does not fit this pod ...), or CONFLICT for a JSON patch test
 * that fails (field ['change', 'patch', <operation index>]).
 */
export function applyChange(pod: Record<string, unknown>, change: CheckedChange): Record<string, unknown> {
  let result = copyPod(pod)
  if (change.patch) result = applyPatch(result, change.patch)
  change.images.forEach((image, i) => applyImage(result, image, i))
  change.flags.forEach((flag, i) => applyFlag(result, flag, i))
  return result
}

function copyPod(pod: Record<string, unknown>): JsonMap {
  try {
    return copyJson(pod) as JsonMap
  } catch (err) {
    if (!(err instanceof NotJson)) throw err
    throw new ServiceError('VALIDATION_FAILED', `The manifest holds a value JSON cannot (at ${describePath(err.path)}: ${err.message}), so no change can be applied to it.`, ['change'])
  }
}

function applyPatch(pod: JsonMap, patch: CheckedPatch): JsonMap {
  let result: unknown
  if (patch.type === 'JSON') {
    result = applyJsonPatch(pod, patch.operations)
  } else if (patch.type === 'MERGE') {
    // json-merge-patch changes its target and takes the patch's lists as they are: both copies.
    result = applyMergePatch(pod, copyJson(patch.value))
  } else {
    try {
      result = strategicMergePatch(pod, copyJson(patch.value) as JsonMap, POD_PATCH_SCHEMA)
    } catch (err) {
      if (!(err instanceof StrategicPatchProblem)) throw err
      throw new ServiceError('VALIDATION_FAILED', `The strategic merge patch cannot be applied to this manifest: ${err.message}`, ['change', 'patch', ...err.at])
    }
  }
  if (!isJsonMap(result)) {
    throw new ServiceError('VALIDATION_FAILED', `The patch leaves ${describeValue(result)} where the Pod was.`, ['change', 'patch'])
  }
  return result
}

const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const

/** The container of that name: in containers, then initContainers, then ephemeralContainers. */
function findContainer(pod: JsonMap, name: string): JsonMap | null {
  const spec = pod['spec']
  if (!isJsonMap(spec)) return null
  for (const list of CONTAINER_LISTS) {
    const items = spec[list]
    if (!Array.isArray(items)) continue
    for (const item of items) if (isJsonMap(item) && item['name'] === name) return item
  }
  return null
}

function noSuchContainer(pod: JsonMap, name: string, field: Field): ServiceError {
  const spec = isJsonMap(pod['spec']) ? pod['spec'] : {}
  const groups: string[] = []
  for (const list of CONTAINER_LISTS) {
    const items = spec[list]
    const names = Array.isArray(items) ? items.flatMap((c) => (isJsonMap(c) && typeof c['name'] === 'string' ? [quoteInput(c['name'])] : [])) : []
    if (names.length > 0) groups.push(`${list} ${names.join(', ')}`)
  }
  const there = groups.length > 0 ? `it has ${groups.join('; ')}` : 'it has no containers'
  return new ServiceError('VALIDATION_FAILED', `The pod has no container ${quoteInput(name)}: ${there}.`, ['change', ...field, 'container'])
}

function applyImage(pod: JsonMap, change: CheckedImage, i: number): void {
  const field: Field = ['images', i]
  const container = findContainer(pod, change.container)
  if (!container) throw noSuchContainer(pod, change.container, field)
  if (change.image !== null) {
    container['image'] = change.image
    return
  }
  const current = container['image']
  if (typeof current !== 'string' || current.trim() === '') {
    throw new ServiceError('VALIDATION_FAILED', `Container ${quoteInput(change.container)} has no image whose tag could be changed; give image instead of tag.`, ['change', ...field, 'tag'])
  }
  const next = withTag(current, change.tag!)
  const problem = imageProblem(next)
  if (problem) {
    throw new ServiceError(
      'VALIDATION_FAILED',
      `Container ${quoteInput(change.container)} runs ${quoteInput(current)}, which is not an image reference a tag can be put on (the result ${problem}); give image instead of tag.`,
      ['change', ...field, 'tag'],
    )
  }
  container['image'] = next
}

function applyFlag(pod: JsonMap, change: CheckedFlag, i: number): void {
  const field: Field = ['flags', i]
  const container = findContainer(pod, change.container)
  if (!container) throw noSuchContainer(pod, change.container, field)
  const outcome = setFlag(container, change.flag, change.value)
  if (outcome.ok) return
  const name = quoteInput(change.container)
  switch (outcome.problem) {
    case 'not-a-list':
      throw new ServiceError('VALIDATION_FAILED', `Container ${name}'s ${outcome.list} is not a list, so its flags cannot be changed.`, ['change', ...field, 'container'])
    case 'ambiguous':
      throw new ServiceError(
        'VALIDATION_FAILED',
        `${change.flag} is given ${outcome.where.length} times in container ${name} (${outcome.where.join(', ')}), so which one to set is ambiguous; remove it (value null) first, or use a patch.`,
        ['change', ...field, 'flag'],
      )
    case 'shell':
      throw new ServiceError(
        'VALIDATION_FAILED',
        `Container ${name} runs a script through ${outcome.shell} -c, so ${change.flag} cannot be added: the shell would take it, not the program. Change the script with a patch.`,
        ['change', ...field, 'flag'],
      )
  }
}

/** Stable SHA-256 hex of the change as given (canonical JSON: keys sorted, undefined left out), to name a rollout of it. */
export function changeHash(change: ManifestChange): string {
  return sha256Hex(canonicalJson(change))
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .filter((k) => (value as JsonMap)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as JsonMap)[k])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

function labelsOf(pod: Record<string, unknown>): JsonMap {
  const metadata = pod['metadata']
  const labels = isJsonMap(metadata) ? metadata['labels'] : undefined
  return isJsonMap(labels) ? labels : {}
}

/** True when the Pod is an etcd member: label component: etcd, or a container named etcd. */
export function isEtcdPod(pod: Record<string, unknown>): boolean {
  if (labelsOf(pod)['component'] === 'etcd') return true
  const spec = pod['spec']
  const containers = isJsonMap(spec) ? spec['containers'] : undefined
  return Array.isArray(containers) && containers.some((c) => isJsonMap(c) && c['name'] === 'etcd')
}

