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
//   and every backup copied, is 0600 and belongs to the writer, root on a
//   kubelet host (a root login, or the SFTP server started through sudo:
//   sudo.ts), as kubeadm writes them. A backup is the replaced file itself,
//   linked, only when that file is one already (#linkBackup).
// - "Permission denied" is PRIVILEGE_DENIED: a directory the service may not
//   list is not an empty one.
// - Every step is a pipeline of requests (node-fs.ts NodePipeline), so a write
//   waits for the node only where it needs an answer's content: the listing
//   and the write's files go out behind the lock's request, the backup with
//   the write, the flushes and the read-back's open behind the rename
//   (docs/architecture.md, "How few times the write path waits for the node").

import { createHash } from 'node:crypto'
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
import { isNoSuchFile, isPermissionDenied, type NodeFileSystem, type NodeHandle, type NodePipeline, type NodeStat } from './node-fs.ts'
import { randomHex as randomHexBytes } from '../random-hex.ts'

/** Every temp file this service creates ends with this, so leftovers are recognisably ours. */
export const TEMP_FILE_SUFFIX = '.staticpod-api.tmp'
/** Backups kept per manifest file name; older ones are removed. */
export const BACKUPS_KEPT = 20
/** Pruning waits until this many more have piled up, so it lists the directory once every few writes. */
export const BACKUPS_PRUNE_SLACK = 5

/** Set-id, sticky, group and other bits: a file with none of them is one only its owner can read. */
const ONLY_OWNER_MASK = 0o7077
/** The kubelet's own limit on a manifest file. */
const KUBELET_MAX_FILE_BYTES = 10 * 1024 * 1024
/** Linux NAME_MAX. */
const NAME_MAX_BYTES = 255
const RANDOM_HEX_CHARS = 12
/** `.` + name + `.` + random + suffix must still fit in NAME_MAX. */
export const MAX_FILE_NAME_BYTES = NAME_MAX_BYTES - (2 + RANDOM_HEX_CHARS + TEMP_FILE_SUFFIX.length)
/** How many manifests listManifestDir reads at once when it did not expect them (SFTP round trips overlap; memory stays bounded). */
const READ_CONCURRENCY = 8
/** Manifests a listing opens before the directory's answer, by the names the last listing found (bounded: each is a request and a buffer). */
const EXPECTED_FILES_MAX = 64
/** What the first READ of a file named only in a hint (expectFiles) asks for. */
const EXPECTED_FILE_SIZE_GUESS = 16 * 1024
/** The first READ of a manifest asks for what it had last time plus this, so one READ usually reads it whole. */
const READ_SLACK_BYTES = 4096
/** One READ at most: below OpenSSH's and ssh2's limits (256 KiB less headers), above any sane manifest. */
const READ_CHUNK_BYTES = 128 * 1024

export interface FileAgentHooks {
  /**
   * Runs after the temp file is written and flushed, before the rename.
   * For tests that crash the process exactly there.
   */
  afterTempWrite?: (tempPath: string) => Promise<void>
}

/** A listing of staticPodPath (#list): what listManifestDir returns, and what the write path reuses of it under the lock. */
interface Listing {
  entries: DirEntry[]
  /** Every visible entry's attributes, symlinks followed: the mode and owner a replaced manifest keeps. */
  stats: Map<string, NodeStat>
  /** Our temp files left there (a process killed mid-write). */
  temps: string[]
  /** Visible names that are symlinks: a backup of one is a copy of its bytes (a link would be a link to the symlink). */
  symlinks: Set<string>
}

interface PendingBackup {
  fileName: string
  bytes: Buffer
  dir: string
  name: string
  /**
   * The manifest's path when the listing under this lock read exactly these
   * bytes from it, as a regular file: the backup can then be that file
   * itself, linked (#linkBackup), instead of a copy. Null: copied.
   */
  linkFrom: string | null
}

/**
 * What the agent knows and owes under the node lock it holds (one withLock
 * call): facts read from the node under the lock, each good until this agent
 * changes the node, and a backup asked for and not yet written.
 */
interface Hold {
  /** The listing started behind the request that took the lock, until a listing or a write takes it. */
  prefetched: Promise<Listing> | undefined
  /** Files opened behind the request that took the lock, for the write that usually follows; each taken once, the rest removed at release. */
  prepared: Prepared | undefined
  /** The last listing made under this lock, until the next write or delete. */
  listed: Listing | undefined
  /** backup() under the lock returns at once: the copy is written with the next write or delete (before it changes anything), or at release. */
  pendingBackup: PendingBackup | undefined
  /** The file as read back right after the last write or delete, for the readManifest that checks it. */
  readBack: { fileName: string; bytes: Buffer | null } | undefined
}

/** A new, empty 0600 file, open for writing: its path and handle (null: it could not be made). */
type OpenedTemp = Promise<{ path: string; handle: NodeHandle } | null>

/**
 * What a write needs open before it can send its bytes, opened with the
 * lock's request (the round trip that takes the lock) instead of after the
 * listing: a temp file in staticPodPath, a temp file for the backup in
 * stateDir/backups (renamed into its file's directory once written), and
 * staticPodPath itself, to flush it. Nothing the kubelet reads: the temp file
 * is a dotfile, and is removed at release when no write took it.
 */
interface Prepared {
  temp: OpenedTemp | undefined
  backupTemp: OpenedTemp | undefined
  dir: Promise<NodeHandle | null> | undefined
}

interface Prefetched {
  listing: Promise<Listing>
  prepared: Prepared
}

type Change =
  | { kind: 'replace'; fileName: string; bytes: Uint8Array; afterTempWrite?: ((tempPath: string) => Promise<void>) | undefined }
  | { kind: 'delete'; fileName: string }
  | { kind: 'none' }

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
  const problem = fileNameProblem(fileName)
  if (problem) throw new ServiceError('VALIDATION_FAILED', `fileName ${JSON.stringify(fileName)} ${problem}`, ['fileName'])
}

function fileNameProblem(fileName: string): string | null {
  if (fileName.length === 0) return 'is empty'
  if (fileName.includes('/') || fileName.includes('\\')) return 'must be a plain file name, without / or \\'
  if (fileName.includes('\0')) return 'contains a NUL character'
  if (fileName === '.' || fileName === '..') return 'is not a file name'
  if (fileName.startsWith('.')) return 'starts with "." and the kubelet ignores such files'
  if (Buffer.byteLength(fileName) > MAX_FILE_NAME_BYTES) return `is longer than ${MAX_FILE_NAME_BYTES} bytes`
  return null
}

export class FileAgent implements NodeAgent {
  readonly nodeName: string
  readonly staticPodPath: string
  readonly stateDir: string

  readonly #fs: NodeFileSystem
  readonly #lock: NodeLock<Prefetched>
  readonly #maxFileBytes: number
  readonly #clock: () => Date
  readonly #runtime: (() => Promise<RuntimeReport>) | undefined
  readonly #kubelet: (() => Promise<KubeletReport>) | undefined
  readonly #hooks: FileAgentHooks
  readonly #onClose: (() => Promise<void>) | undefined
  readonly #diagnostics: DiagnosticsAccess

  /** Temp files this agent is writing right now: never swept as leftovers. */
  readonly #tempsInFlight = new Set<string>()
  /** The node lock's withLock call in progress, with what it knows (Hold); null outside one. */
  #hold: Hold | null = null
  /**
   * The regular files the last listing read, with their sizes: the next
   * listing opens them together with the directory, before its answer, so a
   * steady directory is listed and read in two round trips. Forgotten when a
   * listing fails (an open that never answers, say, of a FIFO put under a
   * manifest's name: the next listing then opens only what the directory says is a file).
   */
  #expectedFiles = new Map<string, ExpectedFile>()
  /** A listing has succeeded: #expectedFiles is what the node had, and hints (expectFiles) are no longer needed. */
  #listedOnce = false
  /** stateDir/backups was not there when a backup's temp file was opened ahead of time: none is, until a backup makes it. */
  #backupsRootMissing = false
  /**
   * Backups of a manifest that is being replaced or removed are made by
   * linking it (#linkBackup) until the node refuses a link for a reason other
   * than a missing directory (another filesystem, no hardlink@openssh.com, a
   * refusal): from then on this agent copies, with a temp file opened ahead of time.
   */
  #linkBackups = true
  /** stateDir/backups has been listed under the lock for temp files a killed process left (once per agent). */
  #backupsRootTidied = false
  /**
   * Backup directories this agent has written to, with how many backups each
   * holds as far as it knows: pruning lists a directory only when that count
   * says it is due, not at every write. One not in here is listed with its
   * first backup, to count it.
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
      // The compare read and the lock in one round trip: the listing, and the files a write opens, are sent right behind the request that takes the lock.
      prefetch: (behind) => {
        const prepared: Prepared = { temp: undefined, backupTemp: undefined, dir: undefined }
        const listing = behind.behind(`listing ${this.staticPodPath}`, (p) => {
          this.#prepare(p, prepared)
          return this.#list(p)
        })
        listing.catch(() => undefined) // dropped when the lock was not taken; a listing made after it fails again
        return { listing, prepared }
      },
      discardPrefetched: ({ prepared }) => void this.#discardPrepared(prepared),
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

  async withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T> {
    let discarding: Promise<void> | undefined
    try {
      return await this.#lock.withLock(owner, async (held) => {
        const hold: Hold = { prefetched: held.prefetched?.listing, prepared: held.prefetched?.prepared, listed: undefined, pendingBackup: undefined, readBack: undefined }
        this.#hold = hold
        try {
          let result: T
          try {
            result = await fn()
          } catch (err) {
            await this.#writeOwedBackup().catch(() => undefined)
            throw err
          }
          await this.#writeOwedBackup()
          return result
        } finally {
          this.#hold = null
          // Removed alongside the release (no round trip of its own), and done before withLock returns.
          if (hold.prepared) discarding = this.#discardPrepared(hold.prepared)
        }
      })
    } finally {
      await discarding
    }
  }

  /** A backup asked for under the lock and not followed by a write is still owed, before the lock goes. */
  async #writeOwedBackup(): Promise<void> {
    const owed = this.#takePendingBackup()
    if (owed) await this.#commit({ kind: 'none' }, owed, `backing up ${owed.fileName}`)
  }

  withTurn<T>(fn: () => Promise<T>): Promise<T> {
    return this.#lock.withTurn(fn)
  }

  /** Prepared's files, opened behind the lock's request (no round trip of their own). */
  #prepare(p: NodePipeline, prepared: Prepared): void {
    const openTemp = (dir: string, prefix: string, onNoSuchDir?: () => void): OpenedTemp => {
      const path = posix.join(dir, `.${prefix}.${randomHex()}${TEMP_FILE_SUFFIX}`)
      this.#tempsInFlight.add(path)
      const opened = p.open(path, 'create').then(
        (handle) => (handle ? { path, handle } : null),
        (err: unknown) => {
          this.#tempsInFlight.delete(path)
          if (isNoSuchFile(err)) onNoSuchDir?.()
          return null
        },
      )
      return opened
    }
    prepared.temp = openTemp(this.staticPodPath, 'write')
    // A backup made by linking needs no temp file.
    if (!this.#backupsRootMissing && !this.#linkBackups) prepared.backupTemp = openTemp(this.#backupsRoot(), 'backup', () => (this.#backupsRootMissing = true))
    prepared.dir = p.open(this.staticPodPath, 'directory').catch(() => null)
  }

  /** What no write took of Prepared: temp files removed, handles closed. Never fails. */
  async #discardPrepared(prepared: Prepared): Promise<void> {
    const temps = [prepared.temp, prepared.backupTemp].filter((t): t is OpenedTemp => t !== undefined)
    const dir = prepared.dir
    prepared.temp = prepared.backupTemp = prepared.dir = undefined
    if (temps.length === 0 && !dir) return
    const [opened, dirHandle] = await Promise.all([Promise.all(temps), dir])
    await this.#fs
      .pipeline('removing unused temp files', async (p) => {
        if (dirHandle) p.close(dirHandle)
        await Promise.all(
          opened.map(async (temp) => {
            if (!temp) return
            p.close(temp.handle)
            await p.unlink(temp.path).catch(() => undefined)
            this.#tempsInFlight.delete(temp.path)
          }),
        )
      })
      .catch(() => {
        // A leftover dotfile is swept by the next write under the lock.
        for (const temp of opened) if (temp) this.#tempsInFlight.delete(temp.path)
      })
  }

  // ---- reading -------------------------------------------------------------

  async listManifestDir(): Promise<DirEntry[]> {
    const hold = this.#hold
    const prefetched = hold?.prefetched
    if (hold) hold.prefetched = undefined
    let listing = prefetched ? await prefetched.catch(() => null) : null
    if (listing === null) {
      listing = await this.#fs.pipeline(`listing ${this.staticPodPath}`, (p) => this.#list(p)).catch((err: unknown) => {
        throw this.#readFailed(this.staticPodPath, err)
      })
    }
    // Under the lock, the facts seen here are the ones the next write uses, without asking again.
    if (hold) hold.listed = listing
    return listing.entries
  }

  /**
   * staticPodPath's entries, and the content of each regular file, in one
   * pipeline: the directory is opened, and so is every file the last listing
   * read, at once; then the directory is read while those files are (fstat
   * and READ together, sized by what they had last time). So a directory
   * that has not changed costs two round trips; a file it did not have costs
   * two more (open, read), all such files at once.
   */
  async #list(p: NodePipeline): Promise<Listing> {
    const dir = this.staticPodPath
    const listed = p.opendir(dir)
    const early = new Map<string, Promise<OpenedRead | null>>()
    for (const [name, { size, symlink }] of this.#expectedFiles) {
      // The listing's attributes are the file's own, except for a symlink (lstat's): what it points to is asked of the open file.
      const read = this.#readOpened(p, posix.join(dir, name), size, { withStat: symlink })
      read.catch(() => undefined) // looked at only if the listing still has the name
      early.set(name, read)
    }
    try {
      const all = await readWholeDir(p, await listed)
      const temps = all.filter((entry) => isTempFileName(entry.name)).map((entry) => entry.name)
      const visible = all.filter((entry) => !entry.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      // What a symlink is, as the kubelet sees it: followed (the early open followed it already).
      const stats = new Map<string, NodeStat | null>()
      await Promise.all(
        visible.map(async ({ name, stat }) => {
          if (stat.kind !== 'symlink') return stats.set(name, stat)
          const opened = await early.get(name)?.catch(() => null)
          stats.set(name, opened?.stat ?? (await p.stat(posix.join(dir, name))))
        }),
      )
      const reads = new Map<string, OpenedRead | null>()
      const late: string[] = []
      for (const { name } of visible) {
        const stat = stats.get(name)
        if (stat?.kind !== 'file' || stat.size > this.#maxFileBytes) continue
        // Opened before the directory was read: a file it did not find then may have been created since.
        const opened = await early.get(name)?.catch(() => undefined)
        if (!opened || (opened.stat && opened.stat.kind !== 'file')) late.push(name)
        else reads.set(name, opened)
      }
      for (let i = 0; i < late.length; i += READ_CONCURRENCY) {
        const batch = late.slice(i, i + READ_CONCURRENCY)
        const read = await Promise.all(batch.map((name) => this.#readOpened(p, posix.join(dir, name), stats.get(name)?.size ?? 0, { withStat: false })))
        batch.forEach((name, j) => reads.set(name, read[j]!))
      }
      const entries: DirEntry[] = []
      const symlinks = new Set(visible.filter((entry) => entry.stat.kind === 'symlink').map((entry) => entry.name))
      const known = new Map<string, NodeStat>()
      const expected = new Map<string, ExpectedFile>()
      for (const { name, stat: listed } of visible) {
        const stat = stats.get(name) ?? null
        if (stat === null) {
          entries.push({ name, kind: 'other', size: 0 }) // a dangling symlink, or one we may not follow
          continue
        }
        const kind = stat.kind === 'symlink' ? 'other' : stat.kind
        const read = reads.get(name)
        if (kind !== 'file' || read === undefined) {
          entries.push({ name, kind, size: stat.size })
          known.set(name, stat)
          continue
        }
        if (read === null) continue // removed since the listing
        const attrs = read.stat ?? stat
        known.set(name, attrs)
        if (read.bytes === null) {
          entries.push({ name, kind: 'file', size: read.size ?? attrs.size })
          continue
        }
        // The modification time tells diagnosis whether the kubelet has had time to take the file up.
        const modifiedAt = attrs.mtimeMs > 0 ? { modifiedAt: new Date(attrs.mtimeMs).toISOString() } : {}
        entries.push({ name, kind: 'file', size: read.bytes.length, bytes: read.bytes, ...modifiedAt })
        if (expected.size < EXPECTED_FILES_MAX) expected.set(name, { size: read.bytes.length, symlink: listed.kind === 'symlink' })
      }
      this.#expectedFiles = expected
      this.#listedOnce = true
      return { entries, stats: known, temps, symlinks }
    } catch (err) {
      this.#expectedFiles = new Map()
      throw err
    }
  }

  expectFiles(fileNames: readonly string[]): void {
    if (this.#listedOnce) return
    for (const name of fileNames) {
      if (this.#expectedFiles.size >= EXPECTED_FILES_MAX) return
      // Sizes unknown: one READ of this much reads any manifest kubeadm writes whole.
      if (fileNameProblem(name) === null && !this.#expectedFiles.has(name)) this.#expectedFiles.set(name, { size: EXPECTED_FILE_SIZE_GUESS, symlink: false })
    }
  }

  /**
   * Opens path and reads it whole; null when there is no such file. With
   * withStat, the open file's attributes too (FSTAT sent with the READ):
   * for a name that is a symlink, whose listed attributes are the link's.
   * A file over maxFileBytes comes back without its bytes.
   */
  async #readOpened(p: NodePipeline, path: string, sizeGuess: number, { withStat }: { withStat: boolean }): Promise<OpenedRead | null> {
    const handle = await p.open(path, 'read')
    if (handle === null) return null
    try {
      const first = Math.min(READ_CHUNK_BYTES, Math.max(0, sizeGuess) + READ_SLACK_BYTES)
      const [stat, head] = await Promise.all([withStat ? p.fstat(handle) : null, p.read(handle, 0, first)])
      if (stat && (stat.kind !== 'file' || stat.size > this.#maxFileBytes)) return { stat, bytes: null }
      const tooBig = (total: number): OpenedRead => ({ stat: stat && { ...stat, size: total }, bytes: null, size: total })
      const chunks = [head]
      let total = head.length
      // A short READ is the end of a regular file; a full one may not be.
      for (let last = head.length; last === (chunks.length === 1 ? first : READ_CHUNK_BYTES); ) {
        if (total > this.#maxFileBytes) return tooBig(total)
        const next = await p.read(handle, total, READ_CHUNK_BYTES)
        chunks.push(next)
        total += next.length
        last = next.length
      }
      if (total > this.#maxFileBytes) return tooBig(total)
      return { stat, bytes: chunks.length === 1 ? head : Buffer.concat(chunks, total) }
    } finally {
      p.close(handle)
    }
  }

  async readManifest(fileName: string): Promise<Buffer | null> {
    assertSafeFileName(fileName)
    const hold = this.#hold
    if (hold?.readBack?.fileName === fileName) {
      // Read from the node right after the write, under this lock: nothing has changed it since.
      const { bytes } = hold.readBack
      hold.readBack = undefined
      return bytes
    }
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
    await this.#commit({ kind: 'replace', fileName, bytes, afterTempWrite: this.#hooks.afterTempWrite }, this.#takePendingBackup(), `writing ${fileName}`)
  }

  async deleteManifest(fileName: string): Promise<void> {
    assertSafeFileName(fileName)
    await this.#commit({ kind: 'delete', fileName }, this.#takePendingBackup(), `deleting ${fileName}`)
  }

  async backup(fileName: string, bytes: Uint8Array): Promise<BackupInfo> {
    assertSafeFileName(fileName)
    const dir = posix.join(this.stateDir, 'backups', fileName)
    const hashPrefix = createHash('sha256').update(bytes).digest('hex').slice(0, 12)
    const hold = this.#hold
    const backup: PendingBackup = {
      fileName,
      bytes: Buffer.from(bytes),
      dir,
      name: `${compactUtcTimestamp(this.#clock())}-${hashPrefix}.yaml`,
      linkFrom: linkableBackupOf(hold?.listed, fileName, bytes) ? posix.join(this.staticPodPath, fileName) : null,
    }
    if (hold) {
      // Written with the write or delete that follows, in its round trips, and before it changes anything (#commit).
      const before = this.#takePendingBackup()
      if (before) await this.#commit({ kind: 'none' }, before, `backing up ${before.fileName}`)
      hold.pendingBackup = backup
    } else {
      await this.#commit({ kind: 'none' }, backup, `backing up ${fileName}`)
    }
    return { path: posix.join(dir, backup.name) }
  }

  #takePendingBackup(): PendingBackup | undefined {
    const hold = this.#hold
    const owed = hold?.pendingBackup
    if (hold) hold.pendingBackup = undefined
    return owed
  }

  /**
   * The write path's one pipeline: the backup owed (if any) and the change,
   * every request that needs only the success of another sent right behind
   * it, the answers looked at after. Under the lock, with the files opened
   * behind the lock's request (Prepared) and the target's mode and owner from
   * the listing, a replace costs two round trips:
   *
   *   1. temp file: owner and mode of the target, the bytes, fsync, and
   *      (under the lock: for the readManifest that checks it) the bytes read
   *      back through the same handle; backup (its temp file): the bytes,
   *      rename to its name (it appears whole, or not at all); leftover temp
   *      files removed;
   *   2. only when all of 1 succeeded and the node kept the bytes (else the
   *      temp files go, and nothing the kubelet reads has changed): rename
   *      of the temp file over the target (or unlink of the target), fsync
   *      of staticPodPath.
   *
   * Without Prepared, creating the temp files (0600, exclusive: never through
   * a file or symlink someone planted under our name) comes first: one more.
   * Leftover temp files are removed only under the lock: otherwise one could
   * be another process's write in flight.
   */
  async #commit(change: Change, backup: PendingBackup | undefined, what: string): Promise<void> {
    const hold = this.#hold
    const changes = change.kind !== 'none'
    const leftovers = hold && changes ? await this.#leftoverTemps(hold) : []
    const model = change.kind === 'replace' ? modelFrom(hold?.listed, change.fileName) : undefined
    if (hold && changes) {
      // What was read under the lock before this change is not the node's state after it.
      hold.prefetched = undefined
      hold.listed = undefined
      hold.readBack = undefined
    }
    const prepared = hold?.prepared
    const preparedTemp = change.kind === 'replace' ? take(prepared, 'temp') : undefined
    const preparedBackupTemp = backup ? take(prepared, 'backupTemp') : undefined
    const preparedDir = changes ? take(prepared, 'dir') : undefined
    const fileName = changes ? change.fileName : null
    const target = fileName === null ? null : posix.join(this.staticPodPath, fileName)
    let tempPath: string | null = null
    let readBack: Buffer | null = null
    try {
      await this.#fs
        .pipeline(what, async (p) => {
          for (const name of leftovers) p.unlink(posix.join(this.staticPodPath, name)).catch(() => undefined) // tidying up never fails a write
          // Linked only when this change replaces or removes the very file: a link to a manifest that stays would follow its later edits.
          const linkable = backup !== undefined && backup.linkFrom !== null && fileName === backup.fileName
          const backupWritten = backup ? settled(this.#writeBackup(p, backup, preparedBackupTemp, { linkable })) : null
          let tempWritten: Promise<Settled<string>> | null = null
          if (target && change.kind === 'replace') {
            const likeTarget = model !== undefined ? Promise.resolve(model) : p.stat(target)
            likeTarget.catch(() => undefined)
            const opened = this.#tempIn(p, this.staticPodPath, `${change.fileName}`, preparedTemp)
            tempWritten = settled(
              opened.then(async ({ path, handle }) => {
                tempPath = path
                readBack = await writeTemp(p, handle, change.bytes, likeTarget, { readBack: hold !== undefined })
                return path
              }),
            )
          }
          const dirOpened = target ? (preparedDir ?? p.open(this.staticPodPath, 'directory').catch(() => null)) : null
          const [backupResult, tempResult, dir] = await Promise.all([backupWritten, tempWritten, dirOpened])
          const failure = backupResult && !backupResult.ok ? { what: `backing up ${backup?.fileName}`, error: backupResult.error } : tempResult && !tempResult.ok ? { what, error: tempResult.error } : null
          const pruned = backupResult?.ok ? backupResult.value.pruned : null
          // A backup that is the manifest's own file, while the manifest stays: it goes again.
          const unlinkBackup = async (): Promise<void> => {
            const linked = backupResult?.ok ? backupResult.value.linked : null
            if (linked) await p.unlink(linked).catch(() => undefined)
          }
          if (failure || target === null || fileName === null) {
            if (dir) p.close(dir)
            if (tempPath) await p.unlink(tempPath).catch(() => undefined)
            await unlinkBackup()
            if (failure) throw new StepFailed(failure.what, failure.error)
            await pruned
            return
          }
          const temp = tempResult?.ok ? tempResult.value : null
          if (temp && change.kind === 'replace') await change.afterTempWrite?.(temp)
          // The one request the kubelet sees; the directory's flush runs after it.
          const changed = settled(temp ? p.rename(temp, target) : p.unlink(target))
          const flushed = dir ? p.fsync(dir).catch(() => false) : null // best effort: a server without the trick still renamed atomically
          if (dir) p.close(dir)
          const result = await changed
          await flushed
          if (!result.ok) {
            if (temp) await p.unlink(temp).catch(() => undefined)
            await unlinkBackup()
            throw new StepFailed(what, result.error)
          }
          if (change.kind === 'replace') this.#expectedFiles.set(fileName, { size: change.bytes.byteLength, symlink: false })
          else this.#expectedFiles.delete(fileName)
          // The rename moved the very file that was read back: under the lock, it is what the target holds now.
          if (hold) hold.readBack = { fileName, bytes: change.kind === 'replace' ? readBack : null }
          await pruned
        })
        .catch((err: unknown) => {
          if (err instanceof StepFailed) throw this.#writeFailed(err.what, err.cause)
          throw isServiceError(err) ? err : this.#writeFailed(what, err)
        })
    } finally {
      if (tempPath) this.#tempsInFlight.delete(tempPath)
    }
  }

  /** A temp file: the one opened ahead of time if there is one (and it opened), else created now, named after what it is for. */
  async #tempIn(p: NodePipeline, dir: string, forName: string, prepared: OpenedTemp | undefined): Promise<{ path: string; handle: NodeHandle }> {
    const ready = prepared && (await prepared)
    if (ready) return ready
    const path = posix.join(dir, `.${forName}.${randomHex()}${TEMP_FILE_SUFFIX}`)
    this.#tempsInFlight.add(path)
    try {
      return { path, handle: (await p.open(path, 'create'))! }
    } catch (err) {
      this.#tempsInFlight.delete(path)
      throw err
    }
  }

  /**
   * The backup's requests, sent without waiting for each other. When the
   * change replaces or removes the manifest the bytes were read from
   * (linkable), the backup is that file itself, given a second name (one
   * request: #linkBackup); otherwise, or where the node will not link, a copy:
   * its temp file (0600) written and renamed to its name in its directory
   * (the name appears whole, or not at all). Every few backups, the directory
   * is listed to prune it. If the bytes failed, whatever got the backup's
   * name is removed again. Resolves to the pruning, which the caller waits
   * for last, and the linked backup's path (the caller removes it if the
   * change fails: the manifest then stays, and its backup must not be it).
   *
   * No round trip of its own for the directories either, not even on a
   * node's first backup: they are assumed to be there (they are, after the
   * first backup a node ever had), and made only when the link, the temp
   * file or the rename says one is missing. A directory this agent has not written to
   * yet is listed alongside the bytes, to count its backups and find temp
   * files a killed process left; so is stateDir/backups itself, once, under
   * the lock. What those listings find is removed without being waited for:
   * the node handles requests in order, so it is done before the lock's
   * release, which comes after.
   *
   * Not flushed (no fsync of the file or of its directory): the bytes it
   * holds are in the store already, recorded and flushed there before the
   * manifest is touched (the listing under the lock records bytes the store
   * does not know as an OBSERVED revision), so a power cut right after a
   * write can cost the node's copy, never the only one. Two of the four
   * flushes a write made on the node, and four of its requests.
   */
  async #writeBackup(p: NodePipeline, backup: PendingBackup, prepared: OpenedTemp | undefined, { linkable }: { linkable: boolean }): Promise<{ pruned: Promise<void>; linked: string | null }> {
    const final = posix.join(backup.dir, backup.name)
    const known = this.#backupDirs.get(backup.dir)
    const underLock = this.#hold !== null
    const listing = known === undefined || known.count + 1 >= BACKUPS_KEPT + BACKUPS_PRUNE_SLACK ? settled(entriesOf(p, backup.dir)) : null
    const root = this.#backupsRoot()
    const rootListing = underLock && !this.#backupsRootTidied ? settled(entriesOf(p, root)) : null
    if (rootListing) this.#backupsRootTidied = true
    const makeDirs = (): Promise<void> => {
      this.#backupsRootMissing = false
      // Every directory on the way, sent at once (the node makes them in order); each may be
      // there already, and mkdir fails then: what follows says whether the directory is there now.
      const made = ancestorsAndSelf(backup.dir).map((dir) => p.mkdir(dir).catch(() => undefined))
      return Promise.all(made).then(() => undefined)
    }
    const linked = linkable && backup.linkFrom !== null && this.#linkBackups ? await this.#linkBackup(p, backup.linkFrom, final, makeDirs) : null
    if (linked) void this.#discardTemp(p, prepared)
    else await this.#copyBackup(p, backup, final, prepared, makeDirs)
    const counted = known ?? { count: 0 }
    counted.count++
    this.#backupDirs.set(backup.dir, counted)
    const removeAll = (dir: string, names: string[]): void => {
      for (const name of names) p.unlink(posix.join(dir, name)).catch(() => undefined) // tidying up never fails a write
    }
    const leftTemps = (dir: string, entries: Settled<DirListing>): string[] =>
      // Only under the lock: otherwise a temp file could be another process's write in flight.
      underLock && entries.ok ? entries.value.filter((e) => isTempFileName(e.name) && !this.#tempsInFlight.has(posix.join(dir, e.name))).map((e) => e.name) : []
    const rootTidied = rootListing?.then((entries) => removeAll(root, leftTemps(root, entries)))
    // Names sort by time: all but the newest BACKUPS_KEPT go, sent when the listing is in (the change does not wait for it).
    const pruned = listing?.then((entries) => {
      if (!entries.ok) {
        counted.count = known ? BACKUPS_KEPT : 1 // a backup that was kept is worth more than one too many on disk
        return
      }
      const names = entries.value.filter((e) => e.stat.kind === 'file' && BACKUP_NAME.test(e.name)).map((e) => e.name)
      const all = [...new Set([...names, backup.name])].sort()
      const excess = all.slice(0, Math.max(0, all.length - BACKUPS_KEPT))
      counted.count = all.length - excess.length
      removeAll(backup.dir, [...excess, ...leftTemps(backup.dir, entries)])
    })
    return { pruned: Promise.all([pruned, rootTidied]).then(() => undefined), linked }
  }

  /**
   * The backup as a second name of the manifest's file (link(2), OpenSSH's
   * hardlink@openssh.com): one request, and no bytes written on the node,
   * where a copy is four requests and a file's data for the node's next
   * flush to write. What makes it a backup is the rename that follows: the
   * new manifest is another file, and the old one, now only the backup's,
   * is never written again (#commit removes the link if the change fails).
   * Only a file only root can read is linked (linkableBackupOf), so a linked
   * backup is what a copy would be: 0600 or less, root's. The kubelet sees the new link as
   * an attribute change of an unchanged file (inotify IN_ATTRIB: it reads the
   * file again and finds the same pod). Null when the node will not link it:
   * the caller copies.
   */
  async #linkBackup(p: NodePipeline, from: string, final: string, makeDirs: () => Promise<void>): Promise<string | null> {
    let linked = await settled(p.link(from, final))
    if (!linked.ok && isNoSuchFile(linked.error)) {
      await makeDirs()
      linked = await settled(p.link(from, final))
    }
    if (linked.ok) return final
    // Still no such file: the manifest went since the listing; the copy is of the bytes read then.
    if (!isNoSuchFile(linked.error)) this.#linkBackups = false
    return null
  }

  /** The backup as a copy of its bytes: a temp file (0600) written, then renamed to its name. */
  async #copyBackup(p: NodePipeline, backup: PendingBackup, final: string, prepared: OpenedTemp | undefined, makeDirs: () => Promise<void>): Promise<void> {
    let opened: { path: string; handle: NodeHandle }
    try {
      opened = await this.#tempIn(p, backup.dir, backup.name, prepared).catch(async (err: unknown) => {
        if (!isNoSuchFile(err)) throw err
        await makeDirs()
        return this.#tempIn(p, backup.dir, backup.name, undefined)
      })
    } catch (err) {
      this.#backupDirs.delete(backup.dir) // removed under us, perhaps: look again next time
      throw err
    }
    const written = settled(p.write(opened.handle, backup.bytes))
    p.close(opened.handle)
    let renamed = settled(p.rename(opened.path, final))
    try {
      const write = await written
      let rename = await renamed
      if (write.ok && !rename.ok && isNoSuchFile(rename.error)) {
        // A temp file opened ahead of time in stateDir/backups, for a file that has no backup directory yet.
        await makeDirs()
        renamed = settled(p.rename(opened.path, final))
        rename = await renamed
      }
      if (!write.ok || !rename.ok) {
        await p.unlink(rename.ok ? final : opened.path).catch(() => undefined)
        this.#backupDirs.delete(backup.dir)
        throw !write.ok ? write.error : !rename.ok ? rename.error : new Error('backup failed')
      }
    } finally {
      this.#tempsInFlight.delete(opened.path)
    }
  }

  /** A temp file opened ahead of time that nothing will use: closed and removed, not waited for. */
  async #discardTemp(p: NodePipeline, prepared: OpenedTemp | undefined): Promise<void> {
    const temp = prepared && (await prepared)
    if (!temp) return
    p.close(temp.handle)
    await p.unlink(temp.path).catch(() => undefined)
    this.#tempsInFlight.delete(temp.path)
  }

  /** Where backups go: stateDir/backups/<file name>/. */
  #backupsRoot(): string {
    return posix.join(this.stateDir, 'backups')
  }

  /**
   * Temp files left in staticPodPath by a process killed mid-write, as the
   * listing under this lock saw them (the prefetched one, if the caller did
   * not list); listed now if there is none.
   */
  async #leftoverTemps(hold: Hold): Promise<string[]> {
    let listing = hold.listed ?? (hold.prefetched ? await hold.prefetched.catch(() => undefined) : undefined)
    if (listing && !hold.listed) hold.listed = listing
    if (!listing) {
      try {
        const names = (await this.#fs.readDir(this.staticPodPath)).map((entry) => entry.name)
        listing = { entries: [], stats: new Map(), temps: names.filter(isTempFileName), symlinks: new Set() }
      } catch {
        return [] // tidying up must not fail the write it precedes; the next write tries again
      }
    }
    const temps = listing.temps.filter((name) => !this.#tempsInFlight.has(posix.join(this.staticPodPath, name)))
    listing.temps = []
    return temps
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
  return randomHexBytes(RANDOM_HEX_CHARS / 2)
}

/**
 * A step of #commit's pipeline failed: thrown inside the node's operation as
 * it is (not yet a ServiceError), so that the pool still tells a lost
 * connection (NODE_UNREACHABLE) from a failed write; its message carries
 * every message of the cause chain for that. Worded by #writeFailed after.
 */
class StepFailed extends Error {
  override readonly name = 'StepFailed'
  constructor(
    readonly what: string,
    override readonly cause: unknown,
  ) {
    const messages: string[] = []
    for (let at: unknown = cause; at instanceof Error && messages.length < 5; at = at.cause) messages.push(at.message)
    super(messages.join(': ') || String(cause))
  }
}

/** A file read whole by #readOpened: its bytes (null: over maxFileBytes, or not a regular file), and the open file's attributes if asked for. */
interface OpenedRead {
  stat: NodeStat | null
  bytes: Buffer | null
  /** How many bytes it was found to have past maxFileBytes, when it has no bytes for that reason. */
  size?: number
}

/** A file the last listing read, opened with the next listing before the directory's answer. */
interface ExpectedFile {
  size: number
  /** Its name was a symlink: the listed attributes are the link's, so the open file's are asked for. */
  symlink: boolean
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

function settled<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
}

/**
 * The mode and owner a replaced file keeps, from a listing under the lock:
 * its attributes (null: it has none, so the new file is 0600 and ours), or
 * undefined when no listing says (then it is asked for).
 */
function modelFrom(listing: Listing | undefined, fileName: string): NodeStat | null | undefined {
  if (!listing) return undefined
  const stat = listing.stats.get(fileName)
  if (stat === undefined) return listing.entries.some((entry) => entry.name === fileName) ? undefined : null
  return stat.kind === 'file' ? stat : undefined
}

/**
 * The file a backup of these bytes can be, linked: the listing under the
 * lock read exactly them from fileName, a regular file (not a symlink, whose
 * link would be a link to the name), and one only root can read, as every
 * backup is (0600 or less, root's: kubeadm writes manifests so). A manifest
 * others may read is copied into a 0600 file instead, since the backups'
 * directories do not hide it as staticPodPath may.
 */
function linkableBackupOf(listing: Listing | undefined, fileName: string, bytes: Uint8Array): boolean {
  if (!listing || listing.symlinks.has(fileName)) return false
  const stat = listing.stats.get(fileName)
  if (stat?.kind !== 'file' || (stat.mode & ONLY_OWNER_MASK) !== 0 || stat.uid !== 0) return false
  const entry = listing.entries.find((e) => e.name === fileName)
  return entry?.kind === 'file' && entry.bytes !== undefined && Buffer.from(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.byteLength).equals(bytes)
}

/**
 * The temp file's requests, given its handle: the target's owner and mode
 * when it has one (the owner first: a change of owner clears set-id bits,
 * which the mode then sets as the target had them), the bytes, the flush;
 * all sent at once.
 */
async function writeTemp(p: NodePipeline, handle: NodeHandle, bytes: Uint8Array, likeTarget: Promise<NodeStat | null>, options: { readBack: boolean }): Promise<Buffer | null> {
  try {
    const like = await likeTarget.catch(() => null)
    const steps: Array<Promise<unknown>> = []
    if (like) steps.push(p.setOwnerAndMode(handle, { uid: like.uid, gid: like.gid, mode: like.mode }))
    steps.push(p.write(handle, bytes), p.fsync(handle))
    // Read back through the same handle, behind the flush: what the node kept, before the rename makes it the manifest.
    const chunks: Array<Promise<Buffer>> = []
    if (options.readBack) for (let at = 0; at === 0 || at < bytes.byteLength; at += READ_CHUNK_BYTES) chunks.push(p.read(handle, at, Math.min(READ_CHUNK_BYTES, Math.max(bytes.byteLength - at, 1))))
    const readBack = settled(Promise.all(chunks))
    const outcomes = await Promise.all(steps.map((step) => settled(step)))
    const failed = outcomes.find((outcome) => !outcome.ok)
    if (failed && !failed.ok) throw failed.error
    if (!options.readBack) return null
    const read = await readBack
    if (!read.ok) throw read.error
    const kept = Buffer.concat(read.value)
    // Nothing the kubelet reads has changed yet: a node that did not keep the bytes fails the write here, the old manifest in place.
    if (!kept.equals(bytes)) throw new Error(`the node kept ${kept.byteLength} bytes that differ from the ${bytes.byteLength} written`)
    return kept
  } finally {
    p.close(handle)
  }
}

/** Takes one of Prepared's files (the write that takes it owns it). */
function take<K extends keyof Prepared>(prepared: Prepared | undefined, key: K): Prepared[K] | undefined {
  if (!prepared) return undefined
  const value = prepared[key]
  prepared[key] = undefined
  return value
}

/**
 * Directory entries: a directory that fits one answer (OpenSSH sends up to
 * 100 names) is read in one round trip. Where the node says which batch is
 * the last, one READDIR; where it cannot, two at once (the second answers "end").
 */
async function readWholeDir(p: NodePipeline, handle: NodeHandle): Promise<DirListing> {
  try {
    const entries: DirListing = []
    for (;;) {
      const batches = await Promise.all(p.readdirKnowsEnd ? [p.readdir(handle)] : [p.readdir(handle), p.readdir(handle)])
      for (const batch of batches) {
        if (batch === null) return entries
        entries.push(...batch.entries)
        if (batch.last) return entries
      }
    }
  } finally {
    p.close(handle)
  }
}

/** '/a/b/c' -> ['/a', '/a/b', '/a/b/c'] */
function ancestorsAndSelf(dir: string): string[] {
  const parts = dir.split('/').filter(Boolean)
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)
}

type DirListing = Array<{ name: string; stat: NodeStat }>

async function entriesOf(p: NodePipeline, dir: string): Promise<DirListing> {
  return readWholeDir(p, await p.opendir(dir))
}


