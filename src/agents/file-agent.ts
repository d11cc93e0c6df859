// The node agent's write path and node lock, written once on top of a
// NodeFileSystem so that the local agent and the SSH agent (SFTP) share every
// rule: where temp files go, how a manifest is replaced atomically, where
// backups live, and how several processes and service instances exclude each
// other on one node.
//
// Why it is done this way (see DESIGN.md, "Facts about the kubelet"):
// - The kubelet runs every file in staticPodPath whose name does not start
//   with '.', so the only thing ever created there besides the target is a
//   dotfile, and backups live in stateDir, outside staticPodPath.
// - The temp file sits in staticPodPath itself: same filesystem, so the rename
//   over the target is atomic and the kubelet sees the old file or the new one.
// - The node lock is a file created with O_EXCL, the one primitive that both a
//   local filesystem and SFTP make atomic.

import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, readlinkSync } from 'node:fs'
import { hostname as osHostname } from 'node:os'
import { posix } from 'node:path'
import { performance } from 'node:perf_hooks'
import { z } from 'zod'
import { ServiceError, isServiceError } from '../errors.ts'
import type { DirEntry } from '../manifest/types.ts'
import type { BackupInfo, KubeletReport, LockOwner, NodeAgent, RuntimeReport } from './agent.ts'
import { isFileExistsError, type NodeFileSystem } from './node-fs.ts'

/** Every temp file this service creates ends with this, so leftovers are recognisably ours. */
export const TEMP_FILE_SUFFIX = '.staticpod-api.tmp'
/** The node lock, inside stateDir. */
export const LOCK_FILE_NAME = 'lock'
/** Backups kept per manifest file name; older ones are removed. */
export const BACKUPS_KEPT = 20
/** Pruning waits until this many more have piled up, so it lists the directory once every few writes. */
export const BACKUPS_PRUNE_SLACK = 5

const DEFAULT_LOCK_TTL_MS = 30_000
const DEFAULT_LOCK_WAIT_MS = 10_000
/** The kubelet's own limit on a manifest file. */
const DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
/** Linux NAME_MAX. */
const NAME_MAX_BYTES = 255
const RANDOM_HEX_CHARS = 12
/** `.` + name + `.` + random + suffix must still fit in NAME_MAX. */
export const MAX_FILE_NAME_BYTES = NAME_MAX_BYTES - (2 + RANDOM_HEX_CHARS + TEMP_FILE_SUFFIX.length)
/** How many manifests listManifestDir reads at once (SFTP round trips overlap; memory stays bounded). */
const READ_CONCURRENCY = 8
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

export interface FileAgentHooks {
  /**
   * Runs after the temp file is written, flushed and closed, before the rename.
   * For tests that crash the process exactly there.
   */
  afterTempWrite?: (tempPath: string) => Promise<void>
}

export interface FileAgentOptions {
  nodeName: string
  /** Absolute path on the node. */
  staticPodPath: string
  /** Absolute path on the node, not inside staticPodPath: the lock and the backups. */
  stateDir: string
  /** A lock not renewed for this long is free for the taking. Renewed every third of it while held. */
  lockTtlMs?: number
  /** How long withLock waits for a held lock before LOCKED. */
  lockWaitMs?: number
  /** Files bigger than this are listed without their content (the kubelet refuses them too). */
  maxFileBytes?: number
  clock?: () => Date
  runtime?: () => Promise<RuntimeReport>
  kubelet?: () => Promise<KubeletReport>
  /** Defaults to sameMachineProcessLiveness(processIdentity). */
  isLockHolderAlive?: LockHolderLiveness
  /** Defaults to this process (hostname, pid, pid namespace). */
  processIdentity?: ProcessIdentity
  hooks?: FileAgentHooks
  /** Releases what the agent was built on (an SSH connection, say). */
  onClose?: () => Promise<void>
}

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

/**
 * The agent's own check of a file name, whatever the service checked before:
 * a single plain, visible file name, so nothing outside staticPodPath (or a
 * dotfile the kubelet would ignore) can be written through an agent.
 */
export function assertSafeFileName(fileName: string): void {
  const reject = (why: string): never => {
    throw new ServiceError('VALIDATION_FAILED', `fileName ${JSON.stringify(fileName)} ${why}`, ['fileName'])
  }
  if (fileName.length === 0) reject('is empty')
  if (fileName.includes('/') || fileName.includes('\\')) reject('must be a plain file name, without / or \\')
  if (fileName.includes('\0')) reject('contains a NUL character')
  if (fileName === '.' || fileName === '..') reject('is not a file name')
  if (fileName.startsWith('.')) reject('starts with "." and the kubelet ignores such files')
  if (Buffer.byteLength(fileName) > MAX_FILE_NAME_BYTES) reject(`is longer than ${MAX_FILE_NAME_BYTES} bytes`)
}

interface QueueEntry {
  owner: LockOwner
  enqueuedAt: number
  hasTurn: boolean
  giveTurn: () => void
  turn: Promise<void>
}

interface HeldLock {
  record: LockRecord
  bytes: Buffer
  /** Temp files in staticPodPath seen by a listing made under this lock (undefined: not listed yet). */
  leftoverTemps?: string[]
  renewTimer: NodeJS.Timeout | undefined
  renewing: Promise<void> | undefined
  stopped: boolean
}

type CreateOutcome = { acquired: true; held: HeldLock } | { acquired: false; holder: LockRecord | null }

export class FileAgent implements NodeAgent {
  readonly nodeName: string
  readonly staticPodPath: string
  readonly stateDir: string

  readonly #fs: NodeFileSystem
  readonly #lockPath: string
  readonly #lockTtlMs: number
  readonly #lockWaitMs: number
  readonly #maxFileBytes: number
  readonly #clock: () => Date
  readonly #runtime: (() => Promise<RuntimeReport>) | undefined
  readonly #kubelet: (() => Promise<KubeletReport>) | undefined
  readonly #identity: ProcessIdentity
  readonly #isLockHolderAlive: LockHolderLiveness
  readonly #hooks: FileAgentHooks
  readonly #onClose: (() => Promise<void>) | undefined

  /** In-process callers wait here in arrival order; the head holds (or is taking) the lock. */
  readonly #queue: QueueEntry[] = []
  /** When the queue last moved (an acquisition or a release), in performance.now() time. */
  #lastQueueProgressAt = 0
  #heldLock: HeldLock | null = null
  /** The holder seen in the lock file on the last failed attempt, for LOCKED messages. */
  #lastForeignHolder: LockRecord | null = null
  /**
   * Our own lock files that release could not remove (the node went away
   * mid-release). Nobody holds them, and the process that would tell is us:
   * the next acquisition clears them instead of waiting for their expiry.
   */
  readonly #unreleased: Buffer[] = []
  /** Temp files this agent is writing right now: never swept as leftovers. */
  readonly #tempsInFlight = new Set<string>()
  #stateDirReady = false
  /**
   * Backup directories this agent has made sure of, with how many backups each
   * holds as far as it knows: pruning lists a directory only when that count
   * says it is due, not at every write.
   */
  readonly #backupDirs = new Map<string, { count: number }>()

  constructor(fs: NodeFileSystem, options: FileAgentOptions) {
    this.#fs = fs
    this.nodeName = options.nodeName
    this.staticPodPath = absoluteDir(options.staticPodPath, 'staticPodPath')
    this.stateDir = absoluteDir(options.stateDir, 'stateDir')
    const relative = posix.relative(this.staticPodPath, this.stateDir)
    if (relative === '' || !(relative === '..' || relative.startsWith('../'))) {
      throw new Error(
        `stateDir ${this.stateDir} must not be inside staticPodPath ${this.staticPodPath}: backups there could become pods`,
      )
    }
    this.#lockPath = posix.join(this.stateDir, LOCK_FILE_NAME)
    this.#lockTtlMs = positive(options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS, 'lockTtlMs')
    this.#lockWaitMs = positive(options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS, 'lockWaitMs')
    this.#maxFileBytes = positive(options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES, 'maxFileBytes')
    this.#clock = options.clock ?? (() => new Date())
    this.#runtime = options.runtime
    this.#kubelet = options.kubelet
    this.#identity = options.processIdentity ?? thisProcessIdentity()
    this.#isLockHolderAlive = options.isLockHolderAlive ?? sameMachineProcessLiveness(this.#identity)
    this.#hooks = options.hooks ?? {}
    this.#onClose = options.onClose
  }

  // ---- reading -------------------------------------------------------------

  async listManifestDir(): Promise<DirEntry[]> {
    const all = await this.#fs.readDir(this.staticPodPath)
    // Under the lock, the leftovers seen here are the ones the next write removes, without listing again.
    if (this.#heldLock) this.#heldLock.leftoverTemps = all.filter((entry) => isTempFileName(entry.name)).map((entry) => entry.name)
    const visible = all
      .filter((entry) => !entry.name.startsWith('.'))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    const listed: Array<DirEntry | null> = []
    for (let i = 0; i < visible.length; i += READ_CONCURRENCY) {
      const batch = visible.slice(i, i + READ_CONCURRENCY)
      listed.push(
        ...(await Promise.all(
          batch.map(async (entry): Promise<DirEntry | null> => {
            if (entry.kind !== 'file' || entry.size > this.#maxFileBytes) {
              return { name: entry.name, kind: entry.kind, size: entry.size }
            }
            const bytes = await this.#fs.readFile(posix.join(this.staticPodPath, entry.name))
            if (bytes === null) return null // removed since the listing
            if (bytes.length > this.#maxFileBytes) return { name: entry.name, kind: 'file', size: bytes.length }
            return { name: entry.name, kind: 'file', size: bytes.length, bytes }
          }),
        )),
      )
    }
    return listed.filter((entry): entry is DirEntry => entry !== null)
  }

  async readManifest(fileName: string): Promise<Buffer | null> {
    assertSafeFileName(fileName)
    return this.#fs.readFile(posix.join(this.staticPodPath, fileName))
  }

  // ---- writing -------------------------------------------------------------

  async writeManifest(fileName: string, bytes: Uint8Array): Promise<void> {
    assertSafeFileName(fileName)
    if (bytes.byteLength > this.#maxFileBytes) {
      throw new ServiceError(
        'VALIDATION_FAILED',
        `the manifest is ${bytes.byteLength} bytes; the kubelet reads at most ${this.#maxFileBytes}`,
        ['manifest'],
      )
    }
    await this.#removeLeftoverTempFiles(this.staticPodPath)
    await this.#replaceAtomically(this.staticPodPath, fileName, bytes, `writing ${fileName}`, this.#hooks.afterTempWrite)
  }

  async deleteManifest(fileName: string): Promise<void> {
    assertSafeFileName(fileName)
    await this.#removeLeftoverTempFiles(this.staticPodPath)
    try {
      await this.#fs.unlink(posix.join(this.staticPodPath, fileName))
    } catch (err) {
      throw this.#writeFailed(`deleting ${fileName}`, err)
    }
    await this.#fs.fsyncDir(this.staticPodPath)
  }

  async backup(fileName: string, bytes: Uint8Array): Promise<BackupInfo> {
    assertSafeFileName(fileName)
    const dir = posix.join(this.stateDir, 'backups', fileName)
    const hashPrefix = createHash('sha256').update(bytes).digest('hex').slice(0, 12)
    const backupName = `${compactUtcTimestamp(this.#clock())}-${hashPrefix}.yaml`
    let known = this.#backupDirs.get(dir)
    if (known === undefined) {
      try {
        await this.#fs.mkdirp(dir)
      } catch (err) {
        throw this.#writeFailed(`backing up ${fileName}`, err)
      }
      await this.#removeLeftoverTempFiles(dir)
      known = { count: await this.#countBackups(dir) }
      this.#backupDirs.set(dir, known)
    }
    try {
      await this.#replaceAtomically(dir, backupName, bytes, `backing up ${fileName}`)
    } catch (err) {
      this.#backupDirs.delete(dir) // removed under us, perhaps: look again next time
      throw err
    }
    known.count++
    if (known.count >= BACKUPS_KEPT + BACKUPS_PRUNE_SLACK) known.count = await this.#pruneBackups(dir)
    return { path: posix.join(dir, backupName) }
  }

  /**
   * Temp dotfile next to the target, written and flushed, renamed over the
   * target, then the directory flushed so the rename survives a power cut.
   * On failure the temp file is removed and the target is untouched.
   */
  async #replaceAtomically(
    dir: string,
    fileName: string,
    bytes: Uint8Array,
    what: string,
    afterTempWrite?: (tempPath: string) => Promise<void>,
  ): Promise<void> {
    const tempPath = posix.join(dir, `.${fileName}.${randomHex()}${TEMP_FILE_SUFFIX}`)
    this.#tempsInFlight.add(tempPath)
    try {
      // Exclusive: never write through a file (or symlink) someone planted under our name.
      await this.#fs.writeNewFile(tempPath, bytes, { exclusive: true })
      await afterTempWrite?.(tempPath)
      await this.#fs.rename(tempPath, posix.join(dir, fileName))
    } catch (err) {
      await this.#fs.unlink(tempPath).catch(() => undefined)
      throw this.#writeFailed(what, err)
    } finally {
      this.#tempsInFlight.delete(tempPath)
    }
    await this.#fs.fsyncDir(dir)
  }

  /**
   * Temp files left by a process killed mid-write. Only while this agent holds
   * the node lock: otherwise one could be another process's write in flight.
   */
  async #removeLeftoverTempFiles(dir: string): Promise<void> {
    const held = this.#heldLock
    if (!held) return
    try {
      const seen = dir === this.staticPodPath ? held.leftoverTemps : undefined
      const names = seen ?? (await this.#fs.readDir(dir)).map((entry) => entry.name).filter(isTempFileName)
      if (seen) held.leftoverTemps = []
      for (const name of names) {
        const path = posix.join(dir, name)
        if (!this.#tempsInFlight.has(path)) await this.#fs.unlink(path)
      }
    } catch {
      // Tidying up must not fail the write it precedes; the next write tries again.
    }
  }

  async #countBackups(dir: string): Promise<number> {
    try {
      return (await this.#backupNames(dir)).length
    } catch {
      return 0
    }
  }

  /** Removes all but the newest BACKUPS_KEPT; returns how many are left. */
  async #pruneBackups(dir: string): Promise<number> {
    try {
      const backups = await this.#backupNames(dir)
      const excess = backups.slice(0, Math.max(0, backups.length - BACKUPS_KEPT))
      for (const name of excess) await this.#fs.unlink(posix.join(dir, name))
      return backups.length - excess.length
    } catch {
      // A backup that was kept is worth more than one too many on disk.
      return BACKUPS_KEPT
    }
  }

  async #backupNames(dir: string): Promise<string[]> {
    return (await this.#fs.readDir(dir))
      .filter((entry) => entry.kind === 'file' && BACKUP_NAME.test(entry.name))
      .map((entry) => entry.name)
      .sort()
  }

  #writeFailed(what: string, err: unknown): ServiceError {
    // A failure that already says what went wrong (the node unreachable, an
    // operation timing out) keeps its code: the caller acts on it differently.
    const code = isServiceError(err) ? err.code : 'WRITE_FAILED'
    return new ServiceError(code, `${what} on node ${this.nodeName} failed: ${describeError(err)}`)
  }

  // ---- the node lock ---------------------------------------------------------

  async withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T> {
    const entry = this.#enqueue(owner)
    try {
      await this.#waitForTurn(entry)
      const held = await this.#acquireLockFile(owner, entry)
      this.#heldLock = held
      this.#lastQueueProgressAt = performance.now()
      this.#startRenewing(held)
      try {
        return await fn()
      } finally {
        this.#heldLock = null
        await this.#release(held)
        this.#lastQueueProgressAt = performance.now()
      }
    } finally {
      this.#leaveQueue(entry)
    }
  }

  #enqueue(owner: LockOwner): QueueEntry {
    let giveTurn!: () => void
    const turn = new Promise<void>((resolve) => (giveTurn = resolve))
    const entry: QueueEntry = { owner, enqueuedAt: performance.now(), hasTurn: false, giveTurn, turn }
    entry.giveTurn = () => {
      entry.hasTurn = true
      giveTurn()
    }
    this.#queue.push(entry)
    if (this.#queue.length === 1) entry.giveTurn()
    return entry
  }

  #leaveQueue(entry: QueueEntry): void {
    const index = this.#queue.indexOf(entry)
    if (index < 0) return
    this.#queue.splice(index, 1)
    if (index === 0) this.#queue[0]?.giveTurn()
  }

  /**
   * A waiter gives up only when the queue has not moved for lockWaitMs: twenty
   * callers that each hold the lock briefly all get their turn.
   */
  #deadlineOf(entry: QueueEntry): number {
    return Math.max(entry.enqueuedAt, this.#lastQueueProgressAt) + this.#lockWaitMs
  }

  async #waitForTurn(entry: QueueEntry): Promise<void> {
    while (!entry.hasTurn) {
      const left = this.#deadlineOf(entry) - performance.now()
      if (left <= 0) throw this.#lockedError(this.#heldLock?.record ?? this.#lastForeignHolder)
      await settlesWithin(entry.turn, left)
    }
  }

  async #acquireLockFile(owner: LockOwner, entry: QueueEntry): Promise<HeldLock> {
    if (!this.#stateDirReady) {
      try {
        await this.#fs.mkdirp(this.stateDir)
      } catch (err) {
        throw this.#writeFailed(`creating the state directory ${this.stateDir}`, err)
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
      const left = this.#deadlineOf(entry) - performance.now()
      if (left <= 0) throw this.#lockedError(outcome.holder)
      await sleep(Math.min(left, POLL_MIN_MS + Math.random() * POLL_JITTER_MS))
    }
  }

  async #tryCreateLockFile(owner: LockOwner): Promise<CreateOutcome> {
    let holder: LockRecord | null = null
    for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
      const now = this.#clock()
      const record: LockRecord = {
        actor: owner.actor,
        instance: owner.instance,
        hostname: this.#identity.hostname,
        pid: this.#identity.pid,
        pidNamespace: this.#identity.pidNamespace,
        acquiredAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + this.#lockTtlMs).toISOString(),
        token: randomHex(),
      }
      const bytes = lockFileBytes(record)
      try {
        // Not flushed: a lock only means something while its holder's connection lives, and a power cut ends both.
        await this.#fs.writeNewFile(this.#lockPath, bytes, { exclusive: true, durable: false })
        return { acquired: true, held: { record, bytes, renewTimer: undefined, renewing: undefined, stopped: false } }
      } catch (err) {
        if (!isFileExistsError(err)) {
          await this.#removeOwnPartialLockFile(bytes)
          throw this.#writeFailed('creating the lock file', err)
        }
      }
      const existing = await this.#fs.readFile(this.#lockPath)
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
    const now = this.#clock().getTime()
    if (holder === null) {
      // Being written right now, or half-written by a holder that crashed: its age decides.
      const entry = (await this.#fs.readDir(this.stateDir)).find((e) => e.name === LOCK_FILE_NAME)
      return entry === undefined || now - entry.mtimeMs > this.#lockTtlMs
    }
    const expiresAt = Date.parse(holder.expiresAt)
    if (Number.isNaN(expiresAt) || expiresAt <= now) return true
    return this.#isLockHolderAlive(holder) === false
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
    const current = await this.#fs.readFile(this.#lockPath)
    if (current === null || !current.equals(expected)) return
    const aside = posix.join(this.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.removed`)
    try {
      await this.#fs.rename(this.#lockPath, aside)
    } catch {
      // Gone already (someone else removed it), or the filesystem will not
      // rename right now (full, read-only ...): then remove it in place, which
      // is only less safe against a holder change in the last microseconds.
      const again = await this.#fs.readFile(this.#lockPath)
      if (again !== null && again.equals(expected)) await this.#fs.unlink(this.#lockPath)
      return
    }
    const moved = await this.#fs.readFile(aside)
    if (moved !== null && !moved.equals(expected)) {
      await this.#fs.writeNewFile(this.#lockPath, moved, { exclusive: true }).catch(() => undefined)
    }
    await this.#fs.unlink(aside).catch(() => undefined)
  }

  /** Our exclusive create succeeded but the write after it failed: do not leave a half lock behind. */
  async #removeOwnPartialLockFile(intended: Buffer): Promise<void> {
    try {
      const left = await this.#fs.readFile(this.#lockPath)
      if (left !== null && left.length < intended.length && intended.subarray(0, left.length).equals(left)) {
        await this.#fs.unlink(this.#lockPath)
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
      }, Math.max(1, Math.floor(this.#lockTtlMs / 3)))
      held.renewTimer.unref()
    }
    schedule()
  }

  async #renew(held: HeldLock): Promise<void> {
    if (held.stopped) return
    const renewedPath = posix.join(this.stateDir, `.${LOCK_FILE_NAME}.${randomHex()}.renewed`)
    try {
      const current = await this.#fs.readFile(this.#lockPath)
      if (current === null || !current.equals(held.bytes)) {
        held.stopped = true // lost (taken over after expiry): nothing of ours left to renew
        return
      }
      const record = { ...held.record, expiresAt: new Date(this.#clock().getTime() + this.#lockTtlMs).toISOString() }
      const bytes = lockFileBytes(record)
      await this.#fs.writeNewFile(renewedPath, bytes, { exclusive: true, durable: false })
      // Replace in one step: the lock file never disappears while we hold it.
      await this.#fs.rename(renewedPath, this.#lockPath)
      held.record = record
      held.bytes = bytes
    } catch {
      await this.#fs.unlink(renewedPath).catch(() => undefined)
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
      `node ${this.nodeName} is locked by ${who}; gave up after waiting ${this.#lockWaitMs} ms`,
    )
  }

  // ---- runtime and kubelet ---------------------------------------------------

  async runtimeStatus(): Promise<RuntimeReport> {
    if (!this.#runtime) return { available: false, reason: 'this agent has no access to a container runtime' }
    try {
      return await this.#runtime()
    } catch (err) {
      return { available: false, reason: `asking the container runtime failed: ${describeError(err)}` }
    }
  }

  async kubeletHealth(): Promise<KubeletReport> {
    if (!this.#kubelet) return { available: false, reason: 'this agent has no way to ask the kubelet' }
    try {
      return await this.#kubelet()
    } catch (err) {
      return { available: false, reason: `asking the kubelet failed: ${describeError(err)}` }
    }
  }

  async close(): Promise<void> {
    await this.#onClose?.()
  }
}

const BACKUP_NAME = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{12}\.yaml$/

function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_FILE_SUFFIX)
}

/** 20240102T030405.678Z: sorts by time as text, and has no ':' (awkward in file names). */
function compactUtcTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '')
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

function absoluteDir(path: string, what: string): string {
  if (!posix.isAbsolute(path)) throw new Error(`${what} must be an absolute path, got ${JSON.stringify(path)}`)
  const normalised = posix.normalize(path)
  return normalised.length > 1 && normalised.endsWith('/') ? normalised.slice(0, -1) : normalised
}

function positive(value: number, what: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${what} must be a positive number, got ${value}`)
  return value
}

function randomHex(): string {
  return randomBytes(RANDOM_HEX_CHARS / 2).toString('hex')
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Waits for promise, or ms, whichever comes first, without leaving a timer behind. */
async function settlesWithin(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  } finally {
    clearTimeout(timer)
  }
}
