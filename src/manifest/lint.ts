// What the kubelet makes of a staticPodPath, file by file, and what in it is
// likely a mistake. Mirrors the kubelet's file source (pkg/kubelet/config/file.go):
// names starting with '.' are skipped, subdirectories are not entered, the
// remaining names are read in sorted order, each file must decode as one v1
// Pod that passes validation, and pods are then keyed by namespace/name.

import type { DirEntry, Finding, FindingCode, FoundPod } from './types.ts'
import { findApiReferences } from './api-references.ts'
import { sha256Hex } from './hash.ts'
import { describeValue, isMapping, MAX_MANIFEST_BYTES, PARSE_CACHE_MAX_BYTES, readLikeKubelet, type KubeletRead } from './parse.ts'
import { podIdentityOf } from './pod-fields.ts'
import { deepFreeze } from '../deep-freeze.ts'
import { RecentValues } from '../recent-values.ts'
import { isStrayFileName } from './stray.ts'
import { podKindProblems, podProblems } from './validate.ts'

export interface LintResult {
  /** The pods the kubelet runs from this directory, by file name. */
  pods: FoundPod[]
  findings: Finding[]
}

/**
 * Decisions, where the kubelet's behaviour leaves a choice:
 * - kind 'other' (socket, FIFO, device, dangling symlink): the kubelet logs and
 *   skips it; reported as UNPARSEABLE_FILE so an operator sees it.
 * - A file with several YAML documents: the kubelet's YAML reader decodes only
 *   the first, so the pod in it runs; it is listed, and reported as
 *   UNPARSEABLE_FILE because the other documents are silently ignored.
 * - Duplicate keys: the kubelet lets the later one win, so lint does too.
 * - Two files with the same namespace/name: the kubelet's file source stores
 *   pods in a map keyed by namespace/name, filled in sorted file-name order on
 *   every re-read (20 s), so the LAST file wins. That is how `x.yaml.bak` shadows
 *   `x.yaml`. Only the winner is listed; each loser gets DUPLICATE_POD.
 */
export function lintManifestDir(entries: DirEntry[], nodeName: string): LintResult {
  const findings: Finding[] = []
  const note = (code: FindingCode, fileName: string | null, message: string): void => {
    findings.push({ code, fileName, message })
  }
  const runnable: FoundPod[] = []

  for (const entry of sortedLikeKubelet(entries)) {
    const { name } = entry
    if (name.startsWith('.')) continue
    if (entry.kind === 'directory') {
      note('SUBDIRECTORY', name, `${name} is a directory: the kubelet does not look inside it, so manifests in it do not run.`)
      continue
    }
    if (entry.kind === 'other') {
      note('UNPARSEABLE_FILE', name, `${name} is not a regular file (a socket, FIFO, device or dangling symlink): the kubelet skips it.`)
      continue
    }
    if (isStrayFileName(name)) {
      note(
        'STRAY_FILE',
        name,
        `${name} looks like a backup or editor leftover. The kubelet reads every file here whose name does not start with '.', so if it holds a Pod, that pod runs and can shadow the real manifest. Move it out of staticPodPath.`,
      )
    }
    const pod = readPodFile(entry, nodeName, note)
    if (pod) runnable.push(pod)
  }

  return { pods: keepLastOfEachName(runnable, note), findings }
}

type Note = (code: FindingCode, fileName: string | null, message: string) => void

function readPodFile(entry: DirEntry, nodeName: string, note: Note): FoundPod | null {
  const { name } = entry
  const unparseable = (why: string): null => {
    note('UNPARSEABLE_FILE', name, `${name}: ${why} The kubelet runs nothing from this file.`)
    return null
  }
  if (!entry.bytes) {
    const limit = entry.size > MAX_MANIFEST_BYTES ? ` (the kubelet refuses files over ${MAX_MANIFEST_BYTES} bytes)` : ''
    return unparseable(`It is ${entry.size} bytes, too big to read${limit}.`)
  }
  const hash = sha256Hex(entry.bytes)
  const read = readOnce(hash, entry.bytes)
  if (!read.ok) return unparseable(read.reason)
  if (!isMapping(read.value)) return unparseable(`Its top level is ${describeValue(read.value)}, not a Pod.`)
  const object = read.value

  const kindProblems = podKindProblems(object)
  if (kindProblems.length > 0) {
    const what = typeof object['kind'] === 'string' ? `a ${object['kind']}` : 'no kind'
    const version = typeof object['apiVersion'] === 'string' ? ` (${object['apiVersion']})` : ''
    note('NOT_A_POD', name, `${name} holds ${what}${version}, not a v1 Pod: the kubelet runs nothing from it.`)
    return null
  }
  const problems = podProblems(object, nodeName)
  const identity = podIdentityOf(object, nodeName)
  const [first, ...rest] = problems
  if (first || !identity) {
    const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : ''
    return unparseable(`The kubelet rejects the Pod in it: ${first ? first.message : 'metadata.name is missing.'}${more}`)
  }

  const qualified = `${identity.namespace}/${identity.name}`
  if (read.documentCount > 1) {
    note(
      'UNPARSEABLE_FILE',
      name,
      `${name} holds ${read.documentCount} YAML documents: the kubelet runs the Pod ${qualified} from the first and silently ignores the other ${read.documentCount - 1}.`,
    )
  }
  const references = findApiReferences(object)
  if (references.length > 0) {
    const paths = references.map((ref) => ref.path.join('.')).join(', ')
    note(
      'API_REFERENCE_FORBIDDEN',
      name,
      `The Pod ${qualified} in ${name} refers to API objects (${paths}). ${references[0]!.message} The kubelet may start it, but it cannot fetch those objects and the API server will show no mirror pod.`,
    )
  }
  return { fileName: name, namespace: identity.namespace, name: identity.name, text: read.text, hash }
}

/**
 * Parses of files seen recently, by content hash: the result of a parse
 * depends on the bytes alone (node and file name only enter the checks after
 * it), and the same bytes are linted on every node of a rollout. Bounded by
 * what the reads hold too (texts and values, as parse.ts's own cache, whose
 * values these share), so large files are kept as well as small ones.
 */
const recentReads = new RecentValues<string, KubeletRead>(256, PARSE_CACHE_MAX_BYTES)

function readOnce(hash: string, bytes: Uint8Array): KubeletRead {
  const kept = recentReads.get(hash)
  if (kept) return kept
  const read = readLikeKubelet(bytes)
  recentReads.set(hash, deepFreeze(read), read.ok ? read.heldBytes : read.reason.length)
  return read
}

/** The last file of each namespace/name wins, as in the kubelet's store; losers are reported. */
function keepLastOfEachName(pods: FoundPod[], note: Note): FoundPod[] {
  const winner = new Map<string, FoundPod>()
  for (const pod of pods) winner.set(`${pod.namespace}/${pod.name}`, pod)
  for (const pod of pods) {
    const won = winner.get(`${pod.namespace}/${pod.name}`)!
    if (won === pod) continue
    note(
      'DUPLICATE_POD',
      pod.fileName,
      `${pod.fileName} and ${won.fileName} both define the pod ${pod.namespace}/${pod.name}. The kubelet runs the one in ${won.fileName} (the last in file-name order) and ignores ${pod.fileName}, except for a moment after ${pod.fileName} changes. Remove or rename the file you do not want.`,
    )
  }
  return pods.filter((pod) => winner.get(`${pod.namespace}/${pod.name}`) === pod)
}

// The kubelet sorts names with Go's sort.Strings: by UTF-8 bytes, which is not
// JavaScript's UTF-16 order for characters beyond U+FFFF.
function sortedLikeKubelet(entries: DirEntry[]): DirEntry[] {
  return [...entries].sort((a, b) => Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8')))
}
