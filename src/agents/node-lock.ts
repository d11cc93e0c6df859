// The node lock: one writer at a time on a node, across processes and service
// instances, and the one place that decides who waits for a node and how long.
//
// Two levels, one wait:
// - in this process, callers take turns per node in arrival order (NodeTurns):
//   the reads that record history wait for the writer ahead of them, so a
//   read never records this process's own write as a change made elsewhere;
// - a writer with the turn then takes the node-side lock: a symlink in
//   stateDir, which symlink(2) (SFTP's SYMLINK) creates only where nothing
//   is, whole and at once, with the holder record in its target: one request
//   takes it, one READLINK reads it. It is renewed while held, and taken over
//   once expired or once its holder is known dead. (Versions before wrote a
//   lock file with O_EXCL at the same path: each excludes the other, and such
//   a file is still read, judged and taken over.)
// A writer gives up with LOCKED once the queue ahead of it has not moved for
// lockWaitMs, wherever it is waiting (for its turn, or for another process's
// lock file); 0 means do not wait at all.

import { randomHex as randomHexBytes } from '../random-hex.ts'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname as osHostname } from 'node:os'
import { posix } from 'node:path'
import { performance } from 'node:perf_hooks'
import * as z from 'zod'
import { ServiceError } from '../errors.ts'
import type { LockOwner } from './agent.ts'
import { isAlreadyExists, isNoSuchFile, isPermissionDenied, type NodeFileSystem, type NodePipeline } from './node-fs.ts'

/** The node lock, inside stateDir. */
export const LOCK_FILE_NAME = 'lock'
/** Stale-lock takeovers tried in a row before backing off to polling. */
const TAKEOVER_ATTEMPTS = 5
/** Refusals of the lock's create with nothing at the lock path after each, before the create itself is taken to fail. */
const REFUSED_WITH_NOTHING_THERE_MAX = 3
/** Unreleased own locks remembered (each one is the lock of one failed release). */
const UNRELEASED_KEPT = 16
/** Actor and instance names are cut to this in the record: a symlink's target has room for a few KB only. */
const RECORD_NAME_MAX = 200
/** A lock file of an earlier version is its JSON record: far below this. */
const LOCK_FILE_MAX_BYTES = 64 * 1024
const POLL_MIN_MS = 25
const POLL_JITTER_MS = 25

/** What the lock says (its symlink's target), for the process that finds it and for the operator who does. */
export interface LockRecord {
  actor: string
  instance: string
  hostname: string
  pid: number
  /** The holder's Linux pid namespace and boot (e.g. 'pid:[4026531836] boot:<boot id>'); pids only compare within one. */
  pidNamespace: string | null
  acquiredAt: string
  expiresAt: string
  /** Random per acquisition, so two holders never write identical locks and release compares exactly. */
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

/**
 * What is at the lock path: this version's symlink, whose target is the
 * holder record, or a lock file (the holder record as its content) as
 * versions before it wrote them, or anything else found there.
 */
type LockEntry = { kind: 'link'; target: string } | { kind: 'file'; bytes: Buffer }

function sameEntry(a: LockEntry, b: LockEntry): boolean {
  return a.kind === 'link' ? b.kind === 'link' && a.target === b.target : b.kind === 'file' && a.bytes.equals(b.bytes)
}

export interface HeldLock<P = unknown> {
  record: LockRecord
  /** The symlink's target: the record as written. */
  target: string
  /** What the prefetch option started behind the request that took the lock (undefined: none, or the lock was taken by a later attempt). */
  prefetched: P | undefined
  renewTimer: NodeJS.Timeout | undefined
  renewing: Promise<void> | undefined
  stopped: boolean
  /** Renewal found the lock no longer ours (taken over after it expired). */
  lost: boolean
}

type TakeOutcome<P> = { acquired: true; held: HeldLock<P> } | { acquired: false; holder: LockRecord | null }

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

function settled<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
}

export interface NodeLockOptions<P = unknown> {
  fs: NodeFileSystem
  nodeName: string
  /** Absolute; the lock is stateDir/lock. */
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
  /**
   * Work to start behind the first request that tries to take the lock,
   * without waiting for its answer (behind.behind(...): it runs on the node
   * after the lock was taken, if it was). Its result is the held lock's
   * `prefetched` when that request took the lock, and is dropped otherwise;
   * it must never fail unhandled.
   */
  prefetch?: (behind: NodePipeline) => P
  /** Told of what prefetch returned when its request did not take the lock (to undo what it made). */
  discardPrefetched?: (prefetched: P) => void
}

export class NodeLock<P = unknown> {
  readonly #o: NodeLockOptions<P>
  readonly #lockPath: string
  readonly turns: NodeTurns
  #held: HeldLock<P> | null = null
  /** The holder seen at the lock path on the last failed attempt, for LOCKED messages. */
  #lastForeignHolder: LockRecord | null = null
  /**
   * Our own locks that release could not remove (the node went away
   * mid-release). Nobody holds them, and the process that would tell is us:
   * the next acquisition clears them instead of waiting for their expiry.
   */
  readonly #unreleased: LockEntry[] = []
  /**
   * This node's SFTP server was seen to create the lock as asked (a READLINK
   * right after the first SYMLINK read our record back): a server that takes
   * SYMLINK's paths the other way round would make a lock nobody else sees.
   * A server does it the same way every time, so it is checked once.
   */
  #symlinkChecked = false

  constructor(options: NodeLockOptions<P>) {
    if (!Number.isFinite(options.lockTtlMs) || options.lockTtlMs <= 0) throw new Error(`lockTtlMs must be a positive number, got ${options.lockTtlMs}`)
    if (!Number.isFinite(options.lockWaitMs) || options.lockWaitMs < 0) throw new Error(`lockWaitMs must be 0 (do not wait) or more, got ${options.lockWaitMs}`)
    this.#o = options
    this.#lockPath = posix.join(options.stateDir, LOCK_FILE_NAME)
    this.turns = options.turns ?? new NodeTurns()
  }

  /** Runs fn holding the node: its turn in this process, then the node-side lock. */
  withLock<T>(owner: LockOwner, fn: (held: HeldLock<P>) => Promise<T>): Promise<T> {
    const locked = (): ServiceError => this.#lockedError(this.#held?.record ?? this.#lastForeignHolder)
    return this.turns.run(async (deadline) => {
      const held = await this.#acquire(owner, deadline)
      this.#held = held
      this.#startRenewing(held)
      try {
        return await fn(held)
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

  async #acquire(owner: LockOwner, deadline: () => number): Promise<HeldLock<P>> {
    // At least one attempt, even if the queue wait used up the time.
    for (let polls = 0; ; polls++) {
      // Work is prefetched behind the first try only: a writer polling a lock held elsewhere asks for nothing more.
      const outcome = await this.#tryTake(owner, polls === 0)
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

  /**
   * One request creates the lock: a symlink, which SYMLINK (symlink(2))
   * creates only where nothing is, whole, with the holder record in its
   * target. Who holds it is read (READLINK) only when that fails: a writer
   * that finds the node locked waits anyway, so the read costs it nothing
   * that matters, and a writer that takes the lock sends one request, not
   * two. Expired locks and locks of dead holders are taken over
   * (#removeLockIf), and the create tried again.
   */
  async #tryTake(owner: LockOwner, prefetch: boolean): Promise<TakeOutcome<P>> {
    let holder: LockRecord | null = null
    let madeStateDir = false
    let refusedWithNothingThere = 0
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
      const now = this.#o.clock()
      const record: LockRecord = {
        actor: owner.actor.slice(0, RECORD_NAME_MAX),
        instance: owner.instance.slice(0, RECORD_NAME_MAX),
        hostname: this.#o.identity.hostname,
        pid: this.#o.identity.pid,
        pidNamespace: this.#o.identity.pidNamespace,
        acquiredAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + this.#o.lockTtlMs).toISOString(),
        token: randomHex(),
      }
      const target = lockTarget(record)
      const sent = await this.#o.fs
        .pipeline('taking the node lock', async (p) => {
          const created = settled(p.symlink(target, this.#lockPath))
          const check = this.#symlinkChecked ? null : settled(p.readlink(this.#lockPath))
          const prefetched = prefetch && attempt === 0 && this.#o.prefetch ? this.#o.prefetch(p) : undefined
          return { created: await created, check: await check, prefetched }
        })
        .catch((err: unknown) => {
          throw this.#o.writeFailed('creating the lock', err)
        })
      const { created, check } = sent
      const discard = (): void => {
        if (sent.prefetched !== undefined) this.#o.discardPrefetched?.(sent.prefetched)
      }
      if (!created.ok) discard()
      if (created.ok) {
        if (check && (!check.ok || check.value !== target)) {
          discard()
          // Never seen with OpenSSH's server: it would not be a lock anyone else could see.
          throw this.#o.writeFailed('creating the lock', new Error(`${this.#lockPath} is not the symlink just created`))
        }
        this.#symlinkChecked = true
        return { acquired: true, held: { record, target, prefetched: sent.prefetched, renewTimer: undefined, renewing: undefined, stopped: false, lost: false } }
      }
      if (isPermissionDenied(created.error)) throw this.#o.writeFailed('creating the lock', created.error)
      const current = check ?? (await settled(this.#o.fs.pipeline('reading the lock', (p) => p.readlink(this.#lockPath))))
      if (isNoSuchFile(created.error) && !(current.ok && current.value !== null)) {
        // No stateDir yet (a node's first write): made once, then tried again.
        if (madeStateDir) throw this.#o.writeFailed('creating the lock', created.error)
        await this.#o.fs.mkdirp(this.#o.stateDir).catch((err: unknown) => {
          throw this.#o.writeFailed(`creating the state directory ${this.#o.stateDir}`, err)
        })
        madeStateDir = true
        attempt--
        continue
      }
      const existing = current.ok ? (current.value === null ? null : ({ kind: 'link', target: current.value } as const)) : await this.#readLockFile()
      if (existing === null) {
        // Released in between (the holder's read comes a round trip after the refusal): try again at
        // once. Refused again and again with nothing there: the create itself fails (a full or
        // read-only disk; over SFTP that is the same FAILURE status as "exists"). A refusal that
        // says EEXIST (the local filesystem) is another instance's lock, however briefly.
        if (!isAlreadyExists(created.error) && ++refusedWithNothingThere >= REFUSED_WITH_NOTHING_THERE_MAX) throw this.#o.writeFailed('creating the lock', created.error)
        continue
      }
      holder = parseLockEntry(existing)
      const ours = this.#unreleased.findIndex((entry) => sameEntry(entry, existing))
      if (ours < 0 && !(await this.#isStale(holder))) return { acquired: false, holder }
      await this.#removeLockIf(existing, { readFirst: true })
      if (ours >= 0) this.#unreleased.splice(ours, 1)
    }
    return { acquired: false, holder }
  }

  /** What is at the lock path when it is not a symlink: a lock file of an earlier version (or something else); null when nothing is. */
  async #readLockFile(): Promise<LockEntry | null> {
    const bytes = await this.#o.fs.readFile(this.#lockPath).catch((err: unknown) => {
      throw this.#o.writeFailed('reading the lock', err)
    })
    return bytes === null ? null : { kind: 'file', bytes }
  }

  /** Expired, or its holder is known dead. An unreadable lock is stale once it is older than the TTL. */
  async #isStale(holder: LockRecord | null): Promise<boolean> {
    const now = this.#o.clock().getTime()
    if (holder === null) {
      // Being written right now (a lock file of an earlier version), or half-written by a holder that crashed: its age decides.
      const entry = await this.#o.fs.pipeline('reading the lock', (p) => p.lstat(this.#lockPath))
      return entry === null || now - entry.mtimeMs > this.#o.lockTtlMs
    }
    const expiresAt = Date.parse(holder.expiresAt)
    if (Number.isNaN(expiresAt) || expiresAt <= now) return true
    return this.#o.isLockHolderAlive(holder) === false
  }

  /**
   * Removes the lock only if it still is exactly `expected`: moved aside to a
   * unique name first (one atomic step, so two processes judging the same
   * stale lock cannot both remove it), then checked. If what was moved turns
   * out to be someone's newer lock (it changed hands between our read and the
   * rename), it is put back exactly (a symlink is all in its target), unless
   * a new lock was created in the meantime. The exclusive create of the lock
   * then decides who holds it: only one can win.
   *
   * readFirst: read the lock before moving it, and leave it if it is not
   * `expected`. Taking over a stale lock always does: while another process
   * takes it over too, the lock path briefly holds a newer holder's lock, and
   * moving that aside (even to put it back) opens a window for a third.
   * Releasing our own lock while it is far from expiring does not: nobody
   * takes over a lock before it expires (its holder, us, is alive), so the
   * read would only cost a round trip. Then the aside entry is removed in the
   * same round trip as the move, since it can be restored from its target.
   */
  async #removeLockIf(expected: LockEntry, { readFirst }: { readFirst: boolean }): Promise<void> {
    await this.#o.fs.pipeline('removing the node lock', async (p) => {
      if (readFirst) {
        const current = await this.#entryAt(p, this.#lockPath)
        if (current === null || !sameEntry(current, expected)) return
      }
      const aside = posix.join(this.#o.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.removed`)
      const renamed = settled(p.rename(this.#lockPath, aside))
      const movedLink = settled(p.readlink(aside))
      const removedAtOnce = !readFirst && expected.kind === 'link' ? p.unlink(aside) : null
      removedAtOnce?.catch(() => undefined)
      const rename = await renamed
      if (!rename.ok) {
        // Gone already (someone else removed it), or the filesystem will not
        // rename right now (full, read-only ...): then remove it in place, which
        // is only less safe against a holder change in the last microseconds.
        const again = await this.#entryAt(p, this.#lockPath)
        if (again !== null && sameEntry(again, expected)) await p.unlink(this.#lockPath)
        return
      }
      const link = await movedLink
      // Not a symlink: a lock file, read before it is removed (removedAtOnce is only ever for a symlink expected).
      const moved: LockEntry | null = link.ok ? (link.value === null ? null : { kind: 'link', target: link.value }) : removedAtOnce ? null : await this.#fileEntryAt(p, aside)
      if (moved !== null && !sameEntry(moved, expected)) {
        if (moved.kind === 'link') await p.symlink(moved.target, this.#lockPath).catch(() => undefined)
        else await this.#createLockFile(p, moved.bytes).catch(() => undefined)
      }
      if (removedAtOnce) await removedAtOnce.catch(() => undefined)
      else await p.unlink(aside).catch(() => undefined)
    })
  }

  async #entryAt(p: NodePipeline, path: string): Promise<LockEntry | null> {
    const link = await settled(p.readlink(path))
    if (link.ok) return link.value === null ? null : { kind: 'link', target: link.value }
    return this.#fileEntryAt(p, path)
  }

  async #fileEntryAt(p: NodePipeline, path: string): Promise<LockEntry | null> {
    const handle = await p.open(path, 'read')
    if (handle === null) return null
    try {
      const bytes = await p.read(handle, 0, LOCK_FILE_MAX_BYTES)
      return { kind: 'file', bytes }
    } finally {
      p.close(handle)
    }
  }

  /** Puts back a lock file of an earlier version that was moved aside by mistake (exclusive: unless a new lock exists). */
  async #createLockFile(p: NodePipeline, bytes: Buffer): Promise<void> {
    const handle = await p.open(this.#lockPath, 'create')
    if (handle === null) return
    try {
      await p.write(handle, bytes)
    } finally {
      p.close(handle)
    }
  }

  /** Keeps a long holder's lock from expiring under it while it still runs. */
  #startRenewing(held: HeldLock<P>): void {
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

  /** A new symlink with the later expiry, renamed over the lock: the lock never disappears while we hold it. */
  async #renew(held: HeldLock<P>): Promise<void> {
    if (held.stopped) return
    const renewedPath = posix.join(this.#o.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.renewed`)
    const record = { ...held.record, expiresAt: new Date(this.#o.clock().getTime() + this.#o.lockTtlMs).toISOString() }
    const target = lockTarget(record)
    await this.#o.fs
      .pipeline('renewing the node lock', async (p) => {
        const current = p.readlink(this.#lockPath)
        const staged = settled(p.symlink(target, renewedPath))
        const now = await current.catch(() => undefined) // a failed read is no news: try again next time
        if (now !== held.target) {
          if (now !== undefined) held.lost = held.stopped = true // taken over after expiry: nothing of ours left to renew
          if ((await staged).ok) await p.unlink(renewedPath)
          return
        }
        const made = await staged
        if (!made.ok) return
        try {
          await p.rename(renewedPath, this.#lockPath)
        } catch {
          await p.unlink(renewedPath)
          return
        }
        held.record = record
        held.target = target
      })
      .catch(() => undefined)
  }

  async #release(held: HeldLock<P>): Promise<void> {
    held.stopped = true
    clearTimeout(held.renewTimer)
    await held.renewing
    // Only our own lock: if it expired and someone else took it, theirs stays.
    // Never a plain unlink, even well before expiry: see #removeLockIf.
    const farFromExpiry = !held.lost && Date.parse(held.record.expiresAt) - this.#o.clock().getTime() > this.#o.lockTtlMs / 3
    const ours: LockEntry = { kind: 'link', target: held.target }
    await this.#removeLockIf(ours, { readFirst: !farFromExpiry }).catch(() => {
      this.#unreleased.push(ours)
      if (this.#unreleased.length > UNRELEASED_KEPT) this.#unreleased.shift()
    })
  }

  #lockedError(holder: LockRecord | null): ServiceError {
    const who = holder
      ? `${holder.actor} (instance ${holder.instance}, ${holder.hostname} pid ${holder.pid}) since ${holder.acquiredAt}`
      : 'another writer (its lock is being written or cannot be read)'
    return new ServiceError(
      'LOCKED',
      `node ${this.#o.nodeName} is locked by ${who}; gave up after waiting ${this.#o.lockWaitMs} ms`,
    )
  }
}

/**
 * The holder record as a symlink target: one line of JSON, with every '/'
 * written \u002f (still JSON), so the target is a single path component that
 * names nothing. `ls -l stateDir` shows it; JSON.parse(readlink) reads it.
 */
export function lockTarget(record: LockRecord): string {
  return JSON.stringify(record).replace(/\//g, '\\u002f')
}

function parseLockEntry(entry: LockEntry): LockRecord | null {
  try {
    const parsed = lockRecordSchema.safeParse(JSON.parse(entry.kind === 'link' ? entry.target : entry.bytes.toString('utf8')))
    if (!parsed.success) return null
    return { ...parsed.data, pidNamespace: parsed.data.pidNamespace ?? null, token: parsed.data.token ?? '' }
  } catch {
    return null
  }
}

function randomHex(): string {
  return randomHexBytes(6)
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
