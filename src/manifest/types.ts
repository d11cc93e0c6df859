// Types shared by the pure manifest functions and the code that feeds them.

/** One entry of a node's staticPodPath, as a node agent reads it. */
export interface DirEntry {
  name: string
  kind: 'file' | 'directory' | 'other'
  /** File content; absent for directories, other entries and files too big to read. */
  bytes?: Uint8Array
  /** Size in bytes as the node reports it. */
  size: number
  /** Modification time as the node reports it (ISO 8601); absent when unknown. */
  modifiedAt?: string
}

export type FindingCode =
  | 'UNPARSEABLE_FILE'
  | 'NOT_A_POD'
  | 'DUPLICATE_POD'
  | 'STRAY_FILE'
  | 'API_REFERENCE_FORBIDDEN'
  | 'SUBDIRECTORY'
  // Not lint's: services/diagnosis.ts adds them from the certificates a pod's flags name.
  | 'CERTIFICATE_EXPIRED'
  | 'CERTIFICATE_EXPIRES_SOON'

export interface Finding {
  code: FindingCode
  /** The file in staticPodPath it is about; null for the directory itself. */
  fileName: string | null
  message: string
}

export interface ContainerSpec {
  name: string
  image: string
  init: boolean
}

/** A manifest file the kubelet runs as a static pod. */
export interface FoundPod {
  fileName: string
  namespace: string
  name: string
  /** The file's exact content (always valid UTF-8: the kubelet could not parse it otherwise). */
  text: string
  hash: string
}
