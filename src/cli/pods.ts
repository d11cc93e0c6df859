// What a static pod's runtime state reads as in a table (READY, STATUS,
// RESTARTS), in kubectl's words where it has them, and label selectors over
// a pod's own labels (get pods -l), as kubectl writes them.

import type { PodRow } from './queries.ts'
import { usage } from './errors.ts'

/** A crash loop, as the service's rollout wait and diagnosis judge it. */
const CRASH_LOOP_RESTARTS = 3

export function readyColumn(pod: PodRow): string {
  const total = pod.containers.length
  if (!pod.runtime) return `?/${total}`
  const running = pod.runtime.containers.filter((c) => c.state === 'RUNNING').length
  return `${Math.min(running, total)}/${total}`
}

export function restartsColumn(pod: PodRow): string {
  if (!pod.runtime) return '?'
  return String(pod.runtime.containers.reduce((n, c) => n + (c.restartCount ?? 0), 0))
}

export function statusColumn(pod: PodRow): string {
  const status = runtimeStatus(pod)
  return pod.stale ? `${status} (stale)` : status
}

function runtimeStatus(pod: PodRow): string {
  const runtime = pod.runtime
  if (!runtime) return 'Unknown'
  if (runtime.state === 'NOT_FOUND') return 'NotStarted'
  const containers = runtime.containers
  const crashing = containers.find((c) => c.state !== 'RUNNING' && (c.restartCount ?? 0) >= CRASH_LOOP_RESTARTS)
  if (crashing) return 'CrashLoopBackOff'
  const waiting = containers.find((c) => c.state !== 'RUNNING' && c.reason)
  if (waiting?.reason) return waiting.reason
  if (runtime.state === 'READY' && containers.length >= pod.containers.length && containers.every((c) => c.state === 'RUNNING')) return 'Running'
  if (containers.some((c) => c.state === 'CREATED')) return 'ContainerCreating'
  if (containers.length > 0 && containers.every((c) => c.state === 'EXITED' || c.state === 'TERMINATED')) return 'Terminated'
  return runtime.state === 'READY' ? 'NotReady' : capitalise(runtime.state)
}

function capitalise(s: string): string {
  return s
    .toLowerCase()
    .split(/[_\s]+/)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')
}

// ------------------------------------------------------------ label selectors

type Requirement = (labels: Record<string, string>) => boolean

/**
 * kubectl's label selector syntax: key=value, key==value, key!=value,
 * key in (a,b), key notin (a,b), key, !key; comma-separated, all must hold.
 */
export function parseSelector(text: string): Requirement {
  const requirements: Requirement[] = []
  const src = text.trim()
  let i = 0
  const fail = (why: string) => usage(`-l ${JSON.stringify(text)}: ${why}`)
  const skipSpace = () => {
    while (src[i] === ' ') i++
  }
  const key = () => {
    const m = /^[A-Za-z0-9][-A-Za-z0-9_./]*/.exec(src.slice(i))
    if (!m) throw fail(`a label key expected at position ${i + 1}`)
    i += m[0].length
    return m[0]
  }
  const value = () => {
    const m = /^[A-Za-z0-9_.-]*/.exec(src.slice(i)) as RegExpExecArray
    i += m[0].length
    return m[0]
  }
  while (i < src.length) {
    skipSpace()
    if (src[i] === '!') {
      i++
      skipSpace()
      const k = key()
      requirements.push((l) => !(k in l))
    } else {
      const k = key()
      skipSpace()
      const rest = src.slice(i)
      if (rest.startsWith('==') || rest.startsWith('=') || rest.startsWith('!=')) {
        const op = rest.startsWith('!=') ? '!=' : rest.startsWith('==') ? '==' : '='
        i += op.length
        skipSpace()
        const v = value()
        requirements.push(op === '!=' ? (l) => l[k] !== v : (l) => l[k] === v)
      } else if (/^(in|notin)\s*\(/.test(rest)) {
        const negate = rest.startsWith('notin')
        i += negate ? 5 : 2
        skipSpace()
        i++ // (
        const values = new Set<string>()
        for (;;) {
          skipSpace()
          values.add(value())
          skipSpace()
          if (src[i] === ',') {
            i++
            continue
          }
          if (src[i] === ')') {
            i++
            break
          }
          throw fail(`")" expected at position ${i + 1}`)
        }
        requirements.push(negate ? (l) => !(k in l) || !values.has(l[k] as string) : (l) => k in l && values.has(l[k] as string))
      } else {
        requirements.push((l) => k in l)
      }
    }
    skipSpace()
    if (i < src.length) {
      if (src[i] !== ',') throw fail(`"," expected at position ${i + 1}`)
      i++
    }
  }
  return (labels) => requirements.every((r) => r(labels))
}
