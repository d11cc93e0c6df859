// Fleet operations: one manifest applied to many nodes (applyStaticPodToNodes),
// ROLLING (maxUnavailable nodes at a time, stopping at the first node that
// fails) or ALL_AT_ONCE. Each node goes through the static pod service's own
// write path (UPSERT, as REST PUT: lock, compare, back up, write, read back,
// record) and then through the readiness wait and rollback that
// updateStaticPod(waitForReady) uses too. Nothing here writes to a node itself.
//
// Every rollout gets an id; its per-node progress is kept in memory
// (RolloutRegistry) for the rollouts/rollout queries while it runs and for a
// while after. Every step is a log line, and the writes, waits and rollbacks
// are audit events, as is the rollout as a whole.

import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { isServiceError, quoteInput, ServiceError, toUserError, type UserError } from '../errors.ts'
import { sha256Hex } from '../manifest/hash.ts'
import { parseManifest } from '../manifest/parse.ts'
import { validateStaticPod, type PodIdentity } from '../manifest/validate.ts'
import type { NodeRecord } from '../domain.ts'
import { authorize, canSeeNode, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import { mapWithConcurrency } from '../concurrency.ts'
import type { NodeService } from './nodes.ts'
import { readyTimeoutOf } from './readiness-signals.ts'
import type { SettledWriteService } from './settled-write.ts'
import type { StaticPodService } from './static-pods.ts'
import type { StaticPodView } from './static-pod-view.ts'

type RolloutStrategy = 'ROLLING' | 'ALL_AT_ONCE'
type ApplyStatus = 'APPLIED' | 'UNCHANGED' | 'FAILED' | 'SKIPPED' | 'WOULD_APPLY' | 'ROLLED_BACK'
export type RolloutNodePhase = 'PENDING' | 'WRITING' | 'WAITING_FOR_READY' | 'ROLLING_BACK' | 'DONE'
type RolloutState = 'RUNNING' | 'SUCCEEDED' | 'FAILED'

export interface ApplyToNodesInput {
  nodes?: string[] | null | undefined
  labelSelector?: string | null | undefined
  manifest: string
  strategy?: RolloutStrategy | null | undefined
  maxUnavailable?: number | null | undefined
  readyTimeoutSeconds?: number | null | undefined
  autoRollback?: boolean | null | undefined
  dryRun?: boolean | null | undefined
}

export interface NodeApplyResult {
  node: string
  status: ApplyStatus
  /** The pod on the node now (after a rollback: the restored one; for a dry run: what would be written). */
  staticPod: StaticPodView | null
  error: UserError | null
  /** Unified diff from the node's manifest to the applied one; empty when unchanged; null when not compared. */
  diff: string | null
}

export interface ApplyToNodesResult {
  rolloutId: string | null
  results: NodeApplyResult[]
  userErrors: UserError[]
}

/** One node of a rollout as it progresses. */
export interface RolloutNodeView {
  node: string
  phase: RolloutNodePhase
  /** Set when the node is DONE. */
  status: ApplyStatus | null
  error: UserError | null
  /** What the node is at: the readiness wait's latest answer, why it was skipped ... */
  message: string | null
  startedAt: string | null
  finishedAt: string | null
}

export interface RolloutView {
  id: string
  actor: string
  /** namespace/name of the static pod. */
  target: string
  /** SHA-256 of the manifest applied. */
  hash: string
  strategy: RolloutStrategy
  maxUnavailable: number
  readyTimeoutSeconds: number
  autoRollback: boolean
  dryRun: boolean
  state: RolloutState
  startedAt: string
  finishedAt: string | null
  nodes: RolloutNodeView[]
}

/** ALL_AT_ONCE writes this many nodes at a time: each has its own pooled SSH connection. */
const ALL_AT_ONCE_CONCURRENCY = 64
/** Dry runs compare this many nodes at a time, whatever the strategy: they change nothing. */
const DRY_RUN_CONCURRENCY = 32
const AUDIT_ACTION = 'applyStaticPodToNodes'

/**
 * Rollouts of this process, for the progress queries: every running one, and
 * the last `keepFinished` finished ones. In memory, so a rollout is seen by
 * the process that runs it (the long-running server; see README on Lambda).
 */
export class RolloutRegistry {
  private readonly rollouts = new Map<string, RolloutView>()

  constructor(private readonly keepFinished = 50) {}

  add(rollout: RolloutView): void {
    this.rollouts.set(rollout.id, rollout)
  }

  /** Marks it finished and forgets the oldest finished ones beyond the bound. */
  finish(rollout: RolloutView, at: string): void {
    rollout.finishedAt = at
    rollout.state = rollout.nodes.some((n) => n.status === 'FAILED' || n.status === 'ROLLED_BACK') ? 'FAILED' : 'SUCCEEDED'
    const finished = [...this.rollouts.values()].filter((r) => r.finishedAt !== null)
    for (const old of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) this.rollouts.delete(old.id)
  }

  /** Newest first; an actor limited to some nodes sees only rollouts on its nodes, and only those nodes. */
  list(query: { active?: boolean | null }, actor: Actor): RolloutView[] {
    return [...this.rollouts.values()]
      .reverse()
      .filter((r) => query.active === undefined || query.active === null || (r.finishedAt === null) === query.active)
      .map((r) => visiblePart(r, actor))
      .filter((r): r is RolloutView => r !== null)
  }

  get(id: string, actor: Actor): RolloutView | null {
    const rollout = this.rollouts.get(id)
    return rollout ? visiblePart(rollout, actor) : null
  }
}

/** A copy (the live record keeps changing while a response is written), with the nodes the actor may see; null if none. */
function visiblePart(rollout: RolloutView, actor: Actor): RolloutView | null {
  const nodes = rollout.nodes.filter((n) => canSeeNode(actor, n.node)).map((n) => ({ ...n }))
  return nodes.length > 0 ? { ...rollout, nodes } : null
}

export interface RolloutServiceOptions {
  nodes: NodeService
  staticPods: StaticPodService
  settledWrites: SettledWriteService
  audit: AuditService
  registry: RolloutRegistry
  clock: () => Date
  log: Logger
  /** The most nodes one request may address. */
  maxNodesPerRequest: number
}

/** Everything a rollout needs to know, checked. */
interface RolloutPlan {
  rollout: RolloutView
  nodes: NodeRecord[]
  text: string
  identity: PodIdentity
  actor: Actor
}

export class RolloutService {
  constructor(private readonly o: RolloutServiceOptions) {}

  list(query: { active?: boolean | null }, actor: Actor): RolloutView[] {
    authorize(actor, 'viewer')
    return this.o.registry.list(query, actor)
  }

  get(id: string, actor: Actor): RolloutView | null {
    authorize(actor, 'viewer')
    return this.o.registry.get(id, actor)
  }

  /**
   * Operator. Nothing is written unless every node is known, allowed to the
   * actor, and the manifest is valid for each of them (the mirror pod name
   * <name>-<node> must be valid on every node).
   */
  apply(input: ApplyToNodesInput, actor: Actor): Promise<ApplyToNodesResult> {
    const dryRun = input.dryRun ?? false
    return this.o.audit.runMutation<ApplyToNodesResult>(
      { action: AUDIT_ACTION, actor, requires: 'operator', node: null, dryRun },
      async (audit) => {
        const settings = rolloutSettings(input)
        const nodes = await this.targetNodes(input, actor)
        const { text, identity } = validateForEveryNode(input.manifest, nodes)
        const hash = sha256Hex(Buffer.from(text, 'utf8'))
        audit.target = `${identity.namespace}/${identity.name}`
        audit.toHash = hash
        const rollout: RolloutView = {
          id: randomUUID(),
          actor: actor.name,
          target: audit.target,
          hash,
          ...settings,
          dryRun,
          state: 'RUNNING',
          startedAt: this.now(),
          finishedAt: null,
          nodes: nodes.map((n) => ({ node: n.name, phase: 'PENDING', status: null, error: null, message: null, startedAt: null, finishedAt: null })),
        }
        this.o.registry.add(rollout)
        const plan: RolloutPlan = { rollout, nodes, text, identity, actor }
        this.step(rollout, null, `started: ${audit.target} (sha256 ${hash}) on ${nodes.length} nodes, ${describeSettings(rollout)}`)
        let results: NodeApplyResult[]
        try {
          results = dryRun ? await this.compare(plan) : await this.roll(plan)
        } finally {
          this.o.registry.finish(rollout, this.now())
        }
        audit.message = `rollout ${rollout.id} ${rollout.state}: ${summary(results)}`
        this.step(rollout, null, `finished ${rollout.state}: ${summary(results)}`)
        return { rolloutId: rollout.id, results, userErrors: [] }
      },
      (userErrors) => ({ rolloutId: null, results: [], userErrors }),
    )
  }

  // ------------------------------------------------------------------ per node

  /** Dry run: each node compared (WOULD_APPLY or UNCHANGED, with the diff); nothing written. */
  private compare(plan: RolloutPlan): Promise<NodeApplyResult[]> {
    return mapWithConcurrency(plan.nodes, DRY_RUN_CONCURRENCY, async (node) =>
      this.onNode(plan, node, async () => {
        const put = await this.put(plan, node, true)
        const error = put.userErrors[0]
        if (error) return { status: 'FAILED', staticPod: null, error, diff: null }
        return { status: put.changed ? 'WOULD_APPLY' : 'UNCHANGED', staticPod: put.staticPod, error: null, diff: put.diff }
      }),
    )
  }

  /** ROLLING stops starting nodes at the first failure (later ones SKIPPED); ALL_AT_ONCE carries on. */
  private async roll(plan: RolloutPlan): Promise<NodeApplyResult[]> {
    const { rollout } = plan
    const rolling = rollout.strategy === 'ROLLING'
    let stoppedAt: string | null = null
    return mapWithConcurrency(plan.nodes, rolling ? rollout.maxUnavailable : ALL_AT_ONCE_CONCURRENCY, async (node) => {
      if (stoppedAt !== null) {
        const why = `skipped: the rollout stopped at node ${stoppedAt}`
        this.finishNode(rollout, node.name, { status: 'SKIPPED', error: null }, why)
        return { node: node.name, status: 'SKIPPED', staticPod: null, error: null, diff: null }
      }
      const result = await this.onNode(plan, node, () => this.applyOne(plan, node))
      if (rolling && (result.status === 'FAILED' || result.status === 'ROLLED_BACK')) stoppedAt ??= node.name
      return result
    })
  }

  /** Write (upsert), then, with a timeout, wait for the new pod and roll back if it does not come up. */
  private async applyOne(plan: RolloutPlan, node: NodeRecord): Promise<Omit<NodeApplyResult, 'node'>> {
    const { rollout, identity } = plan
    const { result: put, settled } = await this.o.settledWrites.writeAndSettle({
      node,
      pod: identity,
      write: async () => {
        const written = await this.put(plan, node, false)
        if (written.changed && written.staticPod) this.step(rollout, node.name, `written (sha256 ${written.staticPod.hash}, revision ${written.staticPod.revision})`)
        return written
      },
      timeoutSeconds: rollout.readyTimeoutSeconds,
      autoRollback: rollout.autoRollback,
      actor: plan.actor,
      action: AUDIT_ACTION,
      context: `rollout ${rollout.id}`,
      onProgress: (phase, detail) => this.progress(rollout, node.name, phase, detail),
    })
    const error = put.userErrors[0]
    if (error) return { status: 'FAILED', staticPod: null, error, diff: null }
    if (!put.changed || !put.staticPod) return { status: 'UNCHANGED', staticPod: put.staticPod, error: null, diff: put.diff }
    if (!settled || settled.status === 'READY') return { status: 'APPLIED', staticPod: settled?.staticPod ?? put.staticPod, error: null, diff: put.diff }
    return { status: settled.status, staticPod: settled.staticPod, error: settled.error, diff: put.diff }
  }

  /** The static pod service's upsert (REST PUT), audited per node under this mutation's name. */
  private put(plan: RolloutPlan, node: NodeRecord, dryRun: boolean) {
    const { identity, text, actor } = plan
    return this.o.staticPods.putStaticPod(
      { node: node.name, namespace: identity.namespace, name: identity.name, manifest: text, dryRun, auditAction: AUDIT_ACTION },
      actor,
    )
  }

  /** Runs one node's step and records its progress; a failure of one node is data, never an exception. */
  private async onNode(plan: RolloutPlan, node: NodeRecord, fn: () => Promise<Omit<NodeApplyResult, 'node'>>): Promise<NodeApplyResult> {
    const { rollout } = plan
    const entry = entryOf(rollout, node.name)
    entry.phase = 'WRITING'
    entry.startedAt = this.now()
    let result: Omit<NodeApplyResult, 'node'>
    try {
      result = await fn()
    } catch (err) {
      if (!isServiceError(err)) this.o.log.error({ err, rollout: rollout.id, node: node.name }, 'rollout step failed unexpectedly')
      const error = isServiceError(err) ? toUserError(err) : { code: 'WRITE_FAILED' as const, message: `node ${node.name}: unexpected error (see the service log)`, field: null }
      result = { status: 'FAILED', staticPod: null, error, diff: null }
    }
    this.finishNode(rollout, node.name, result, result.error?.message ?? null)
    return { node: node.name, ...result }
  }

  private progress(rollout: RolloutView, node: string, phase: RolloutNodePhase, detail: string): void {
    const entry = entryOf(rollout, node)
    if (entry.phase !== phase) this.step(rollout, node, `${phase}: ${detail}`)
    entry.phase = phase
    entry.message = detail
  }

  private finishNode(rollout: RolloutView, node: string, result: Pick<NodeApplyResult, 'status' | 'error'>, message: string | null): void {
    const entry = entryOf(rollout, node)
    Object.assign(entry, { phase: 'DONE', status: result.status, error: result.error, message, finishedAt: this.now() })
    this.step(rollout, node, `${result.status}${message ? `: ${message}` : ''}`)
  }

  /** Every step of a rollout is a log line. */
  private step(rollout: RolloutView, node: string | null, what: string): void {
    this.o.log.info({ rollout: rollout.id, target: rollout.target, node }, `rollout ${rollout.id}${node ? ` node ${node}` : ''}: ${what}`)
  }

  // ------------------------------------------------------------------ which nodes

  /** Exactly one of nodes (in the order given) and labelSelector (by name); FORBIDDEN when the actor may not use one of them. */
  private async targetNodes(input: ApplyToNodesInput, actor: Actor): Promise<NodeRecord[]> {
    const byName = input.nodes !== undefined && input.nodes !== null
    const bySelector = input.labelSelector !== undefined && input.labelSelector !== null
    if (byName === bySelector) {
      throw new ServiceError('VALIDATION_FAILED', 'give either nodes (names) or labelSelector, not both and not neither', [byName ? 'labelSelector' : 'nodes'])
    }
    const nodes = byName ? await this.namedNodes(input.nodes as string[], actor) : await this.o.nodes.list(actor, input.labelSelector)
    if (nodes.length === 0) {
      throw new ServiceError('NOT_FOUND', `labelSelector ${quoteInput(input.labelSelector ?? '')} matches no registered node you may use; nothing was changed`, ['labelSelector'])
    }
    if (nodes.length > this.o.maxNodesPerRequest) {
      throw new ServiceError(
        'VALIDATION_FAILED',
        `this rollout addresses ${nodes.length} nodes; at most ${this.o.maxNodesPerRequest} are allowed at once (MAX_NODES_PER_REQUEST)`,
        [byName ? 'nodes' : 'labelSelector'],
      )
    }
    return nodes
  }

  private async namedNodes(names: string[], actor: Actor): Promise<NodeRecord[]> {
    if (names.length === 0) throw new ServiceError('VALIDATION_FAILED', 'nodes is empty: name at least one node', ['nodes'])
    const duplicate = names.findIndex((n, i) => names.indexOf(n) !== i)
    if (duplicate >= 0) throw new ServiceError('VALIDATION_FAILED', `node ${names[duplicate]} is listed twice`, ['nodes', String(duplicate)])
    const forbidden = names.filter((n) => !canSeeNode(actor, n))
    if (forbidden.length > 0) {
      throw new ServiceError('FORBIDDEN', `${actor.name} may not use nodes ${forbidden.join(', ')}; nothing was changed`, ['nodes'])
    }
    const registered = new Map((await this.o.nodes.list(actor)).map((n) => [n.name, n]))
    const missing = names.findIndex((n) => !registered.has(n))
    if (missing >= 0) {
      throw new ServiceError('NOT_FOUND', `no node named ${quoteInput(names[missing] ?? '')} is registered; nothing was changed`, ['nodes', String(missing)])
    }
    return names.map((n) => registered.get(n) as NodeRecord)
  }

  private now(): string {
    return this.o.clock().toISOString()
  }
}

// ------------------------------------------------------------------ rules

function rolloutSettings(input: ApplyToNodesInput): Pick<RolloutView, 'strategy' | 'maxUnavailable' | 'readyTimeoutSeconds' | 'autoRollback'> {
  const maxUnavailable = input.maxUnavailable ?? 1
  if (!Number.isInteger(maxUnavailable) || maxUnavailable < 1) {
    throw new ServiceError('VALIDATION_FAILED', `maxUnavailable must be at least 1; got ${maxUnavailable}`, ['maxUnavailable'])
  }
  return {
    strategy: input.strategy ?? 'ROLLING',
    maxUnavailable,
    readyTimeoutSeconds: readyTimeoutOf(input.readyTimeoutSeconds),
    autoRollback: input.autoRollback ?? true,
  }
}

/**
 * Parsed once; validated for each node, since the kubelet names the pod
 * <name>-<node> and that name must be valid on every node.
 */
function validateForEveryNode(manifest: string, nodes: NodeRecord[]): { text: string; identity: PodIdentity } {
  const parsed = parseManifest(manifest)
  let identity: PodIdentity | null = null
  for (const node of nodes) identity = validateStaticPod(parsed.object, { nodeName: node.name })
  return { text: parsed.text, identity: identity as PodIdentity }
}

function entryOf(rollout: RolloutView, node: string): RolloutNodeView {
  const entry = rollout.nodes.find((n) => n.node === node)
  if (!entry) throw new Error(`unreachable: node ${node} is not in rollout ${rollout.id}`)
  return entry
}

function describeSettings(r: RolloutView): string {
  const how = r.strategy === 'ROLLING' ? `ROLLING ${r.maxUnavailable} at a time` : 'ALL_AT_ONCE'
  const wait = r.readyTimeoutSeconds > 0 ? `waiting up to ${r.readyTimeoutSeconds} s for readiness${r.autoRollback ? ', rolling back on failure' : ''}` : 'not waiting for readiness'
  return `${how}, ${wait}${r.dryRun ? ' (dry run)' : ''}`
}

function summary(results: NodeApplyResult[]): string {
  const counts = new Map<ApplyStatus, number>()
  for (const r of results) counts.set(r.status, (counts.get(r.status) ?? 0) + 1)
  return [...counts].map(([status, n]) => `${n} ${status}`).join(', ') || 'no nodes'
}
