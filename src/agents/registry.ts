// Which agent reaches which node. One agent per node, kept for the life of the
// process; SSH agents share one connection pool, which keeps one connection
// per node.

import { posix } from 'node:path'
import type { Config, NodeProbeConfig } from '../config.ts'
import { ServiceError } from '../errors.ts'
import type { HostResolver } from '../net/address-allow.ts'
import type { NodeRecord } from '../domain.ts'
import type { Store } from '../store/store.ts'
import type { NodeAgent } from './agent.ts'
import { createSshAgent, discoverStaticPodPath, KUBEADM_STATIC_POD_PATH } from './ssh.ts'
import { AddressNotAllowedError, SshPool, type SshEndpoint, type SshPoolLog, type SshPoolStats } from './ssh-pool.ts'

export interface AgentProvider {
  /** The node's agent; rejects with a ServiceError saying why the node cannot be contacted. */
  agentFor(node: NodeRecord): Promise<NodeAgent>
  /** The SSH connection counters (for /metrics and tests); null when SSH is not set up. */
  sshPoolStats(): SshPoolStats | null
  /** Where the raw connection errors behind the API's messages are logged (debug level). */
  attachLog?(log: SshPoolLog): void
  close(): Promise<void>
}

export type LocalAgentFactory = (node: NodeRecord) => Promise<NodeAgent>

/** What the agents learn about a node that belongs in its record. */
export interface NodeFactsRecorder {
  /** The host key the node presented (pinned or not), for observedHostKeyFingerprint. */
  recordHostKey(nodeName: string, fingerprint: string): Promise<void>
  /** The staticPodPath found in the node's kubelet config, replacing `replaced` (and only that). */
  recordStaticPodPath(nodeName: string, replaced: string, discovered: string): Promise<void>
}

export interface SshAgentSettings {
  pool: SshPool
  facts: NodeFactsRecorder
  /** On each node; the node's lock and backups go in `<stateDir>/<node name>`. */
  stateDir: string
  kubeletHealthzPort: number
  nodeProbes: NodeProbeConfig
  /** Read over SFTP for staticPodPath when a node has the kubeadm default. */
  kubeletConfigPath: string
  lockTtlMs: number
  lockWaitMs: number
}

export class AgentRegistry implements AgentProvider {
  private readonly agents = new Map<string, { agent: Promise<NodeAgent>; fingerprint: string }>()

  constructor(
    private readonly options: {
      /** The built-in local node's name, or null when LOCAL_NODE_PATH=off. */
      localNodeName: string | null
      createLocalAgent: LocalAgentFactory
      /** The registry closes the pool when it closes. */
      ssh: SshAgentSettings | null
    },
  ) {}

  agentFor(node: NodeRecord): Promise<NodeAgent> {
    // A node record that changed (path, host, key) gets a new agent.
    const fingerprint = JSON.stringify([node.kind, node.host, node.port, node.user, node.staticPodPath, node.hostKeyFingerprint])
    const cached = this.agents.get(node.name)
    if (cached && cached.fingerprint === fingerprint) return cached.agent
    const agent = this.create(node)
    // An agent that could not be made is not kept: the next call tries again.
    agent.catch(() => {
      if (this.agents.get(node.name)?.agent === agent) this.agents.delete(node.name)
    })
    if (cached) void cached.agent.then((a) => a.close()).catch(() => undefined)
    this.agents.set(node.name, { agent, fingerprint })
    return agent
  }

  sshPoolStats(): SshPoolStats | null {
    return this.options.ssh?.pool.stats() ?? null
  }

  attachLog(log: SshPoolLog): void {
    this.options.ssh?.pool.attachLog(log)
  }

  private async create(node: NodeRecord): Promise<NodeAgent> {
    if (node.kind === 'local') {
      if (node.name !== this.options.localNodeName) {
        throw new ServiceError(
          'NODE_UNREACHABLE',
          `${node.name} is a local node, but this service serves the local node as ${this.options.localNodeName ?? '(none: LOCAL_NODE_PATH=off)'}`,
        )
      }
      return this.options.createLocalAgent(node)
    }
    const ssh = this.options.ssh
    if (!ssh) throw new ServiceError('NODE_UNREACHABLE', `node ${node.name} is an SSH node, and this service has no SSH set up`)
    const address = { nodeName: node.name, host: node.host, port: node.port, username: node.user }
    if (node.hostKeyFingerprint === null) throw await this.unverified(node, ssh)

    const endpoint = { ...address, hostKeyFingerprint: node.hostKeyFingerprint }
    const staticPodPath = await this.staticPodPathOf(node, ssh, endpoint)
    return createSshAgent({
      endpoint,
      pool: ssh.pool,
      staticPodPath,
      stateDir: posix.join(ssh.stateDir, node.name),
      kubeletHealthzPort: ssh.kubeletHealthzPort,
      ...ssh.nodeProbes,
      lockTtlMs: ssh.lockTtlMs,
      lockWaitMs: ssh.lockWaitMs,
    })
  }

  /**
   * An unpinned node is asked for its host key and nothing else (the pool
   * refuses the key, so no authentication happens and nothing is sent), the
   * key is recorded for an admin to compare and pin, and the node stays
   * NODE_UNVERIFIED.
   */
  private async unverified(node: NodeRecord, ssh: SshAgentSettings): Promise<ServiceError> {
    const notice = 'nothing is read from or written to it until an admin pins its host key with updateNode(hostKeyFingerprint)'
    let presented: string
    try {
      presented = await ssh.pool.observeHostKey({ nodeName: node.name, host: node.host, port: node.port, username: node.user })
    } catch (err) {
      // Outside NODE_ADDRESS_ALLOW: not contacted at all, which is what the caller needs to hear.
      if (err instanceof AddressNotAllowedError) return err
      return new ServiceError('NODE_UNVERIFIED', `node ${node.name} has no pinned host key: ${notice}; its key could not be seen either (${errorText(err)})`)
    }
    await ssh.facts.recordHostKey(node.name, presented).catch(() => undefined)
    return new ServiceError(
      'NODE_UNVERIFIED',
      `node ${node.name} has no pinned host key: ${notice}. It presents ${presented} (observedHostKeyFingerprint): compare it with \`ssh-keygen -lf\` of the host key on the node's console before pinning it.`,
    )
  }

  /**
   * The registration form cannot tell "no staticPodPath given" from "given the
   * kubeadm default" (the schema fills the default in). So a node whose record
   * says the kubeadm default gets its kubelet's config read at first contact;
   * if the kubelet reads another directory, that one is used and recorded,
   * since manifests written where the kubelet does not look run nothing. A path
   * that an admin set to anything else is taken as given.
   */
  private async staticPodPathOf(node: NodeRecord, ssh: SshAgentSettings, endpoint: SshEndpoint): Promise<string> {
    if (node.staticPodPath !== KUBEADM_STATIC_POD_PATH) return node.staticPodPath
    const discovered = await discoverStaticPodPath(ssh.pool, endpoint, ssh.kubeletConfigPath)
    if (discovered === null || discovered === node.staticPodPath) return node.staticPodPath
    await ssh.facts.recordStaticPodPath(node.name, node.staticPodPath, discovered)
    return discovered
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()]
    this.agents.clear()
    await Promise.allSettled(agents.map(async (a) => (await a.agent).close()))
    await this.options.ssh?.pool.close()
  }
}

/** The SSH side of the registry as the configuration asks for it: one pool for every SSH node. */
export function sshAgentSettings(config: Config, facts: NodeFactsRecorder, resolveHost?: HostResolver): SshAgentSettings {
  const { ssh } = config
  return {
    pool: new SshPool({
      privateKey: config.sshPrivateKey,
      connectTimeoutMs: ssh.connectTimeoutMs,
      operationTimeoutMs: ssh.operationTimeoutMs,
      idleTimeoutMs: ssh.idleTimeoutMs,
      keepaliveIntervalMs: ssh.keepaliveIntervalMs,
      maxConnections: ssh.maxConnections,
      maxOperationsPerNode: ssh.maxOperationsPerNode,
      onHostKey: (nodeName, fingerprint) => facts.recordHostKey(nodeName, fingerprint),
      // Checked again at every connection (a name may resolve elsewhere since it was registered).
      addressAllow: config.nodeAddressAllow,
      resolveHost,
    }),
    facts,
    stateDir: ssh.stateDir,
    kubeletHealthzPort: ssh.kubeletHealthzPort,
    nodeProbes: config.nodeProbes,
    kubeletConfigPath: ssh.kubeletConfigPath,
    lockTtlMs: config.lockTtlMs,
    lockWaitMs: config.lockWaitMs,
  }
}

/** Node facts kept in the store, each written only when it changed, over the current record. */
export function storeNodeFacts(store: Store, clock: () => Date = () => new Date()): NodeFactsRecorder {
  return {
    async recordHostKey(nodeName, fingerprint) {
      const node = await store.getNode(nodeName)
      if (!node || node.kind !== 'ssh' || node.observedHostKeyFingerprint === fingerprint) return
      await store.updateNode({ ...node, observedHostKeyFingerprint: fingerprint })
    },
    async recordStaticPodPath(nodeName, replaced, discovered) {
      const node = await store.getNode(nodeName)
      // An admin who changed the path in the meantime wins.
      if (!node || node.kind !== 'ssh' || node.staticPodPath !== replaced) return
      await store.updateNode({ ...node, staticPodPath: discovered, updatedAt: clock().toISOString() })
    },
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
