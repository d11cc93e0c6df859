// The node registry: the built-in local node (from LOCAL_NODE_PATH) and the SSH
// nodes an admin registers. Registering changes nothing on a node.
//
// With NODE_ADDRESS_ALLOW set, a node's host and port must be allowed by it to
// be registered: an IP literal as it is, a host name by at least one of the
// addresses it resolves to now. (The SSH pool checks again at every
// connection, and connects only to an address it checked.) A node reached
// through a jump host (via) is not checked here: its host is resolved and
// dialled by the jump host, as OpenSSH's ProxyJump does, and the jump host's
// own address is the one checked (services/jump-hosts.ts).

import { isIP } from 'node:net'
import { posix } from 'node:path'
import * as z from 'zod'
import { ServiceError, ValidationErrors, quoteInput, type UserError } from '../errors.ts'
import { KUBEADM_STATIC_POD_PATH } from '../kubelet-facts.ts'
import { isDns1123Subdomain } from '../manifest/names.ts'
import { lookupAddresses, type AddressAllowList, type HostResolver } from '../net/address-allow.ts'
import type { Label, LocalNodeRecord, NodeFacts, NodeRecord, Privilege, SshNodeRecord } from '../domain.ts'
import type { Store } from '../store/store.ts'
import type { AuditService } from './audit.ts'
import { parseLabelSelector } from './label-selector.ts'
import { authorize, canSeeNode, type Actor } from './actor.ts'

export interface LocalNodeSettings {
  name: string
  staticPodPath: string
}

export interface RegisterNodeInput {
  name: string
  host: string
  port?: number | null
  user?: string | null
  staticPodPath?: string | null
  hostKeyFingerprint?: string | null
  labels?: Label[] | null
  privilege?: Privilege | null
  /** A registered jump host's name; in an update, the empty string: connect directly. */
  via?: string | null
  /** The SFTP server's path on a SUDO node; absent: the first of the usual paths found there. */
  sftpServer?: string | null
}

/** A field left out or null stays as it is (GraphQL's UpdateNodeInput lets a client send null). */
export type UpdateNodeInput = { [K in Exclude<keyof RegisterNodeInput, 'name'>]?: RegisterNodeInput[K] | null } & { name: string }

export interface NodeResult {
  node: NodeRecord | null
  userErrors: UserError[]
}

// ---------------------------------------------------------------- input rules

const LABEL_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/
const HOSTNAME = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/

/** The rules of a node's fields, which jump hosts share (services/jump-hosts.ts). */
export const nodeFields = {
  name: z
    .string()
    .max(253)
    .refine(isDns1123Subdomain, 'must be a lowercase DNS-1123 name (letters, digits, "-" and "."), like the Node object it stands for'),
  host: z
    .string()
    .max(253)
    .refine((h) => isIP(h) !== 0 || HOSTNAME.test(h), 'must be a host name or an IP address'),
  port: z.number().int().min(1).max(65535),
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a POSIX user name'),
  staticPodPath: z
    .string()
    .max(4096)
    .refine((p) => p.startsWith('/') && p !== '/' && !/[\0\n\r]/.test(p) && posix.normalize(p) === p.replace(/\/+$/, '') && !p.split('/').includes('..'), {
      message: 'must be a normalised absolute directory path other than /',
    }),
  hostKeyFingerprint: z
    .string()
    .regex(FINGERPRINT, 'must be an OpenSSH SHA256 fingerprint, e.g. SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s')
    .transform((f) => f.replace(/=$/, ''))
    .nullable(),
  privilege: z.enum(['NONE', 'SUDO']),
  via: z
    .string()
    .max(253)
    .refine(isDns1123Subdomain, 'must be the name of a registered jump host (see the jumpHosts query)'),
  sftpServer: z
    .string()
    .max(4096)
    .refine((p) => p.startsWith('/') && !/[\0\n\r\s'"\\$`;&|<>*?()]/.test(p) && posix.normalize(p) === p && !p.split('/').includes('..'), {
      message: 'must be a normalised absolute path to the SFTP server on the node, without spaces or shell characters',
    }),
  labels: z
    .array(
      z.object({
        key: z.string().max(316).regex(LABEL_NAME, 'must be a Kubernetes label key'),
        value: z.string().max(63).regex(LABEL_VALUE, 'must be a Kubernetes label value'),
      }),
    )
    .max(64)
    .refine((ls) => new Set(ls.map((l) => l.key)).size === ls.length, 'label keys must be unique'),
}

/** kubeadm's staticPodPath: where a node registered without one is read until its kubelet config says otherwise. */
const DISCOVERY_STAND_IN_PATH = KUBEADM_STATIC_POD_PATH

const registerSchema = z.object({
  ...nodeFields,
  port: nodeFields.port.default(22),
  user: nodeFields.user.default('root'),
  staticPodPath: nodeFields.staticPodPath.default(DISCOVERY_STAND_IN_PATH),
  hostKeyFingerprint: nodeFields.hostKeyFingerprint.default(null),
  labels: nodeFields.labels.default([]),
  privilege: nodeFields.privilege.default('NONE'),
  via: nodeFields.via.nullable().default(null),
  sftpServer: nodeFields.sftpServer.nullable().default(null),
})

/** A new SSH node's record, with the registration's defaults for what the input leaves out. */
export function newSshNodeRecord(input: RegisterNodeInput, now: string): SshNodeRecord {
  const fields = parseInput(registerSchema, withoutNulls(input))
  return {
    name: fields.name,
    kind: 'ssh',
    ssh: {
      host: fields.host,
      port: fields.port,
      user: fields.user,
      privilege: fields.privilege,
      sftpServer: fields.sftpServer,
      via: fields.via,
      hostKeyFingerprint: fields.hostKeyFingerprint,
      observedHostKeyFingerprint: null,
    },
    staticPodPath: fields.staticPodPath,
    // The contract's input defaults the path to kubeadm's, so "none given" and
    // "kubeadm's given" look alike; either way the kubelet config on the node
    // is what counts: manifests where the kubelet does not look run nothing.
    staticPodPathFrom: fields.staticPodPath === DISCOVERY_STAND_IN_PATH ? 'discover' : 'given',
    labels: fields.labels,
    createdAt: now,
    updatedAt: now,
  }
}

const updateSchema = z.object({
  name: z.string(),
  host: nodeFields.host.optional(),
  port: nodeFields.port.optional(),
  user: nodeFields.user.optional(),
  staticPodPath: nodeFields.staticPodPath.optional(),
  hostKeyFingerprint: nodeFields.hostKeyFingerprint.optional(),
  labels: nodeFields.labels.optional(),
  privilege: nodeFields.privilege.optional(),
  // The empty string: connect directly (no jump host) / find the SFTP server again.
  via: z.union([z.literal(''), nodeFields.via]).optional(),
  sftpServer: z.union([z.literal(''), nodeFields.sftpServer]).optional(),
})

/** GraphQL gives null for fields left out; the schemas want them absent. */
export function withoutNulls<T extends object>(input: T): Partial<T> {
  return Object.fromEntries(Object.entries(input).filter(([, v]) => v !== null && v !== undefined)) as Partial<T>
}

export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  throw new ValidationErrors(
    parsed.error.issues.map((i) => new ServiceError('VALIDATION_FAILED', `${i.path.join('.') || 'input'}: ${i.message}`, i.path.map(String))),
  )
}

// ---------------------------------------------------------------- service

/** How a node's `via` is checked: the jump host service (services/jump-hosts.ts). */
export interface JumpHostReferences {
  /**
   * Runs write while jump host `name` is registered, and keeps it from being
   * removed until write is done; VALIDATION_FAILED on `via` when there is none.
   */
  whileRegistered<T>(name: string, write: () => Promise<T>): Promise<T>
}

export class NodeService {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditService,
    private readonly clock: () => Date,
    private readonly localNode: LocalNodeSettings | null,
    /** NODE_ADDRESS_ALLOW; null: nodes may be anywhere. */
    private readonly addressAllow: AddressAllowList | null,
    private readonly resolveHost: HostResolver | undefined,
    private readonly jumpHosts: JumpHostReferences,
  ) {}

  /** Puts the built-in local node in the store, or brings its record up to date with the configuration. */
  async ensureLocalNode(): Promise<void> {
    if (!this.localNode) return
    const now = this.clock().toISOString()
    const existing = await this.store.getNode(this.localNode.name)
    if (existing && existing.kind !== 'local') {
      throw new Error(
        `LOCAL_NODE_NAME=${this.localNode.name} is already registered as an SSH node; choose another LOCAL_NODE_NAME or remove that node`,
      )
    }
    const record: LocalNodeRecord = {
      name: this.localNode.name,
      kind: 'local',
      staticPodPath: this.localNode.staticPodPath,
      staticPodPathFrom: 'given',
      labels: existing?.labels ?? [],
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    }
    if (!existing) await this.store.createNode(record)
    else if (existing.staticPodPath !== record.staticPodPath) await this.store.updateNode(record)
  }

  /** The nodes the actor may see, optionally those matching a label selector, by name. */
  async list(actor: Actor, labelSelector?: string | null): Promise<NodeRecord[]> {
    const selector = labelSelector ? parseLabelSelector(labelSelector) : null
    const nodes = (await this.store.listNodes()).filter((n) => canSeeNode(actor, n.name))
    return (selector ? nodes.filter((n) => selector(n.labels)) : nodes).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** The node, or null; FORBIDDEN for a node the actor may not use. */
  async get(name: string, actor: Actor): Promise<NodeRecord | null> {
    authorize(actor, 'viewer', name)
    return this.store.getNode(name)
  }

  /** The node, or NOT_FOUND naming it; FORBIDDEN for a node the actor may not use. */
  async require(name: string, actor: Actor): Promise<NodeRecord> {
    authorize(actor, 'viewer', name)
    const node = await this.store.getNode(name)
    if (!node) throw new ServiceError('NOT_FOUND', `no node named ${quoteInput(name)} is registered (see the nodes query)`, ['node'])
    return node
  }

  registerNode(input: RegisterNodeInput, actor: Actor): Promise<NodeResult> {
    return this.audit.runMutation({ action: 'registerNode', actor, requires: 'admin', node: input.name, dryRun: false }, async () => {
      const node = newSshNodeRecord(input, this.clock().toISOString())
      if (node.name === this.localNode?.name) {
        throw new ServiceError('ALREADY_EXISTS', `${node.name} is the built-in local node (LOCAL_NODE_NAME)`, ['name'])
      }
      const { via } = node.ssh
      if (via === null) await this.checkAddressAllowed(node.ssh.host, node.ssh.port)
      await (via === null ? this.store.createNode(node) : this.jumpHosts.whileRegistered(via, () => this.store.createNode(node)))
      return { node, userErrors: [] }
    }, failedNode)
  }

  updateNode(input: UpdateNodeInput, actor: Actor): Promise<NodeResult> {
    return this.audit.runMutation({ action: 'updateNode', actor, requires: 'admin', node: input.name, dryRun: false }, async () => {
      const fields = parseInput(updateSchema, withoutNulls(input))
      const existing = await this.require(fields.name, actor)
      if (existing.kind === 'local') {
        const fixed = (['host', 'port', 'user', 'staticPodPath', 'hostKeyFingerprint', 'privilege', 'via', 'sftpServer'] as const).find((k) => fields[k] !== undefined)
        if (fixed) {
          throw new ServiceError('VALIDATION_FAILED', `the local node's ${fixed} comes from the service's configuration (LOCAL_NODE_PATH); only labels can be changed`, [fixed])
        }
      }
      const node = withChanges(existing, fields, this.clock().toISOString())
      // Only a new address is checked: labels and keys stay editable on a node registered before the list changed.
      // Behind a jump host, the address is the jump host's to resolve; leaving it is checked like a new address.
      const via = node.kind === 'ssh' ? node.ssh.via : null
      const leftJumpHost = fields.via === '' && existing.kind === 'ssh' && existing.ssh.via !== null
      if (node.kind === 'ssh' && via === null && (fields.host !== undefined || fields.port !== undefined || leftJumpHost)) await this.checkAddressAllowed(node.ssh.host, node.ssh.port)
      // A jump host named now must exist; one kept as it was cannot be removed while this node uses it (removeJumpHost).
      const newVia = fields.via !== undefined && fields.via !== '' ? fields.via : null
      await (newVia === null ? this.store.updateNode(node) : this.jumpHosts.whileRegistered(newVia, () => this.store.updateNode(node)))
      return { node, userErrors: [] }
    }, failedNode)
  }

  /**
   * What the agents learn from an SSH node (the host key it presents, the
   * staticPodPath its kubelet reads), recorded beside what an admin set and
   * never over it: an updateNode made meanwhile is kept whole.
   */
  recordFacts(name: string, facts: NodeFacts): Promise<void> {
    return this.store.recordNodeFacts(name, facts)
  }

  /**
   * Pins an SSH node's host key only while it has none (importKnownHosts; the
   * caller has authorised and audits). The record is read again right before
   * the write, so a pin an admin set since the caller looked is kept; the
   * store has no conditional update, so an updateNode landing between this
   * read and this write (one round trip) is the one it could undo. Returns
   * the node's pin now, and whether this call set it; null when the node is
   * gone or is not an SSH node.
   */
  async pinHostKeyIfUnpinned(name: string, fingerprint: string): Promise<{ pinnedNow: boolean; hostKeyFingerprint: string } | null> {
    const before = await this.store.getNode(name)
    if (before?.kind !== 'ssh') return null
    if (before.ssh.hostKeyFingerprint !== null) return { pinnedNow: false, hostKeyFingerprint: before.ssh.hostKeyFingerprint }
    // One conditional store write: a pin an admin set meanwhile is kept, and reported.
    const pin = await this.store.pinNodeHostKey(name, fingerprint, this.clock().toISOString())
    if (pin === null) return null
    return { pinnedNow: pin === fingerprint, hostKeyFingerprint: pin }
  }

  /**
   * VALIDATION_FAILED unless NODE_ADDRESS_ALLOW (when set) allows host:port:
   * an IP literal itself, a host name one of the addresses it resolves to
   * (within a few seconds). The field is port when the address is allowed on
   * other ports, else host. The message names the host and port as given (both
   * validated already), never what a name resolved to.
   */
  private checkAddressAllowed(host: string, port: number): Promise<void> {
    return checkAddressAllowed(this.addressAllow, host, port, this.resolveHost)
  }

  removeNode(name: string, actor: Actor): Promise<{ removed: boolean; userErrors: UserError[] }> {
    return this.audit.runMutation(
      { action: 'removeNode', actor, requires: 'admin', node: name, dryRun: false },
      async () => {
        const existing = await this.require(name, actor)
        if (existing.kind === 'local' && existing.name === this.localNode?.name) {
          throw new ServiceError('VALIDATION_FAILED', 'the local node comes from LOCAL_NODE_PATH; set LOCAL_NODE_PATH=off to remove it', ['name'])
        }
        return { removed: await this.store.deleteNode(name), userErrors: [] as UserError[] }
      },
      (userErrors) => ({ removed: false, userErrors }),
    )
  }
}

const failedNode = (userErrors: UserError[]): NodeResult => ({ node: null, userErrors })

/** NodeService.checkAddressAllowed's rule, for nodes and jump hosts alike (allow null: anywhere). */
export async function checkAddressAllowed(allow: AddressAllowList | null, host: string, port: number, resolveHost: HostResolver | undefined): Promise<void> {
  if (!allow) return
  let addresses: string[]
  try {
    addresses = await lookupAddresses(host, undefined, resolveHost)
  } catch {
    addresses = [] // a name that does not resolve has no allowed address
  }
  if (addresses.some((ip) => allow.allows(ip, port))) return
  const field = addresses.some((ip) => allow.allowsAddress(ip)) ? 'port' : 'host'
  const where = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
  throw new ServiceError(
    'VALIDATION_FAILED',
    `${field}: address not allowed by NODE_ADDRESS_ALLOW (${where}${isIP(host) === 0 ? ': a host name must resolve to an allowed address' : ''})`,
    [field],
  )
}

/** The record with an admin's changes (fields already checked); a path given is taken as given. */
function withChanges(node: NodeRecord, fields: z.infer<typeof updateSchema>, now: string): NodeRecord {
  const path = fields.staticPodPath === undefined ? {} : { staticPodPath: fields.staticPodPath, staticPodPathFrom: 'given' as const }
  const common = { ...path, labels: fields.labels ?? node.labels, updatedAt: now }
  if (node.kind === 'local') return { ...node, ...common }
  const { host, port, user, privilege, hostKeyFingerprint, via, sftpServer } = fields
  return {
    ...node,
    ...common,
    ssh: {
      ...node.ssh,
      ...withoutNulls({ host, port, user, privilege }),
      ...(hostKeyFingerprint === undefined ? {} : { hostKeyFingerprint }),
      ...(via === undefined ? {} : { via: via === '' ? null : via }),
      ...(sftpServer === undefined ? {} : { sftpServer: sftpServer === '' ? null : sftpServer }),
    },
  }
}

/**
 * How the API shows where a node is: an SSH node's address and keys; the
 * local node has none, and shows this machine as the service's own user sees it.
 */
export function nodeAddressOf(node: NodeRecord): Omit<SshNodeRecord['ssh'], 'sftpServer'> {
  if (node.kind === 'ssh') return node.ssh
  return { host: 'localhost', port: 0, user: LOCAL_USER, privilege: 'NONE', via: null, hostKeyFingerprint: null, observedHostKeyFingerprint: null }
}

const LOCAL_USER = process.env.USER ?? 'root'

