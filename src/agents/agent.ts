// A node agent does what the service needs done on one node, and nothing that
// needs a rule: the rules (validation, compare-and-swap, history, audit) live in
// the services. Two implementations: the local filesystem (local.ts) and SSH.
//
// Paths given to an agent are file names inside the node's staticPodPath; the
// agent never accepts a path with a '/' in it, so nothing outside staticPodPath
// can be written through it. The one exception reads: readNodeFile takes an
// absolute path (which, is the caller's rule: never a private key), and
// refuses relative ones, '..' segments and NUL.

import type { DirEntry } from '../manifest/types.ts'
import type { KubeletState, PodRuntimeState } from '../domain.ts'

export interface LockOwner {
  /** Who holds it, for the operator who finds the lock file: actor and service instance. */
  actor: string
  instance: string
}

export interface BackupInfo {
  /** Where the bytes were kept on the node (outside staticPodPath). */
  path: string
}

export type RuntimeReport =
  | { available: true; pods: PodRuntimeState[] }
  | { available: false; reason: string }

export type KubeletReport =
  | { available: true; status: KubeletState }
  | { available: false; reason: string }

/** One container's log (NodeAgent.containerLog). Names are the static pod's, as in PodRuntimeState. */
export interface ContainerLogRequest {
  namespace: string
  /** The static pod's name (kube-apiserver), not its sandbox's (kube-apiserver-<node>): the agent adds the node. */
  pod: string
  container: string
  /** The attempt before the current one (kubectl logs --previous). */
  previous: boolean
  /** The newest lines only; null: no limit but limitBytes. 0: none. */
  tailLines: number | null
  /** Only lines of the last sinceSeconds (the node's clock for crictl, this machine's for the kubelet's files); null: all. */
  sinceSeconds: number | null
  /** At most this many bytes of lines, each counted with its newline; the newest lines are kept (at most CONTAINER_LOG_MAX_BYTES). */
  limitBytes: number
}

export interface ContainerLogResult {
  /** Oldest first, each as the runtime stored it with its timestamp: `2024-06-10T06:13:22.123456789Z <text>`. */
  lines: string[]
  /** Older lines were left out: cut at tailLines or limitBytes. */
  truncated: boolean
  /** 'crictl', or the kubelet's log file that was read (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<attempt>.log`). */
  source: string
  /** The attempt the lines are of. */
  attempt: number
  /** Its container id, when crictl named it. */
  containerId: string | null
}

/** The kubelet's journal (NodeAgent.kubeletJournal). */
export interface KubeletJournalRequest {
  /** Entries of the last sinceSeconds on the node's clock; null: all there are. */
  sinceSeconds: number | null
  /** The newest entries only; null: at most KUBELET_JOURNAL_MAX_LINES. */
  tailLines: number | null
}

export type KubeletJournalResult =
  | { lines: Array<{ at: string; message: string }>; truncated: boolean }
  /** journalctl is not there, or could not read the system journal: the reason, for the caller to show. */
  | { unavailable: string }

/** The most a container log read returns (limitBytes above it is refused). */
export const CONTAINER_LOG_MAX_BYTES = 8 * 1024 * 1024
export const KUBELET_JOURNAL_MAX_LINES = 10_000

/**
 * readNodeFile found the path but will not hand it out: not a regular file,
 * or larger than asked. Its message names the node and the path.
 */
export class NodeFileRefusedError extends Error {
  override readonly name = 'NodeFileRefusedError'

  constructor(
    readonly path: string,
    readonly why: 'not-a-file' | 'too-large',
    message: string,
  ) {
    super(message)
  }
}

export interface NodeAgent {
  readonly nodeName: string
  readonly staticPodPath: string

  /**
   * Every entry of staticPodPath whose name does not start with '.', with the
   * content of each regular file (the kubelet reads exactly these).
   */
  listManifestDir(): Promise<DirEntry[]>
  /**
   * Files the caller expects in staticPodPath: the pods' files in the node's
   * stored state, or the file a write is about to replace. An agent that has
   * not listed the directory yet opens them together with it, which saves
   * the two round trips of opening and reading them after it at first
   * contact. Only a hint: the listing still finds what is there.
   */
  expectFiles(fileNames: readonly string[]): void
  /** The file's bytes, or null if it does not exist. */
  readManifest(fileName: string): Promise<Buffer | null>
  /**
   * Atomic replace: write a dotfile in staticPodPath, flush it to disk, rename
   * it over fileName. A crash at any point leaves the old or the new file,
   * never half of one, and no file the kubelet would read besides them.
   */
  writeManifest(fileName: string, bytes: Uint8Array): Promise<void>
  /** Removes fileName; no error if it is already gone. */
  deleteManifest(fileName: string): Promise<void>
  /** Keeps a copy of bytes in the node's state directory, outside staticPodPath. */
  backup(fileName: string, bytes: Uint8Array): Promise<BackupInfo>

  /**
   * Runs fn while holding the node-side lock, which also excludes other
   * processes and service instances. Gives up with LOCKED, naming the holder,
   * once nothing ahead of it has moved for the lock wait (LOCK_WAIT_MS),
   * whether that is a writer of this process or another's lock file. A lock
   * whose holder is gone expires.
   */
  withLock<T>(owner: LockOwner, fn: () => Promise<T>): Promise<T>
  /**
   * Runs fn in the node's turn in this process, after the writers ahead of it
   * and before those behind, without the node-side lock: for the reads that
   * record history, which must not take this process's own write in flight
   * for a change made elsewhere (node-lock.ts).
   */
  withTurn<T>(fn: () => Promise<T>): Promise<T>

  /** Pod and container state from the node's container runtime (crictl). */
  runtimeStatus(): Promise<RuntimeReport>
  /** The kubelet's own health endpoint, asked on the node. */
  kubeletHealth(): Promise<KubeletReport>

  /**
   * One container attempt's log, read on the node: `crictl logs`, or, where
   * crictl is missing or cannot answer, the kubelet's file under the node's
   * pod log directory (/var/log/pods). null when the container has no such
   * attempt (never ran, or no attempt before the current one). Bad arguments
   * are VALIDATION_FAILED.
   */
  containerLog(req: ContainerLogRequest): Promise<ContainerLogResult | null>
  /** The kubelet's journal on the node (journalctl -u kubelet), oldest first. */
  kubeletJournal(req: KubeletJournalRequest): Promise<KubeletJournalResult>
  /**
   * A file on the node, whole, for diagnosis (the certificates and kubeconfigs
   * a pod's flags name; the caller decides which, never private keys): null
   * when it does not exist; NodeFileRefusedError when it is not a regular
   * file or is larger than maxBytes. The path must be absolute, without '..'
   * segments or NUL (VALIDATION_FAILED otherwise).
   */
  readNodeFile(absolutePath: string, maxBytes: number): Promise<Buffer | null>

  close(): Promise<void>
}
