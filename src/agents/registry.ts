// Which agent reaches which node. One agent per node, kept for the life of the
// process; SSH agents share one connection pool, which keeps one connection
// per node (and one per jump host, shared by the nodes behind it).
//
// A node with `via` is reached through its chain of jump hosts, read from the
// jump host directory (the jump host service) each time its agent is asked
// for: a jump host re-pinned or moved gets the node a new agent and
// connection. The chain is walked outward from the node, at most
// MAX_JUMP_HOSTS_IN_CHAIN long; a jump host without a pinned key stops it
// there: nothing is sent through it, its presented key is recorded, and the
// node is NODE_UNVERIFIED saying which jump host to pin.

import { posix } from 'node:path'
import type { Config, NodeProbeConfig } from '../config.ts'
import { errorText, ServiceError } from '../errors.ts'
import type { HostResolver } from '../net/address-allow.ts'
import type { JumpHostRecord, NodeFacts, NodeRecord, SshNodeRecord } from '../domain.ts'
import type { NodeAgent } from './agent.ts'
import { createSshAgent, discoverStaticPodPath, sudoAccessFor } from './ssh.ts'
import { AddressNotAllowedError, SshPool, type JumpHostEndpoint, type SshEndpoint, type SshPoolLog, type SshPoolStats } from './ssh-pool.ts'

/** The longest chain of jump hosts in front of a node (ssh -J a,b,c,d); putJumpHost refuses longer ones. */
export const MAX_JUMP_HOSTS_IN_CHAIN = 4

export interface AgentProvider {
  /** The node's agent; rejects with a ServiceError saying why the node cannot be contacted. */
  agentFor(node: NodeRecord): Promise<NodeAgent>
  /** The SSH connection counters (for /metrics and tests); null when SSH is not set up. */
  sshPoolStats(): SshPoolStats | null
  /** Where the raw connection errors behind the API's messages are logged (debug level). */
  attachLog?(log: SshPoolLog): void
  /** Where jump host records are read and their presented keys recorded (the jump host service, wired after the agents). */
  attachJumpHosts?(jumpHosts: JumpHostDirectory): void
  /**
   * Opens (or reuses) the connection to a jump host through the ones in front
   * of it; rejects with a ServiceError saying why it cannot be used (an
   * unpinned one: NODE_UNVERIFIED, after its presented key is recorded).
   */
  checkJumpHost?(jumpHost: JumpHostRecord): Promise<void>
  close(): Promise<void>
}

/** The jump hosts as the agents need them (the jump host service). */
export interface JumpHostDirectory {
  /** The jump host's record, or null when none of that name is registered. */
  jumpHost(name: string): Promise<JumpHostRecord | null>
  /** The key it presented (a fact, recorded beside what an admin set). */
  recordJumpHostFacts(name: string, facts: { observedHostKeyFingerprint: string }): Promise<void>
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
  /** The kubelet's podLogsDir on each node (KUBELET_POD_LOGS_DIR); default /var/log/pods. */
  podLogsDir?: string
  lockTtlMs: number
  lockWaitMs: number
}

export class AgentRegistry implements AgentProvider {
  private readonly agents = new Map<string, { agent: Promise<NodeAgent>; fingerprint: string }>()
  private jumpHosts: JumpHostDirectory | null = null

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
    // Behind jump hosts: the chain as registered now is part of what the agent is for.
    if (node.kind === 'ssh' && node.ssh.via !== null) return this.jumpChainTo(node, node.ssh.via).then((via) => this.agentVia(node, via))
    return this.agentVia(node, null)
  }

  private agentVia(node: NodeRecord, via: JumpHostEndpoint | null): Promise<NodeAgent> {
    // A node record that changed (path, host, key, jump hosts) gets a new agent.
    const fingerprint = (via ? JSON.stringify(jumpChainKey(via)) : '') + JSON.stringify(node.kind === 'ssh' ? [node.kind, node.ssh.host, node.ssh.port, node.ssh.user, node.ssh.hostKeyFingerprint, node.ssh.privilege, node.ssh.sftpServer, node.staticPodPath] : [node.kind, node.staticPodPath])
    const cached = this.agents.get(node.name)
    if (cached && cached.fingerprint === fingerprint) return cached.agent
    const agent = this.create(node, via)
    // An agent that could not be made is not kept: the next call tries again.
    agent.catch(() => {
      if (this.agents.get(node.name)?.agent === agent) this.agents.delete(node.name)
    })
    if (cached) void cached.agent.then((a) => a.close()).catch(() => undefined)
    this.agents.set(node.name, { agent, fingerprint })
    return agent
  }

  /** ssh2 loaded in the background now, not at the first node's connection (SshPool.preload). */
  preloadSsh(): void {
    this.options.ssh?.pool.preload()
  }

  sshPoolStats(): SshPoolStats | null {
    return this.options.ssh?.pool.stats() ?? null
  }

  attachLog(log: SshPoolLog): void {
    this.options.ssh?.pool.attachLog(log)
  }

  attachJumpHosts(jumpHosts: JumpHostDirectory): void {
    this.jumpHosts = jumpHosts
    this.options.ssh?.pool.attachJumpHostKeyRecorder((name, fingerprint) => jumpHosts.recordJumpHostFacts(name, { observedHostKeyFingerprint: fingerprint }))
  }

  async checkJumpHost(jumpHost: JumpHostRecord): Promise<void> {
    const ssh = this.options.ssh
    if (!ssh) throw new ServiceError('NODE_UNREACHABLE', `jump host ${jumpHost.name}: this service has no SSH set up`)
    await ssh.pool.checkJumpHost(await this.jumpChainFrom(jumpHost, ssh, `jump host ${jumpHost.name}`))
  }

  /** The pinned chain of jump hosts in front of a node, from the directory; a ServiceError saying why there is none to use. */
  private async jumpChainTo(node: SshNodeRecord, via: string): Promise<JumpHostEndpoint> {
    const ssh = this.options.ssh
    if (!ssh) throw new ServiceError('NODE_UNREACHABLE', `node ${node.name} is an SSH node, and this service has no SSH set up`)
    const first = await this.jumpHostNamed(via, `node ${node.name}`)
    return this.jumpChainFrom(first, ssh, `node ${node.name}`)
  }

  private async jumpHostNamed(name: string, subject: string): Promise<JumpHostRecord> {
    const record = this.jumpHosts ? await this.jumpHosts.jumpHost(name) : null
    // Removed since the subject was registered (removeJumpHost refuses while it is used; another instance may not have known).
    if (!record) throw new ServiceError('NODE_UNREACHABLE', `${subject} is reached through jump host ${name}, which is not registered (see the jumpHosts query)`)
    return record
  }

  /**
   * The endpoint of `first`, with the jump hosts in front of it, walked
   * outward and bounded. The first unpinned one from the outside in is asked
   * for its key through the pinned ones in front of it (nothing else is
   * sent), which is recorded; then NODE_UNVERIFIED.
   */
  private async jumpChainFrom(first: JumpHostRecord, ssh: SshAgentSettings, subject: string): Promise<JumpHostEndpoint> {
    const records = [first]
    for (let next = first.via; next !== null; next = records[records.length - 1]!.via) {
      if (records.length >= MAX_JUMP_HOSTS_IN_CHAIN || records.some((r) => r.name === next)) {
        throw new ServiceError(
          'NODE_UNREACHABLE',
          `${subject}: its jump hosts (${[...records.map((r) => r.name), next].join(' via ')}) ${records.some((r) => r.name === next) ? 'go round in a loop' : `are more than ${MAX_JUMP_HOSTS_IN_CHAIN}`}; change one with putJumpHost`,
        )
      }
      records.push(await this.jumpHostNamed(next, `jump host ${records[records.length - 1]!.name}`))
    }
    let via: JumpHostEndpoint | null = null
    for (const record of records.reverse()) {
      if (record.hostKeyFingerprint === null) throw await this.unverifiedJumpHost(record, via, ssh, subject)
      via = { name: record.name, host: record.host, port: record.port, username: record.user, hostKeyFingerprint: record.hostKeyFingerprint, via }
    }
    return via as JumpHostEndpoint
  }

  /** NODE_UNVERIFIED for a subject behind an unpinned jump host, after its presented key is seen and recorded. */
  private async unverifiedJumpHost(jump: JumpHostRecord, via: JumpHostEndpoint | null, ssh: SshAgentSettings, subject: string): Promise<ServiceError> {
    const behind = subject === `jump host ${jump.name}` ? '' : `${subject} is reached through jump host ${jump.name}, which has no pinned host key: `
    const notice = `nothing is sent through jump host ${jump.name} until an admin pins its host key with putJumpHost(hostKeyFingerprint)`
    let presented: string
    try {
      presented = await ssh.pool.observeHostKey({ nodeName: jump.name, host: jump.host, port: jump.port, username: jump.user, via }, 'jump host')
    } catch (err) {
      return new ServiceError('NODE_UNVERIFIED', `${behind}${notice}; its key could not be seen either (${errorText(err)})`)
    }
    await this.jumpHosts?.recordJumpHostFacts(jump.name, { observedHostKeyFingerprint: presented }).catch(() => undefined)
    return new ServiceError(
      'NODE_UNVERIFIED',
      `${behind}${notice}. It presents ${presented} (observedHostKeyFingerprint): compare it with \`ssh-keygen -lf\` of the host key on its console before pinning it.`,
    )
  }

  private async create(node: NodeRecord, via: JumpHostEndpoint | null): Promise<NodeAgent> {
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
    if (hostKeyFingerprint === null) throw await this.unverified(node, ssh, via)

    // SUDO: root through sudo -n, the SFTP server started with it (sudo.ts).
    const endpoint = {
      nodeName: node.name,
      host,
      port,
      username: user,
      hostKeyFingerprint,
      recordedHostKeyFingerprint: node.ssh.observedHostKeyFingerprint,
      via,
      ...sudoAccessFor(node.name, node.ssh.privilege, node.ssh.sftpServer),
    }
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
      podLogDir: ssh.podLogsDir,
    })
  }

  /**
   * An unpinned node is asked for its host key and nothing else (the pool
   * refuses the key, so no authentication happens and nothing is sent), the
   * key is recorded for an admin to compare and pin, and the node stays
   * NODE_UNVERIFIED.
   */
  private async unverified(node: SshNodeRecord, ssh: SshAgentSettings, via: JumpHostEndpoint | null): Promise<ServiceError> {
    const notice = 'nothing is read from or written to it until an admin pins its host key with updateNode(hostKeyFingerprint)'
    let presented: string
    try {
      presented = await ssh.pool.observeHostKey({ nodeName: node.name, host: node.ssh.host, port: node.ssh.port, username: node.ssh.user, via })
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

/** A chain's identity: each jump host's address, user and pin, outermost last. */
function jumpChainKey(jump: JumpHostEndpoint): unknown[] {
  const key: unknown[] = []
  for (let hop: JumpHostEndpoint | null = jump; hop !== null; hop = hop.via) key.push([hop.name, hop.host, hop.port, hop.username, hop.hostKeyFingerprint])
  return key
}

/** The SSH side of the registry as the configuration asks for it: one pool for every SSH node. */
export function sshAgentSettings(config: Config, facts: NodeFactsRecorder, resolveHost?: HostResolver): SshAgentSettings {
  const { ssh } = config
  return {
    pool: new SshPool({
      privateKey: config.sshPrivateKey,
      agent: config.sshAgentSocket,
      connectTimeoutMs: ssh.connectTimeoutMs,
      operationTimeoutMs: ssh.operationTimeoutMs,
      idleTimeoutMs: ssh.idleTimeoutMs,
      keepaliveIntervalMs: ssh.keepaliveIntervalMs,
      maxConnections: ssh.maxConnections,
      connectConcurrency: ssh.connectConcurrency,
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
    podLogsDir: config.podLogsDir,
    lockTtlMs: config.lockTtlMs,
    lockWaitMs: config.lockWaitMs,
  }
}

