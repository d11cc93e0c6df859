// The node agent's write path, written once on top of a NodeFileSystem so that
// the local agent and the SSH agent (SFTP) share every rule: where temp files
// go, how a manifest is replaced atomically, and where backups live. The node
// lock that excludes other writers is node-lock.ts.
//
// Why it is done this way (docs/architecture.md, "What the kubelet does"):
// - The kubelet runs every file in staticPodPath whose name does not start
//   with '.', so the only thing ever created there besides the target is a
//   dotfile, and backups live in stateDir, outside staticPodPath.
// - The temp file sits in staticPodPath itself: same filesystem, so the rename
//   over the target is atomic and the kubelet sees the old file or the new one.
// - Files keep what the kubelet host expects: a replaced manifest keeps its
//   mode and owner (the temp file gets them before the rename); a new one,
//   and every backup, is 0600 and belongs to the writer, root on a kubelet
//   host (a root login, or the SFTP server started through sudo: sudo.ts), as
//   kubeadm writes them.
// - "Permission denied" is PRIVILEGE_DENIED: a directory the service may not
//   list is not an empty one.

import { createHash, randomBytes } from 'node:crypto'
import { posix } from 'node:path'
import { errorText, ServiceError, isServiceError } from '../errors.ts'
import type { DirEntry } from '../manifest/types.ts'
import { KUBELET_POD_LOGS_DIR } from '../kubelet-facts.ts'
import type {
  BackupInfo,
  ContainerLogRequest,
  ContainerLogResult,
  KubeletJournalRequest,
  KubeletJournalResult,
  KubeletReport,
  LockOwner,
  NodeAgent,
  RuntimeReport,
} from './agent.ts'
import { readBoundedFile, readContainerLog, readKubeletJournal, type DiagnosticsAccess, type RunCommand } from './diagnostics.ts'
import { NodeLock, sameMachineProcessLiveness, thisProcessIdentity, type LockHolderLiveness, type ProcessIdentity } from './node-lock.ts'
import { isPermissionDenied, type NodeFileSystem } from './node-fs.ts'

/** Every temp file this service creates ends with this, so leftovers are recognisably ours. */
export const TEMP_FILE_SUFFIX = '.staticpod-api.tmp'
/** Backups kept per manifest file name; older ones are removed. */
export const BACKUPS_KEPT = 20
/** Pruning waits until this many more have piled up, so it lists the directory once every few writes. */
export const BACKUPS_PRUNE_SLACK = 5

/** The kubelet's own limit on a manifest file. */
const KUBELET_MAX_FILE_BYTES = 10 * 1024 * 1024
/** Linux NAME_MAX. */
const NAME_MAX_BYTES = 255
const RANDOM_HEX_CHARS = 12
/** `.` + name + `.` + random + suffix must still fit in NAME_MAX. */
export const MAX_FILE_NAME_BYTES = NAME_MAX_BYTES - (2 + RANDOM_HEX_CHARS + TEMP_FILE_SUFFIX.length)
/** How many manifests listManifestDir reads at once (SFTP round trips overlap; memory stays bounded). */
const READ_CONCURRENCY = 8

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
  lockTtlMs: number
  /** How long withLock waits for the node before LOCKED; 0: not at all. */
  lockWaitMs: number
  /** Files bigger than this are listed without their content (the kubelet refuses them too). */
  maxFileBytes?: number
  clock?: () => Date
  runtime?: () => Promise<RuntimeReport>
  kubelet?: () => Promise<KubeletReport>
  /** How crictl and journalctl are run on the node, for logs and the journal (diagnostics.ts); without them, neither is there. */
  commands?: { crictl?: RunCommand; journalctl?: RunCommand }
  /** The kubelet's podLogsDir on the node, read where crictl cannot give a log; default /var/log/pods. */
  podLogDir?: string
  /** Defaults to sameMachineProcessLiveness(processIdentity). */
  isLockHolderAlive?: LockHolderLiveness
  /** Defaults to this process (hostname, pid, pid namespace). */
  processIdentity?: ProcessIdentity
  hooks?: FileAgentHooks
  /** Releases what the agent was built on (an SSH connection, say). */
  onClose?: () => Promise<void>
}

/**
 * The agent's own check of a file name, whatever the service checked before:
 * a single plain, visible file name, so nothing outside staticPodPath (or a
 * dotfile the kubelet would ignore) can be written through an agent.
 */
function assertSafeFileName(fileName: string): void {
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

export class FileAgent implements NodeAgent {
  readonly nodeName: string
  readonly staticPodPath: string
  readonly stateDir: string

  readonly #fs: NodeFileSystem
  readonly #lock: NodeLock
  readonly #maxFileBytes: number
  readonly #clock: () => Date
  readonly #runtime: (() => Promise<RuntimeReport>) | undefined
  readonly #kubelet: (() => Promise<KubeletReport>) | undefined
  readonly #hooks: FileAgentHooks
  readonly #onClose: (() => Promise<void>) | undefined
  readonly #diagnostics: DiagnosticsAccess

  /** Temp files this agent is writing right now: never swept as leftovers. */
  readonly #tempsInFlight = new Set<string>()
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
    this.#maxFileBytes = positive(options.maxFileBytes ?? KUBELET_MAX_FILE_BYTES, 'maxFileBytes')
    this.#clock = options.clock ?? (() => new Date())
    const identity = options.processIdentity ?? thisProcessIdentity()
    this.#lock = new NodeLock({
      fs,
      nodeName: this.nodeName,
      stateDir: this.stateDir,
      lockTtlMs: options.lockTtlMs,
      lockWaitMs: options.lockWaitMs,
      clock: this.#clock,
      identity,
      isLockHolderAlive: options.isLockHolderAlive ?? sameMachineProcessLiveness(identity),
      writeFailed: (what, err) => this.#writeFailed(what, err),
    })
    this.#runtime = options.runtime
    this.#kubelet = options.kubelet
    this.#hooks = options.hooks ?? {}
    this.#onClose = options.onClose
    const absent = (command: string): RunCommand => () => Promise.resolve({ ran: false, missing: true, reason: `this agent has no way to run ${command}` })
    this.#diagnostics = {
      nodeName: this.nodeName,
      crictl: options.commands?.crictl ?? absent('crictl'),
      journalctl: options.commands?.journalctl ?? absent('journalctl'),
      fs,
      podLogDir: absoluteDir(options.podLogDir ?? KUBELET_POD_LOGS_DIR, 'podLogDir'),
      clock: this.#clock,
    }
  }

  // ---- the node lock (node-lock.ts) -------------------------------------------

  withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T> {
    return this.#lock.withLock(owner, fn)
  }

  withTurn<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.withTurn(fn)
  }

  // ---- reading -------------------------------------------------------------

  async listManifestDir(): Promise<DirEntry[]> {
    const all = await this.#fs.readDir(this.staticPodPath).catch((err: unknown) => {
      throw this.#readFailed(this.staticPodPath, err)
    })
    // Under the lock, the leftovers seen here are the ones the next write removes, without listing again.
    const held = this.#lock.held
    if (held) held.leftoverTemps = all.filter((entry) => isTempFileName(entry.name)).map((entry) => entry.name)
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
            const path = posix.join(this.staticPodPath, entry.name)
            const bytes = await this.#fs.readFile(path).catch((err: unknown) => {
              throw this.#readFailed(path, err)
            })
            if (bytes === null) return null // removed since the listing
            if (bytes.length > this.#maxFileBytes) return { name: entry.name, kind: 'file', size: bytes.length }
            // The modification time tells diagnosis whether the kubelet has had time to take the file up.
            const modifiedAt = entry.mtimeMs > 0 ? { modifiedAt: new Date(entry.mtimeMs).toISOString() } : {}
            return { name: entry.name, kind: 'file', size: bytes.length, bytes, ...modifiedAt }
          }),
        )),
      )
    }
    return listed.filter((entry): entry is DirEntry => entry !== null)
  }

  async readManifest(fileName: string): Promise<Buffer | null> {
    assertSafeFileName(fileName)
    const path = posix.join(this.staticPodPath, fileName)
    return this.#fs.readFile(path).catch((err: unknown) => {
      throw this.#readFailed(path, err)
    })
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
    await this.#replaceAtomically(this.staticPodPath, fileName, bytes, `writing ${fileName}`, { keepModeAndOwner: true, afterTempWrite: this.#hooks.afterTempWrite })
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
      await this.#replaceAtomically(dir, backupName, bytes, `backing up ${fileName}`, { keepModeAndOwner: false })
    } catch (err) {
      this.#backupDirs.delete(dir) // removed under us, perhaps: look again next time
      throw err
    }
    known.count++
    if (known.count >= BACKUPS_KEPT + BACKUPS_PRUNE_SLACK) known.count = await this.#pruneBackups(dir)
    return { path: posix.join(dir, backupName) }
  }

  /**
   * Temp dotfile next to the target, written and flushed (with the target's
   * mode and owner when asked and there is a target, else 0600), renamed over
   * the target, then the directory flushed so the rename survives a power cut.
   * On failure the temp file is removed and the target is untouched.
   */
  async #replaceAtomically(
    dir: string,
    fileName: string,
    bytes: Uint8Array,
    what: string,
    options: { keepModeAndOwner: boolean; afterTempWrite?: ((tempPath: string) => Promise<void>) | undefined },
  ): Promise<void> {
    const tempPath = posix.join(dir, `.${fileName}.${randomHex()}${TEMP_FILE_SUFFIX}`)
    const target = posix.join(dir, fileName)
    this.#tempsInFlight.add(tempPath)
    try {
      // Exclusive: never write through a file (or symlink) someone planted under our name.
      await this.#fs.writeNewFile(tempPath, bytes, { exclusive: true, ...(options.keepModeAndOwner ? { sameModeAndOwnerAs: target } : {}) })
      await options.afterTempWrite?.(tempPath)
      await this.#fs.rename(tempPath, target)
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
    const held = this.#lock.held
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
    // operation timing out, sudo refusing) keeps its code: the caller acts on it differently.
    const code = isServiceError(err) ? err.code : isPermissionDenied(err) ? 'PRIVILEGE_DENIED' : 'WRITE_FAILED'
    const hint = code === 'PRIVILEGE_DENIED' && !isServiceError(err) ? ` (${NEEDS_ROOT})` : ''
    return new ServiceError(code, `${what} on node ${this.nodeName} failed: ${errorText(err)}${hint}`)
  }

  /** A read that failed for want of permission is PRIVILEGE_DENIED; any other failure passes on as it is. */
  #readFailed(path: string, err: unknown): unknown {
    if (isServiceError(err) || !isPermissionDenied(err)) return err
    return new ServiceError('PRIVILEGE_DENIED', `node ${this.nodeName}: ${path} cannot be read: permission denied (${NEEDS_ROOT})`)
  }

  // ---- runtime and kubelet ---------------------------------------------------

  async runtimeStatus(): Promise<RuntimeReport> {
    if (!this.#runtime) return { available: false, reason: 'this agent has no access to a container runtime' }
    try {
      return await this.#runtime()
    } catch (err) {
      return { available: false, reason: `asking the container runtime failed: ${errorText(err)}` }
    }
  }

  async kubeletHealth(): Promise<KubeletReport> {
    if (!this.#kubelet) return { available: false, reason: 'this agent has no way to ask the kubelet' }
    try {
      return await this.#kubelet()
    } catch (err) {
      return { available: false, reason: `asking the kubelet failed: ${errorText(err)}` }
    }
  }

  // ---- diagnosis (diagnostics.ts) -----------------------------------------------

  async containerLog(req: ContainerLogRequest): Promise<ContainerLogResult | null> {
    return readContainerLog(this.#diagnostics, req).catch((err: unknown) => {
      throw this.#readFailed(this.#diagnostics.podLogDir, err)
    })
  }

  kubeletJournal(req: KubeletJournalRequest): Promise<KubeletJournalResult> {
    return readKubeletJournal(this.#diagnostics, req)
  }

  async readNodeFile(absolutePath: string, maxBytes: number): Promise<Buffer | null> {
    return readBoundedFile(this.#fs, this.nodeName, absolutePath, maxBytes).catch((err: unknown) => {
      throw this.#readFailed(absolutePath, err)
    })
  }

  async close(): Promise<void> {
    await this.#onClose?.()
  }
}

/** What a permission error on a node means for its registration. */
const NEEDS_ROOT = 'the service needs root on the node: a root login (privilege NONE), or privilege SUDO with the sudoers rule in the README'

const BACKUP_NAME = /^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{12}\.yaml$/

function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_FILE_SUFFIX)
}

/** 20240102T030405.678Z: sorts by time as text, and has no ':' (awkward in file names). */
function compactUtcTimestamp(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '')
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


