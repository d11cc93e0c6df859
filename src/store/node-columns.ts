// A node record as both stores keep it: one flat row of columns (SQLite) or
// attributes (DynamoDB). The union by kind is the program's; the flat form is
// the storage's, and this is the one place that maps between them.
//
// What an admin sets and what the service learns from the node (NodeFacts) are
// kept in columns of their own, so that neither write can undo the other:
// updateNode never writes a fact column, recordNodeFacts writes nothing else.

import type { Label, NodeFacts, NodeRecord, Privilege } from '../domain.ts'
import { KUBEADM_STATIC_POD_PATH } from '../kubelet-facts.ts'

export interface NodeColumns {
  name: string
  kind: NodeRecord['kind']
  /** Empty for a local node (it has no address). */
  host: string
  port: number
  user: string
  privilege: Privilege
  sftpServer: string | null
  via: string | null
  /** The path an admin gave; for a node that discovers its path, the stand-in until then. */
  staticPodPath: string
  /** false: no path was given; the kubelet config on the node is read for it. */
  staticPodPathGiven: boolean
  /** Fact: the path the node's kubelet config names; null: not discovered (yet). */
  discoveredStaticPodPath: string | null
  hostKeyFingerprint: string | null
  /** Fact. */
  observedHostKeyFingerprint: string | null
  labels: Label[]
  createdAt: string
  updatedAt: string
}

export function nodeToColumns(node: NodeRecord): NodeColumns {
  const ssh = node.kind === 'ssh' ? node.ssh : null
  return {
    name: node.name,
    kind: node.kind,
    host: ssh?.host ?? '',
    port: ssh?.port ?? 0,
    user: ssh?.user ?? '',
    privilege: ssh?.privilege ?? 'NONE',
    sftpServer: ssh?.sftpServer ?? null,
    via: ssh?.via ?? null,
    staticPodPath: node.staticPodPath,
    staticPodPathGiven: node.staticPodPathFrom === 'given',
    discoveredStaticPodPath: node.staticPodPathFrom === 'discovered' ? node.staticPodPath : null,
    hostKeyFingerprint: ssh?.hostKeyFingerprint ?? null,
    observedHostKeyFingerprint: ssh?.observedHostKeyFingerprint ?? null,
    labels: node.labels.map(({ key, value }) => ({ key, value })),
    createdAt: node.createdAt,
    updatedAt: node.updatedAt,
  }
}

export function nodeFromColumns(c: NodeColumns): NodeRecord {
  const staticPodPathFrom = c.staticPodPathGiven ? 'given' : c.discoveredStaticPodPath !== null ? 'discovered' : 'discover'
  const common = {
    name: c.name,
    staticPodPath: staticPodPathFrom === 'discovered' ? (c.discoveredStaticPodPath as string) : c.staticPodPath,
    staticPodPathFrom,
    labels: c.labels.map(({ key, value }) => ({ key, value })),
    createdAt: c.createdAt,
    updatedAt: c.updatedAt,
  } as const
  if (c.kind === 'local') return { ...common, kind: 'local' }
  return {
    ...common,
    kind: 'ssh',
    ssh: {
      host: c.host,
      port: c.port,
      user: c.user,
      privilege: c.privilege,
      sftpServer: c.sftpServer,
      via: c.via,
      hostKeyFingerprint: c.hostKeyFingerprint,
      observedHostKeyFingerprint: c.observedHostKeyFingerprint,
    },
  }
}

/**
 * Before the stores kept whether a path was given, a node registered without
 * one was told by its path being kubeadm's. That release's rule, for the rows
 * and items it wrote.
 */
export const LEGACY_DISCOVER_PATH = KUBEADM_STATIC_POD_PATH

/** Only the facts given; undefined ones are left as stored. */
export function definedFacts(facts: NodeFacts): NodeFacts {
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => typeof v === 'string')) as NodeFacts
}
