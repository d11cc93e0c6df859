// Counting what one operation costs on the wire to a node, for
// bench/sftp-requests.ts: SFTP requests by type, and the sequential round trips
// among them, measured by instrumenting ssh2's SFTP client in this process.
//
// Round trips are counted two ways, both from when each request is sent and
// when its answer comes back, and both only over answers that arrive before
// the operation has finished (a close sent and not waited for is a request,
// not a wait):
// - depth (the critical path): a request sent before any answer of the
//   measured operation has arrived is at depth 1; one sent after answers at
//   depth d have arrived is at depth d+1 (it may have waited for them). The
//   deepest answer is the number of round trips the operation waited for, an
//   upper bound: a request sent late for a reason other than an answer still
//   counts as one more.
// - waves: a request sent while no earlier request is outstanding on its
//   channel starts a new round trip (a lower bound: a request sent after one
//   answer while others are still outstanding is not counted).
// On loopback an answer not waited for may still arrive before the operation
// ends; behind the latency proxy it does not, so those counts are exact.
// Through the latency proxy, the wall time divided by the RTT is a third,
// independent measure (it also counts SSH channel opens for exec and forwards,
// which are not SFTP requests).

import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { SFTP } = require('ssh2/lib/protocol/SFTP.js') as { SFTP: { prototype: Record<string | symbol, unknown> } }
const Protocol = require('ssh2/lib/protocol/Protocol.js') as { prototype: Record<string, unknown> }

const REQUEST_METHODS = [
  'open', 'close', 'read', 'write', 'fstat', 'fsetstat', 'opendir', 'readdir', 'stat', 'lstat', 'setstat', 'unlink',
  'rename', 'mkdir', 'rmdir', 'readlink', 'symlink', 'realpath', 'ext_openssh_rename', 'ext_openssh_fsync',
  'ext_openssh_hardlink', 'ext_openssh_statvfs', 'ext_openssh_fstatvfs', 'ext_openssh_lsetstat',
] as const

export interface WireCount {
  requests: number
  byRequest: Record<string, number>
  /** The critical path: round trips the operation waited for (see above). */
  roundTrips: number
  /** Requests sent while nothing was outstanding on the channel. */
  waves: number
  /** SSH CHANNEL_DATA messages sent (every channel): each is encrypted here and decrypted by sshd, whatever its size (the service sends a tick's SFTP requests as one, agents/ssh-coalescing.ts). */
  messagesSent: number
}

interface Counting {
  /** Request types whose answers nobody waits for (they never move the critical path on). */
  unawaited: Set<string>
  byRequest: Map<string, number>
  /** reqid -> depth, per channel (request ids are per channel). */
  depths: WeakMap<object, Map<string, number>>
  answeredDepth: number
  /** The first request of each wave, per channel; a wave counts once that request is answered. */
  waveStarts: WeakMap<object, Set<string>>
  /** Requests outstanding per channel that are waited for (not the unawaited kinds). */
  outstanding: WeakMap<object, Set<string>>
  waves: number
  messagesSent: number
  startedAt: number
}

let counting: Counting | null = null
let installed = false
/** The request being sent (set around the original method), for BENCH_TRACE=1. */
let sending: { name: string; arg: unknown } | null = null
const trace = process.env.BENCH_TRACE === '1'

/** Wraps ssh2's SFTP client once per process; counts only inside count(). */
export function installSftpCounter(): void {
  if (installed) return
  installed = true
  for (const method of REQUEST_METHODS) {
    const original = SFTP.prototype[method] as ((...args: unknown[]) => unknown) | undefined
    if (typeof original !== 'function') continue
    SFTP.prototype[method] = function (this: unknown, ...args: unknown[]) {
      // readdir(path) opens, reads and closes through the handle methods: count those only.
      if (counting && !(method === 'readdir' && typeof args[0] === 'string')) {
        const name = method === 'ext_openssh_rename' ? 'posix-rename' : method.replace(/^ext_openssh_/, '')
        counting.byRequest.set(name, (counting.byRequest.get(name) ?? 0) + 1)
      }
      const outer = sending
      sending = { name: method, arg: args[0] }
      try {
        return original.apply(this, args)
      } finally {
        sending = outer
      }
    }
  }
  const channelData = Protocol.prototype.channelData as (...args: unknown[]) => unknown
  Protocol.prototype.channelData = function (this: unknown, ...args: unknown[]) {
    if (counting) counting.messagesSent++
    return channelData.apply(this, args)
  }
  // Every request ssh2 sends is put in the channel's _requests table, and taken out when its answer arrives.
  const own = Symbol('requests')
  Object.defineProperty(SFTP.prototype, '_requests', {
    configurable: true,
    get(this: Record<symbol, unknown>) {
      return this[own]
    },
    set(this: Record<symbol, unknown>, table: Record<string, unknown>) {
      this[own] = new Proxy(table, {
        set(target, key, value) {
          const c = counting
          if (c && typeof key === 'string' && !(key in target) && !c.unawaited.has(sending?.name ?? '')) {
            let outstanding = c.outstanding.get(target)
            if (!outstanding) c.outstanding.set(target, (outstanding = new Set()))
            if (outstanding.size === 0) {
              let starts = c.waveStarts.get(target)
              if (!starts) c.waveStarts.set(target, (starts = new Set()))
              starts.add(key)
            }
            let depths = c.depths.get(target)
            if (!depths) c.depths.set(target, (depths = new Map()))
            outstanding.add(key)
            depths.set(key, c.answeredDepth + 1)
            if (trace) console.error(`  ${(performance.now() - c.startedAt).toFixed(1).padStart(7)} ms  depth ${c.answeredDepth + 1}: ${sending?.name ?? '?'} ${typeof sending?.arg === 'string' ? sending.arg : ''}`)
          }
          return Reflect.set(target, key, value)
        },
        deleteProperty(target, key) {
          const c = counting
          const depth = c && typeof key === 'string' ? c.depths.get(target)?.get(key) : undefined
          if (c && depth !== undefined) c.answeredDepth = Math.max(c.answeredDepth, depth)
          if (c && typeof key === 'string') c.outstanding.get(target)?.delete(key)
          if (c && typeof key === 'string' && c.waveStarts.get(target)?.delete(key)) c.waves++
          return Reflect.deleteProperty(target, key)
        },
      })
    },
  })
}

/**
 * Runs fn and counts the SFTP requests it sends and the round trips among them (one operation at a time).
 * unawaited: request types (ssh2 method names, 'close') that fn sends and never waits for: counted as
 * requests, left out of the round trips (the service's closes; a bare ssh2 writeFile waits for its close).
 */
export async function count<T>(fn: () => Promise<T>, options: { unawaited?: string[] } = {}): Promise<{ result: T; wire: WireCount; ms: number }> {
  if (!installed) throw new Error('installSftpCounter() first')
  if (counting) throw new Error('count() does not nest')
  const c: Counting = { unawaited: new Set(options.unawaited), byRequest: new Map(), depths: new WeakMap(), answeredDepth: 0, waveStarts: new WeakMap(), outstanding: new WeakMap(), waves: 0, messagesSent: 0, startedAt: performance.now() }
  counting = c
  const started = performance.now()
  try {
    const result = await fn()
    const ms = performance.now() - started
    const byRequest = Object.fromEntries([...c.byRequest].sort(([a], [b]) => a.localeCompare(b)))
    return { result, ms, wire: { requests: [...c.byRequest.values()].reduce((a, b) => a + b, 0), byRequest, roundTrips: c.answeredDepth, waves: c.waves, messagesSent: c.messagesSent } }
  } finally {
    counting = null
  }
}
