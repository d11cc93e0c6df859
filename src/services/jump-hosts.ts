// Jump hosts (bastions, OpenSSH's ProxyJump): the registry of them and its
// rules, and what the agents read of them (the JumpHostDirectory of
// agents/registry.ts).
//
// - putJumpHost creates or replaces one (admin, audited). Its `via` must name
//   another registered jump host; no loops, and no chain longer than
//   MAX_JUMP_HOSTS_IN_CHAIN counting the jump hosts already behind it.
//   NODE_ADDRESS_ALLOW applies to a jump host reached directly; one behind
//   another is resolved and dialled by that one, like a node behind it.
// - removeJumpHost is CONFLICT while a node or another jump host is reached
//   through it.
// - Changes to jump hosts, and every node registration or update that names
//   one (NodeService through whileRegistered), take turns in this process, so
//   a jump host cannot be removed between a node's check of it and the write
//   that names it. (Across instances sharing a store that can still happen;
//   the agents then answer NODE_UNREACHABLE naming the missing jump host.)
// - A token limited to some nodes may list jump hosts (seeing only its own
//   nodes behind them) but not change them: a jump host carries other nodes'
//   traffic too.
// - reachable / lastError are asked live (the agents open, or reuse, the
//   connection to the jump host; an unpinned one only shows its key).

import * as z from 'zod'
import { MAX_JUMP_HOSTS_IN_CHAIN, type AgentProvider, type JumpHostDirectory } from '../agents/registry.ts'
import { isServiceError, quoteInput, ServiceError, type UserError } from '../errors.ts'
import type { JumpHostRecord, NodeRecord } from '../domain.ts'
import { isDns1123Subdomain } from '../manifest/names.ts'
import type { AddressAllowList, HostResolver } from '../net/address-allow.ts'
import type { Store } from '../store/store.ts'
import { authorize, canSeeNode, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import { checkAddressAllowed, nodeFields, parseInput, withoutNulls, type JumpHostReferences } from './nodes.ts'

export interface JumpHostInput {
  name: string
  host: string
  port?: number | null
  user: string
  hostKeyFingerprint?: string | null
  /** Another registered jump host in front of this one; absent, null or "": reached directly. */
  via?: string | null
}

export interface JumpHostResult {
  jumpHost: JumpHostRecord | null
  userErrors: UserError[]
}

export interface JumpHostStatus {
  reachable: boolean
  /** `CODE: message`, as a node's agent.lastError. */
  lastError: string | null
  /** As stored after the check (which records the key the jump host presented). */
  observedHostKeyFingerprint: string | null
}

/**
 * How long the agents may go on using jump host records read from the store:
 * a change made in this process is seen at once, one made by another instance
 * sharing the store within this.
 */
const RECORDS_CACHE_MS = 1_000
/** Names quoted in a CONFLICT message, at most. */
const NAMES_QUOTED = 10

const jumpHostSchema = z.object({
  name: z
    .string()
    .max(253)
    .refine(isDns1123Subdomain, 'must be a lowercase DNS-1123 name (letters, digits, "-" and ".")'),
  host: nodeFields.host,
  port: nodeFields.port.default(22),
  user: nodeFields.user,
  hostKeyFingerprint: nodeFields.hostKeyFingerprint.default(null),
  via: z.union([z.literal('').transform(() => null), nodeFields.via]).nullable().default(null),
})

export class JumpHostService implements JumpHostDirectory, JumpHostReferences {
  /** Changes and the node writes that name a jump host, one after another. */
  #turn: Promise<unknown> = Promise.resolve()
  #records: { readAt: number; byName: Promise<Map<string, JumpHostRecord>> } | null = null
  /** Checks in flight, so the fields of one jump host in one query share one. */
  readonly #checks = new Map<string, Promise<JumpHostStatus>>()
  #nodeList: Promise<NodeRecord[]> | null = null

  constructor(
    private readonly o: {
      store: Store
      audit: AuditService
      agents: AgentProvider
      /** NODE_ADDRESS_ALLOW; null: anywhere. */
      addressAllow: AddressAllowList | null
      resolveHost?: HostResolver | undefined
    },
  ) {}

  /** Every jump host, by name. */
  async list(actor: Actor): Promise<JumpHostRecord[]> {
    authorize(actor, 'viewer')
    return this.o.store.listJumpHosts()
  }

  putJumpHost(input: JumpHostInput, actor: Actor): Promise<JumpHostResult> {
    return this.o.audit.runMutation(
      { action: 'putJumpHost', actor, requires: 'admin', node: null, target: input.name, dryRun: false },
      async (draft): Promise<JumpHostResult> => {
        requireAllNodes(actor)
        const fields = parseInput(jumpHostSchema, withoutNulls(input))
        return this.#exclusively(async () => {
          const all = await this.o.store.listJumpHosts()
          const existing = all.find((j) => j.name === fields.name)
          const record: JumpHostRecord = { ...fields, observedHostKeyFingerprint: existing?.observedHostKeyFingerprint ?? null }
          checkChain(record, all)
          if (record.via === null) await checkAddressAllowed(this.o.addressAllow, record.host, record.port, this.o.resolveHost)
          const stored = await this.o.store.putJumpHost(record)
          this.#forgetRecords()
          draft.message = existing ? 'replaced' : 'created'
          return { jumpHost: stored, userErrors: [] }
        })
      },
      (userErrors): JumpHostResult => ({ jumpHost: null, userErrors }),
    )
  }

  removeJumpHost(name: string, actor: Actor): Promise<{ removed: boolean; userErrors: UserError[] }> {
    return this.o.audit.runMutation(
      { action: 'removeJumpHost', actor, requires: 'admin', node: null, target: name, dryRun: false },
      async () => {
        requireAllNodes(actor)
        return this.#exclusively(async () => {
          if (!(await this.o.store.getJumpHost(name))) {
            throw new ServiceError('NOT_FOUND', `no jump host named ${quoteInput(name)} is registered (see the jumpHosts query)`, ['name'])
          }
          const [nodes, jumpHosts] = await Promise.all([this.o.store.listNodes(), this.o.store.listJumpHosts()])
          const nodesThrough = nodes.filter((n) => n.kind === 'ssh' && n.ssh.via === name).map((n) => n.name)
          const jumpHostsThrough = jumpHosts.filter((j) => j.via === name).map((j) => j.name)
          if (nodesThrough.length > 0 || jumpHostsThrough.length > 0) {
            const users = [nodesThrough.length > 0 ? `nodes ${namesText(nodesThrough)}` : '', jumpHostsThrough.length > 0 ? `jump hosts ${namesText(jumpHostsThrough)}` : '']
            throw new ServiceError(
              'CONFLICT',
              `jump host ${name} is still in use: ${users.filter(Boolean).join(' and ')} ${nodesThrough.length + jumpHostsThrough.length === 1 ? 'is' : 'are'} reached through it; give them another via first (updateNode, putJumpHost)`,
              ['name'],
            )
          }
          const removed = await this.o.store.deleteJumpHost(name)
          this.#forgetRecords()
          return { removed, userErrors: [] as UserError[] }
        })
      },
      (userErrors) => ({ removed: false, userErrors }),
    )
  }

  /** The registered nodes the actor may see whose connection goes through this jump host (directly, or behind others), by name. */
  async nodesThrough(jumpHost: JumpHostRecord, actor: Actor): Promise<string[]> {
    const [nodes, byName] = await Promise.all([this.#sharedNodeList(), this.#recordsByName()])
    const through = (via: string | null): boolean => {
      for (let hop = via, steps = 0; hop !== null && steps < MAX_JUMP_HOSTS_IN_CHAIN; hop = byName.get(hop)?.via ?? null, steps++) {
        if (hop === jumpHost.name) return true
      }
      return false
    }
    return nodes
      .filter((n) => n.kind === 'ssh' && through(n.ssh.via) && canSeeNode(actor, n.name))
      .map((n) => n.name)
      .sort()
  }

  /**
   * Whether the service can use the jump host now: its connection is opened
   * (or the open one reused) through the jump hosts in front of it. Never
   * throws; bounded by SSH_CONNECT_TIMEOUT_MS per jump host in the chain.
   */
  status(jumpHost: JumpHostRecord): Promise<JumpHostStatus> {
    const key = JSON.stringify(jumpHost)
    let check = this.#checks.get(key)
    if (!check) {
      check = this.#check(jumpHost).finally(() => this.#checks.delete(key))
      this.#checks.set(key, check)
    }
    return check
  }

  async #check(jumpHost: JumpHostRecord): Promise<JumpHostStatus> {
    let status: Omit<JumpHostStatus, 'observedHostKeyFingerprint'>
    try {
      if (!this.o.agents.checkJumpHost) throw new ServiceError('NODE_UNREACHABLE', `jump host ${jumpHost.name}: this service has no SSH set up`)
      await this.o.agents.checkJumpHost(jumpHost)
      status = { reachable: true, lastError: null }
    } catch (err) {
      status = { reachable: false, lastError: isServiceError(err) ? `${err.code}: ${err.message}` : 'INTERNAL_ERROR: the check failed unexpectedly (see the service log)' }
    }
    const stored = await this.o.store.getJumpHost(jumpHost.name)
    return { ...status, observedHostKeyFingerprint: stored?.observedHostKeyFingerprint ?? jumpHost.observedHostKeyFingerprint }
  }

  // ---- for NodeService (JumpHostReferences)

  whileRegistered<T>(name: string, write: () => Promise<T>): Promise<T> {
    return this.#exclusively(async () => {
      if (!(await this.o.store.getJumpHost(name))) {
        throw new ServiceError('VALIDATION_FAILED', `via: no jump host named ${quoteInput(name)} is registered (see the jumpHosts query)`, ['via'])
      }
      return write()
    })
  }

  // ---- for KnownHostsService (importKnownHosts, services/known-hosts.ts)

  /**
   * Pins a jump host's host key only while it has none; the caller has
   * authorised and audits. Taken in turn with putJumpHost and removeJumpHost,
   * so neither lands between the read and the write here. Returns the pin it
   * has now, and whether this call set it; null when it is gone.
   */
  pinHostKeyIfUnpinned(name: string, fingerprint: string): Promise<{ pinnedNow: boolean; hostKeyFingerprint: string } | null> {
    return this.#exclusively(async () => {
      const existing = await this.o.store.getJumpHost(name)
      if (!existing) return null
      if (existing.hostKeyFingerprint !== null) return { pinnedNow: false, hostKeyFingerprint: existing.hostKeyFingerprint }
      await this.o.store.putJumpHost({ ...existing, hostKeyFingerprint: fingerprint })
      this.#forgetRecords()
      return { pinnedNow: true, hostKeyFingerprint: fingerprint }
    })
  }

  // ---- for the agents (JumpHostDirectory)

  async jumpHost(name: string): Promise<JumpHostRecord | null> {
    return (await this.#recordsByName()).get(name) ?? null
  }

  recordJumpHostFacts(name: string, facts: { observedHostKeyFingerprint: string }): Promise<void> {
    return this.o.store.recordJumpHostFacts(name, facts)
  }

  // ---- internals

  #exclusively<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(fn)
    this.#turn = run.catch(() => undefined)
    return run
  }

  /** One store read serves every node connection made within RECORDS_CACHE_MS (a fleet query behind one jump host). */
  #recordsByName(): Promise<Map<string, JumpHostRecord>> {
    const now = Date.now()
    if (this.#records && now - this.#records.readAt < RECORDS_CACHE_MS) return this.#records.byName
    const byName = this.o.store.listJumpHosts().then((list) => new Map(list.map((j) => [j.name, j])))
    const records = { readAt: now, byName }
    this.#records = records
    byName.catch(() => {
      if (this.#records === records) this.#records = null
    })
    return byName
  }

  #forgetRecords(): void {
    this.#records = null
  }

  /** The node list, one read shared by the callers that ask while it is in flight (every JumpHost.nodes of one query). */
  #sharedNodeList(): Promise<NodeRecord[]> {
    if (!this.#nodeList) {
      const list = this.o.store.listNodes()
      this.#nodeList = list
      const forget = (): void => {
        if (this.#nodeList === list) this.#nodeList = null
      }
      list.then(forget, forget)
    }
    return this.#nodeList
  }
}

/** FORBIDDEN for a token limited to some nodes. */
function requireAllNodes(actor: Actor): void {
  if (actor.nodes !== null) {
    throw new ServiceError('FORBIDDEN', `${actor.name} is limited to some nodes; jump hosts carry other nodes' connections too, so only an admin for all nodes may change them`)
  }
}

/**
 * VALIDATION_FAILED on `via` unless the record's via names another registered
 * jump host, without a loop, and the longest chain through the record (the
 * jump hosts in front of it, itself, and those behind it) is at most
 * MAX_JUMP_HOSTS_IN_CHAIN.
 */
function checkChain(record: JumpHostRecord, all: JumpHostRecord[]): void {
  const byName = new Map(all.map((j) => [j.name, j]))
  byName.set(record.name, record)
  const fail = (why: string): never => {
    throw new ServiceError('VALIDATION_FAILED', `via: ${why}`, ['via'])
  }
  const inFront: string[] = []
  for (let hop = record.via; hop !== null; hop = byName.get(hop)?.via ?? null) {
    if (hop === record.name) fail(inFront.length === 0 ? 'a jump host cannot be reached through itself' : `${[record.name, ...inFront, hop].join(' via ')} would be a loop`)
    if (!byName.has(hop)) fail(`no jump host named ${quoteInput(hop)} is registered (see the jumpHosts query)`)
    inFront.push(hop)
    if (inFront.length >= MAX_JUMP_HOSTS_IN_CHAIN) break
  }
  // Jump hosts already behind this one: the longest run of via links that ends at it.
  let behind = 0
  for (const other of byName.values()) {
    let steps = 0
    for (let hop = other.via; hop !== null && steps < MAX_JUMP_HOSTS_IN_CHAIN; hop = byName.get(hop)?.via ?? null) {
      steps++
      if (hop === record.name) {
        behind = Math.max(behind, steps)
        break
      }
    }
  }
  const length = inFront.length + 1 + behind
  if (length > MAX_JUMP_HOSTS_IN_CHAIN) {
    fail(`a chain of ${length} jump hosts${behind > 0 ? ` (with the ${behind} behind ${record.name})` : ''}; at most ${MAX_JUMP_HOSTS_IN_CHAIN} are supported`)
  }
}

function namesText(names: string[]): string {
  const shown = names.slice(0, NAMES_QUOTED).join(', ')
  return names.length > NAMES_QUOTED ? `${shown} (and ${names.length - NAMES_QUOTED} more)` : shown
}
