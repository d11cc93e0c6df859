// The node lock: one writer at a time on a node, across processes and service
// instances, and the one place that decides who waits for a node and how long.
//
// Two levels, one wait:
// - in this process, callers take turns per node in arrival order (NodeTurns):
//   the reads that record history wait for the writer ahead of them, so a
//   read never records this process's own write as a change made elsewhere;
// - a writer with the turn then takes the node-side lock: a file in stateDir
//   created with O_EXCL, the one primitive that both a local filesystem and
//   SFTP make atomic. It names its holder, is renewed while held, and is taken
//   over once expired or once its holder is known dead.
// A writer gives up with LOCKED once the queue ahead of it has not moved for
// lockWaitMs, wherever it is waiting (for its turn, or for another process's
// lock file); 0 means do not wait at all.

import { randomBytes } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname as osHostname } from 'node:os'
import { posix } from 'node:path'
import { performance } from 'node:perf_hooks'
import { z } from 'zod'
import { ServiceError } from '../errors.ts'
import type { LockOwner } from './agent.ts'
import { isFileExistsError, type NodeFileSystem } from './node-fs.ts'

/** The node lock, inside stateDir. */
export const LOCK_FILE_NAME = 'lock'
/** Stale-lock takeovers tried in a row before backing off to polling. */
const TAKEOVER_ATTEMPTS = 5
/** Unreleased own locks remembered (each one is the lock file of one failed release). */
const UNRELEASED_KEPT = 16
const POLL_MIN_MS = 25
const POLL_JITTER_MS = 25

/** What the lock file says, for the process that finds it and for the operator who does. */
export interface LockRecord {
  actor: string
  instance: string
  hostname: string
  pid: number
  /** The holder's Linux pid namespace and boot (e.g. 'pid:[4026531836] boot:<boot id>'); pids only compare within one. */
  pidNamespace: string | null
  acquiredAt: string
  expiresAt: string
  /** Random per acquisition, so two holders never write identical files and release compares exactly. */
  token: string
}

const lockRecordSchema = z.object({
  actor: z.string(),
  instance: z.string(),
  hostname: z.string(),
  pid: z.number().int(),
  pidNamespace: z.string().nullable().optional(),
  acquiredAt: z.string(),
  expiresAt: z.string(),
  token: z.string().optional(),
})

/** The process that takes locks: written into the lock file, compared when judging a holder. */
export interface ProcessIdentity {
  hostname: string
  pid: number
  pidNamespace: string | null
}

/**
 * true: the holder runs; false: it is known dead (its lock can be taken over
 * without waiting for expiry); undefined: cannot tell from here.
 */
export type LockHolderLiveness = (holder: LockRecord) => boolean | undefined

let currentProcessIdentity: ProcessIdentity | undefined

/** This process, as it names itself in the lock files it writes. */
export function thisProcessIdentity(): ProcessIdentity {
  if (!currentProcessIdentity) {
    let pidNamespace: string | null = null
    try {
      // A namespace's inode number is only unique within one boot of one
      // machine (the initial one is 4026531836 everywhere), and hostnames
      // repeat across containers. Lock files on an SSH node are shared by
      // service instances on many machines, so the boot id goes with it: a
      // holder is judged by its pid only from the very same namespace.
      pidNamespace = `${readlinkSync('/proc/self/ns/pid')} boot:${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}`
    } catch {
      // Not Linux, or no /proc: pids are compared by hostname alone.
    }
    currentProcessIdentity = { hostname: osHostname(), pid: process.pid, pidNamespace }
  }
  return currentProcessIdentity
}

/**
 * Tells whether a lock holder on this same machine (same hostname and pid
 * namespace) still runs, by sending it signal 0. Holders elsewhere: unknown,
 * so only expiry frees their lock. Two containers with the host's network
 * share a hostname but not a pid namespace, hence the namespace check.
 */
export function sameMachineProcessLiveness(self: ProcessIdentity): LockHolderLiveness {
  return (holder) => {
    if (holder.hostname !== self.hostname || holder.pidNamespace !== self.pidNamespace) return undefined
    if (holder.pid === self.pid) return true
    try {
      process.kill(holder.pid, 0)
      return true
    } catch (err) {
      // EPERM: it exists but belongs to someone else. Only ESRCH means gone.
      return errorCode(err) === 'ESRCH' ? false : true
    }
  }
}

// ---- turns in this process ----------------------------------------------------

interface Turn {
  enqueuedAt: number
  hasTurn: boolean
  giveTurn: () => void
  turn: Promise<void>
}

/** Callers of one node in this process, served one at a time in arrival order. */
export class NodeTurns {
  readonly #queue: Turn[] = []
  /** When the queue last moved (a turn given or ended), in performance.now() time. */
  #lastProgressAt = 0

  /**
   * Runs fn when every caller ahead has finished. With waitMs, gives up with
   * locked() once the queue has not moved for that long (twenty callers that
   * each hold the node briefly all get their turn); without, waits as long as
   * it takes (the callers ahead are themselves bounded).
   */
  async run<T>(fn: (deadline: () => number) => Promise<T>, wait: { waitMs: number; locked: () => ServiceError } | null): Promise<T> {
    const entry = this.#enqueue()
    const deadline = (): number => (wait ? Math.max(entry.enqueuedAt, this.#lastProgressAt) + wait.waitMs : Number.POSITIVE_INFINITY)
    try {
      while (!entry.hasTurn) {
        const left = deadline() - performance.now()
        if (wait && left <= 0) throw wait.locked()
        await settlesWithin(entry.turn, left)
      }
      this.#lastProgressAt = performance.now()
      return await fn(deadline)
    } finally {
      this.#lastProgressAt = performance.now()
      this.#leave(entry)
    }
  }

  #enqueue(): Turn {
    let giveTurn!: () => void
    const turn = new Promise<void>((resolve) => (giveTurn = resolve))
    const entry: Turn = { enqueuedAt: performance.now(), hasTurn: false, giveTurn, turn }
    entry.giveTurn = () => {
      entry.hasTurn = true
      giveTurn()
    }
    this.#queue.push(entry)
    if (this.#queue.length === 1) entry.giveTurn()
    return entry
  }

  #leave(entry: Turn): void {
    const index = this.#queue.indexOf(entry)
    if (index < 0) return
    this.#queue.splice(index, 1)
    if (index === 0) this.#queue[0]?.giveTurn()
  }
}

// ---- the node-side lock -------------------------------------------------------

export interface HeldLock {
  record: LockRecord
  bytes: Buffer
  /** Temp files in staticPodPath seen by a listing made under this lock (undefined: not listed yet). */
  leftoverTemps?: string[]
  renewTimer: NodeJS.Timeout | undefined
  renewing: Promise<void> | undefined
  stopped: boolean
}

type CreateOutcome = { acquired: true; held: HeldLock } | { acquired: false; holder: LockRecord | null }

export interface NodeLockOptions {
  fs: NodeFileSystem
  nodeName: string
  /** Absolute; the lock file is stateDir/lock. */
  stateDir: string
  /** A lock not renewed for this long is free for the taking. Renewed every third of it while held. */
  lockTtlMs: number
  /** How long a writer waits for the node before LOCKED; 0: not at all. */
  lockWaitMs: number
  clock: () => Date
  identity: ProcessIdentity
  isLockHolderAlive: LockHolderLiveness
  /** The failure of a file operation on the node, as the agent words it. */
  writeFailed: (what: string, err: unknown) => ServiceError
  /** This node's turns in this process; shared with whatever else takes turns on it. */
  turns?: NodeTurns
}

export class NodeLock {
  readonly #o: NodeLockOptions
  readonly #lockPath: string
  readonly turns: NodeTurns
  #held: HeldLock | null = null
  /** The holder seen in the lock file on the last failed attempt, for LOCKED messages. */
  #lastForeignHolder: LockRecord | null = null
  /**
   * Our own lock files that release could not remove (the node went away
   * mid-release). Nobody holds them, and the process that would tell is us:
   * the next acquisition clears them instead of waiting for their expiry.
   */
  readonly #unreleased: Buffer[] = []
  #stateDirReady = false

  constructor(options: NodeLockOptions) {
    if (!Number.isFinite(options.lockTtlMs) || options.lockTtlMs <= 0) throw new Error(`lockTtlMs must be a positive number, got ${options.lockTtlMs}`)
    if (!Number.isFinite(options.lockWaitMs) || options.lockWaitMs < 0) throw new Error(`lockWaitMs must be 0 (do not wait) or more, got ${options.lockWaitMs}`)
    this.#o = options
    this.#lockPath = posix.join(options.stateDir, LOCK_FILE_NAME)
    this.turns = options.turns ?? new NodeTurns()
  }

  /** The lock this process holds on the node right now, if any. */
  get held(): HeldLock | null {
    return this.#held
  }

  /** Runs fn holding the node: its turn in this process, then the node-side lock. */
  withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T> {
    const locked = (): ServiceError => this.#lockedError(this.#held?.record ?? this.#lastForeignHolder)
    return this.turns.run(async (deadline) => {
      const held = await this.#acquireLockFile(owner, deadline)
      this.#held = held
      this.#startRenewing(held)
      try {
        return await fn()
      } finally {
        this.#held = null
        await this.#release(held)
      }
    }, { waitMs: this.#o.lockWaitMs, locked })
  }

  /** Runs fn in this node's turn in this process, without the node-side lock (reads that record history). */
  withTurn<T>(fn: () => Promise<T>): Promise<T> {
    return this.turns.run(fn, null)
  }

  async #acquireLockFile(owner: LockOwner, deadline: () => number): Promise<HeldLock> {
    if (!this.#stateDirReady) {
      try {
        await this.#o.fs.mkdirp(this.#o.stateDir)
      } catch (err) {
        throw this.#o.writeFailed(`creating the state directory ${this.#o.stateDir}`, err)
      }
      this.#stateDirReady = true
    }
    // At least one attempt, even if the queue wait used up the time.
    for (;;) {
      const outcome = await this.#tryCreateLockFile(owner)
      if (outcome.acquired) {
        this.#lastForeignHolder = null
        return outcome.held
      }
      this.#lastForeignHolder = outcome.holder
      const left = deadline() - performance.now()
      if (left <= 0) throw this.#lockedError(outcome.holder)
      await sleep(Math.min(left, POLL_MIN_MS + Math.random() * POLL_JITTER_MS))
    }
  }

  async #tryCreateLockFile(owner: LockOwner): Promise<CreateOutcome> {
    let holder: LockRecord | null = null
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
      const now = this.#o.clock()
      const record: LockRecord = {
        actor: owner.actor,
        instance: owner.instance,
        hostname: this.#o.identity.hostname,
        pid: this.#o.identity.pid,
        pidNamespace: this.#o.identity.pidNamespace,
        acquiredAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + this.#o.lockTtlMs).toISOString(),
        token: randomHex(),
      }
      const bytes = lockFileBytes(record)
      try {
        // Not flushed: a lock only means something while its holder's connection lives, and a power cut ends both.
        await this.#o.fs.writeNewFile(this.#lockPath, bytes, { exclusive: true, durable: false })
        return { acquired: true, held: { record, bytes, renewTimer: undefined, renewing: undefined, stopped: false } }
      } catch (err) {
        if (!isFileExistsError(err)) {
          await this.#removeOwnPartialLockFile(bytes)
          throw this.#o.writeFailed('creating the lock file', err)
        }
      }
      const existing = await this.#o.fs.readFile(this.#lockPath)
      if (existing === null) continue // released in between: try again at once
      holder = parseLockRecord(existing)
      const ours = this.#unreleased.findIndex((bytes) => bytes.equals(existing))
      if (ours < 0 && !(await this.#isStale(holder))) return { acquired: false, holder }
      await this.#removeLockFileIf(existing)
      if (ours >= 0) this.#unreleased.splice(ours, 1)
    }
    return { acquired: false, holder }
  }

  /** Expired, or its holder is known dead. An unreadable lock is stale once it is older than the TTL. */
  async #isStale(holder: LockRecord | null): Promise<boolean> {
    const now = this.#o.clock().getTime()
    if (holder === null) {
      // Being written right now, or half-written by a holder that crashed: its age decides.
      const entry = (await this.#o.fs.readDir(this.#o.stateDir)).find((e) => e.name === LOCK_FILE_NAME)
      return entry === undefined || now - entry.mtimeMs > this.#o.lockTtlMs
    }
    const expiresAt = Date.parse(holder.expiresAt)
    if (Number.isNaN(expiresAt) || expiresAt <= now) return true
    return this.#o.isLockHolderAlive(holder) === false
  }

  /**
   * Removes the lock file only if it still holds exactly `expected`: moved
   * aside to a unique name first (one atomic step, so two processes judging
   * the same stale lock cannot both remove it), then checked. If what was moved
   * turns out to be someone's newer lock (it changed hands between our read
   * and the rename), it is put back with an exclusive create, unless a new lock
   * was created in the meantime. The exclusive create of the lock file then
   * decides who holds it: only one can win.
   */
  async #removeLockFileIf(expected: Buffer): Promise<void> {
    // Read first, also when releasing our own: while another process takes
    // over a stale lock, the lock path briefly holds a newer holder's file,
    // and moving that aside (even to put it back) opens a window for a third.
    const current = await this.#o.fs.readFile(this.#lockPath)
    if (current === null || !current.equals(expected)) return
    const aside = posix.join(this.#o.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.removed`)
    try {
      await this.#o.fs.rename(this.#lockPath, aside)
    } catch {
      // Gone already (someone else removed it), or the filesystem will not
      // rename right now (full, read-only ...): then remove it in place, which
      // is only less safe against a holder change in the last microseconds.
      const again = await this.#o.fs.readFile(this.#lockPath)
      if (again !== null && again.equals(expected)) await this.#o.fs.unlink(this.#lockPath)
      return
    }
    const moved = await this.#o.fs.readFile(aside)
    if (moved !== null && !moved.equals(expected)) {
      await this.#o.fs.writeNewFile(this.#lockPath, moved, { exclusive: true }).catch(() => undefined)
    }
    await this.#o.fs.unlink(aside).catch(() => undefined)
  }

  /** Our exclusive create succeeded but the write after it failed: do not leave a half lock behind. */
  async #removeOwnPartialLockFile(intended: Buffer): Promise<void> {
    try {
      const left = await this.#o.fs.readFile(this.#lockPath)
      if (left !== null && left.length < intended.length && intended.subarray(0, left.length).equals(left)) {
        await this.#o.fs.unlink(this.#lockPath)
      }
    } catch {
      // It then looks unparseable and is taken over once older than the TTL.
    }
  }

  /** Keeps a long holder's lock from expiring under it while it still runs. */
  #startRenewing(held: HeldLock): void {
    const schedule = (): void => {
      held.renewTimer = setTimeout(() => {
        held.renewing = this.#renew(held).finally(() => {
          held.renewing = undefined
          if (!held.stopped) schedule()
        })
      }, Math.max(1, Math.floor(this.#o.lockTtlMs / 3)))
      held.renewTimer.unref()
    }
    schedule()
  }

  async #renew(held: HeldLock): Promise<void> {
    if (held.stopped) return
    const renewedPath = posix.join(this.#o.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.renewed`)
    try {
      const current = await this.#o.fs.readFile(this.#lockPath)
      if (current === null || !current.equals(held.bytes)) {
        held.stopped = true // lost (taken over after expiry): nothing of ours left to renew
        return
      }
      const record = { ...held.record, expiresAt: new Date(this.#o.clock().getTime() + this.#o.lockTtlMs).toISOString() }
      const bytes = lockFileBytes(record)
      await this.#o.fs.writeNewFile(renewedPath, bytes, { exclusive: true, durable: false })
      // Replace in one step: the lock file never disappears while we hold it.
      await this.#o.fs.rename(renewedPath, this.#lockPath)
      held.record = record
      held.bytes = bytes
    } catch {
      await this.#o.fs.unlink(renewedPath).catch(() => undefined)
    }
  }

  async #release(held: HeldLock): Promise<void> {
    held.stopped = true
    clearTimeout(held.renewTimer)
    await held.renewing
    // Only our own lock: if it expired and someone else took it, theirs stays.
    // Never a plain unlink, even well before expiry: see #removeLockFileIf.
    await this.#removeLockFileIf(held.bytes).catch(() => {
      this.#unreleased.push(held.bytes)
      if (this.#unreleased.length > UNRELEASED_KEPT) this.#unreleased.shift()
    })
  }

  #lockedError(holder: LockRecord | null): ServiceError {
    const who = holder
      ? `${holder.actor} (instance ${holder.instance}, ${holder.hostname} pid ${holder.pid}) since ${holder.acquiredAt}`
      : 'another writer (its lock file is being written or cannot be read)'
    return new ServiceError(
      'LOCKED',
      `node ${this.#o.nodeName} is locked by ${who}; gave up after waiting ${this.#o.lockWaitMs} ms`,
    )
  }
}

function lockFileBytes(record: LockRecord): Buffer {
  return Buffer.from(`${JSON.stringify(record, null, 2)}\n`)
}

function parseLockRecord(bytes: Buffer): LockRecord | null {
  try {
    const parsed = lockRecordSchema.safeParse(JSON.parse(bytes.toString('utf8')))
    if (!parsed.success) return null
    return { ...parsed.data, pidNamespace: parsed.data.pidNamespace ?? null, token: parsed.data.token ?? '' }
  } catch {
    return null
  }
}

function randomHex(): string {
  return randomBytes(6).toString('hex')
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Waits for promise, or ms, whichever comes first, without leaving a timer behind. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<void> {
  if (ms === Number.POSITIVE_INFINITY) return promise
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  } finally {
    clearTimeout(timer)
  }
}
