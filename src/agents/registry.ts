// Which agent reaches which node. One agent per node, kept for the life of the
// process; SSH agents share one connection pool, which keeps one connection
// per node.

import { posix } from 'node:path'
import type { Config, NodeProbeConfig } from '../config.ts'
import { errorText, ServiceError } from '../errors.ts'
import type { HostResolver } from '../net/address-allow.ts'
import type { NodeFacts, NodeRecord, SshNodeRecord } from '../domain.ts'
import type { NodeAgent } from './agent.ts'
import { createSshAgent, discoverStaticPodPath } from './ssh.ts'
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

/** Where the agents report what they learn about a node that belongs in its record (the node service). */
export interface NodeFactsRecorder {
  recordFacts(nodeName: string, facts: NodeFacts): Promise<void>
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
    const fingerprint = JSON.stringify(node.kind === 'ssh' ? [node.kind, node.ssh.host, node.ssh.port, node.ssh.user, node.ssh.hostKeyFingerprint, node.staticPodPath] : [node.kind, node.staticPodPath])
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
    const { host, port, user, hostKeyFingerprint } = node.ssh
    if (hostKeyFingerprint === null) throw await this.unverified(node, ssh)

    const endpoint = { nodeName: node.name, host, port, username: user, hostKeyFingerprint }
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
  private async unverified(node: SshNodeRecord, ssh: SshAgentSettings): Promise<ServiceError> {
    const notice = 'nothing is read from or written to it until an admin pins its host key with updateNode(hostKeyFingerprint)'
    let presented: string
    try {
      presented = await ssh.pool.observeHostKey({ nodeName: node.name, host: node.ssh.host, port: node.ssh.port, username: node.ssh.user })
    } catch (err) {
      // Outside NODE_ADDRESS_ALLOW: not contacted at all, which is what the caller needs to hear.
      if (err instanceof AddressNotAllowedError) return err
      return new ServiceError('NODE_UNVERIFIED', `node ${node.name} has no pinned host key: ${notice}; its key could not be seen either (${errorText(err)})`)
    }
    await ssh.facts.recordFacts(node.name, { observedHostKeyFingerprint: presented }).catch(() => undefined)
    return new ServiceError(
      'NODE_UNVERIFIED',
      `node ${node.name} has no pinned host key: ${notice}. It presents ${presented} (observedHostKeyFingerprint): compare it with \`ssh-keygen -lf\` of the host key on the node's console before pinning it.`,
    )
  }

  /**
   * A node registered without a staticPodPath gets its kubelet's config read
   * at first contact: manifests written where the kubelet does not look run
   * nothing. What it names is used and recorded (a fact: an admin's path,
   * set meanwhile, wins); until then, and when it names none, the record's
   * stand-in (kubeadm's path) is used.
   */
  private async staticPodPathOf(node: SshNodeRecord, ssh: SshAgentSettings, endpoint: SshEndpoint): Promise<string> {
    if (node.staticPodPathFrom !== 'discover') return node.staticPodPath
    const discovered = await discoverStaticPodPath(ssh.pool, endpoint, ssh.kubeletConfigPath)
    if (discovered === null) return node.staticPodPath
    await ssh.facts.recordFacts(node.name, { discoveredStaticPodPath: discovered })
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
      onHostKey: (nodeName, fingerprint) => facts.recordFacts(nodeName, { observedHostKeyFingerprint: fingerprint }),
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

