// Which agent reaches which node. One agent per node, kept for the life of the
// process (the SSH agent keeps its pooled connection in it).

import { ServiceError, notImplemented } from '../errors.ts'
import type { NodeRecord } from '../store/store.ts'
import type { NodeAgent } from './agent.ts'

export interface AgentProvider {
  /** The node's agent; rejects with a ServiceError saying why the node cannot be contacted. */
  agentFor(node: NodeRecord): Promise<NodeAgent>
  close(): Promise<void>
}

export type LocalAgentFactory = (node: NodeRecord) => Promise<NodeAgent>

export class AgentRegistry implements AgentProvider {
  private readonly agents = new Map<string, { agent: Promise<NodeAgent>; fingerprint: string }>()

  constructor(
    private readonly options: {
      /** The built-in local node's name, or null when LOCAL_NODE_PATH=off. */
      localNodeName: string | null
      createLocalAgent: LocalAgentFactory
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
    if (node.hostKeyFingerprint === null) {
      throw new ServiceError(
        'NODE_UNVERIFIED',
        `node ${node.name} has no pinned host key: nothing is read from or written to it until an admin pins one with updateNode(hostKeyFingerprint)`,
      )
    }
    throw notImplemented(`Reaching node ${node.name} over SSH`, 'the SSH node agent, issue #3')
  }

  async close(): Promise<void> {
    const agents = [...this.agents.values()]
    this.agents.clear()
    await Promise.allSettled(agents.map(async (a) => (await a.agent).close()))
  }
}
