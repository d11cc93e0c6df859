// Fleet operations, one engine for two kinds of work: one manifest applied to
// many nodes (applyStaticPodToNodes: the upsert of REST PUT on each), and each
// node's own manifest changed in place (patchStaticPodOnNodes: patchStaticPod
// on each, compared on every node before any is written). ROLLING
// (maxUnavailable nodes at a time, stopping at the first node that fails) or
// ALL_AT_ONCE, unless the quorum guard slows it down (etcd: one at a time;
// control plane: maxUnavailable at a time). Each node goes through the static
// pod service's own write path (lock, compare, back up, write, read back,
// record) and then through the readiness wait and rollback that
// updateStaticPod(waitForReady) uses too. Nothing here writes to a node itself.
//
// Every rollout gets an id; its per-node progress is kept in memory
// (RolloutRegistry) for the rollouts/rollout queries while it runs and for a
// while after. Every step is a log line, and the writes, waits and rollbacks
// are audit events, as is the rollout as a whole.

import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { errorText, isServiceError, quoteInput, ServiceError, toUserError, type UserError } from '../errors.ts'
import { sha256Hex } from '../manifest/hash.ts'
import { parseManifest } from '../manifest/parse.ts'
import { validateStaticPod, type PodIdentity } from '../manifest/validate.ts'
import { changeHash, checkChange, isEtcdPod, type ManifestChange } from '../manifest/change.ts'
import type { NewEvent, NodeRecord } from '../domain.ts'
import { authorize, canSeeNode, type Actor } from './actor.ts'
import type { AuditDraft, AuditService } from './audit.ts'
import { mapWithConcurrency } from '../concurrency.ts'
import type { NodeService } from './nodes.ts'
import { DEFAULT_READY_TIMEOUT_SECONDS, readyTimeoutOf } from './readiness-signals.ts'
import type { SettledWriteService } from './settled-write.ts'
import type { StaticPodResult, StaticPodService } from './static-pods.ts'
import type { StaticPodView } from './static-pod-view.ts'
import { withLazyProperty } from '../lazy-property.ts'

type RolloutStrategy = 'ROLLING' | 'ALL_AT_ONCE'
type ApplyStatus = 'APPLIED' | 'UNCHANGED' | 'FAILED' | 'SKIPPED' | 'WOULD_APPLY' | 'ROLLED_BACK'
export type RolloutNodePhase = 'PENDING' | 'WRITING' | 'WAITING_FOR_READY' | 'ROLLING_BACK' | 'DONE'
type RolloutState = 'RUNNING' | 'SUCCEEDED' | 'FAILED'
type RolloutKind = 'APPLY' | 'PATCH'

interface RolloutSettingsInput {
  nodes?: string[] | null | undefined
  labelSelector?: string | null | undefined
  strategy?: RolloutStrategy | null | undefined
  maxUnavailable?: number | null | undefined
  readyTimeoutSeconds?: number | null | undefined
  autoRollback?: boolean | null | undefined
  dryRun?: boolean | null | undefined
}

export interface ApplyToNodesInput extends RolloutSettingsInput {
  manifest: string
}

export interface PatchOnNodesInput extends RolloutSettingsInput {
  namespace?: string | null | undefined
  name: string
  change: ManifestChange
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
  /** APPLY: one manifest on every node; PATCH: each node's own manifest changed. */
  kind: RolloutKind
  actor: string
  /** namespace/name of the static pod. */
  target: string
  /** SHA-256 of the manifest applied (APPLY), or of the change as given (PATCH: manifest/change.ts changeHash). */
  hash: string
  strategy: RolloutStrategy
  maxUnavailable: number
  readyTimeoutSeconds: number
  autoRollback: boolean
  dryRun: boolean
  state: RolloutState
  startedAt: string
  finishedAt: string | null
  /** The rollout's own steps: started, the quorum guard's pace, finished. */
  messages: string[]
  nodes: RolloutNodeView[]
}

/** ALL_AT_ONCE writes this many nodes at a time: each has its own pooled SSH connection. */
const ALL_AT_ONCE_CONCURRENCY = 64
/** Dry runs compare this many nodes at a time, whatever the strategy: they change nothing. */
const DRY_RUN_CONCURRENCY = 32
/** A rollout keeps at most this many of its own messages (the log has all). */
const MAX_ROLLOUT_MESSAGES = 200
const APPLY_ACTION = 'applyStaticPodToNodes'
const PATCH_ACTION = 'patchStaticPodOnNodes'
/** The node labels kubeadm (and older clusters) put on control-plane nodes. */
const CONTROL_PLANE_NODE_LABELS = ['node-role.kubernetes.io/control-plane', 'node-role.kubernetes.io/master']

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
  return nodes.length > 0 ? { ...rollout, messages: [...rollout.messages], nodes } : null
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
  /** Where ROLLOUT_STARTED and ROLLOUT_FINISHED go (the event service). */
  events?: { append(events: readonly NewEvent[]): Promise<unknown> } | undefined
}

/**
 * What a rollout writes on each node: one manifest on all of them (apply), or
 * each node's own manifest changed (patch). Everything else (pace, waits,
 * rollbacks, progress, audit) is the one engine's.
 */
interface RolloutWork {
  kind: RolloutKind
  /** The mutation the per-node writes and waits are audited under. */
  action: string
  /** The pod on that node, known before its write (the wait's baseline needs it). */
  podOn(node: NodeRecord): { namespace: string; name: string }
  /** The write on one node through the static pod service (dryRun: compared only). */
  write(node: NodeRecord, dryRun: boolean): Promise<StaticPodResult>
}

/** How fast a rollout may go: the strategy, unless the pod's role asks for care (the quorum guard). */
interface Pace {
  concurrency: number
  /** ROLLING, and every guarded rollout: no node is started after one failed. */
  stopAtFirstFailure: boolean
  readyTimeoutSeconds: number
  /** Why the pace is not what strategy and maxUnavailable say; null when it is. */
  guard: string | null
}

/** Everything a rollout needs to know, checked. */
interface RolloutPlan {
  rollout: RolloutView
  nodes: NodeRecord[]
  work: RolloutWork
  pace: Pace
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
      { action: APPLY_ACTION, actor, requires: 'operator', node: null, dryRun },
      async (audit) => {
        const settings = rolloutSettings(input)
        const nodes = await this.targetNodes(input, actor)
        const { text, identity, pod } = validateForEveryNode(input.manifest, nodes)
        const hash = sha256Hex(Buffer.from(text, 'utf8'))
        audit.target = `${identity.namespace}/${identity.name}`
        audit.toHash = hash
        const work: RolloutWork = {
          kind: 'APPLY',
          action: APPLY_ACTION,
          podOn: () => identity,
          write: (node, dry) =>
            this.o.staticPods.putStaticPod(
              { node: node.name, namespace: identity.namespace, name: identity.name, manifest: text, dryRun: dry, auditAction: APPLY_ACTION },
              actor,
            ),
        }
        const rollout = this.start(work, audit.target, hash, settings, dryRun, nodes, actor)
        const pace = paceOf(settings, nodes, [pod])
        return this.run(audit, { rollout, nodes, work, pace, actor }, () => (dryRun ? this.compare(work, nodes, rollout) : this.roll({ rollout, nodes, work, pace, actor })))
      },
      (userErrors) => ({ rolloutId: null, results: [], userErrors }),
    )
  }

  /**
   * Operator. Each node's own manifest changed (patchStaticPod on every node):
   * first compared on every node (each node's diff, every result validated);
   * nothing is written anywhere when the change makes an invalid static pod
   * on any node. Then rolled out like apply, each node written only if its
   * manifest is still the one its diff was made from (expectedHash).
   */
  patch(input: PatchOnNodesInput, actor: Actor): Promise<ApplyToNodesResult> {
    const dryRun = input.dryRun ?? false
    return this.o.audit.runMutation<ApplyToNodesResult>(
      { action: PATCH_ACTION, actor, requires: 'operator', node: null, dryRun },
      async (audit) => {
        const settings = rolloutSettings(input)
        checkChange(input.change)
        const nodes = await this.targetNodes(input, actor)
        const hash = changeHash(input.change)
        audit.target = `${input.namespace ?? '*'}/${input.name}`
        audit.toHash = hash
        // The base each node's diff is made from; a node is written only while it still has it.
        const planned = new Map<string, { base: string; namespace: string }>()
        const work: RolloutWork = {
          kind: 'PATCH',
          action: PATCH_ACTION,
          podOn: (node) => ({ namespace: planned.get(node.name)?.namespace ?? input.namespace ?? 'default', name: input.name }),
          write: (node, dry) =>
            this.o.staticPods.patchStaticPod(
              {
                node: node.name,
                namespace: input.namespace ?? planned.get(node.name)?.namespace ?? null,
                name: input.name,
                change: input.change,
                expectedHash: planned.get(node.name)?.base ?? null,
                dryRun: dry,
                auditAction: PATCH_ACTION,
              },
              actor,
            ),
        }
        const comparisons = await this.compareAll(work, nodes)
        refuseInvalidResults(comparisons)
        for (const { node, result } of comparisons) {
          if (result.staticPod && result.previousHash) planned.set(node.name, { base: result.previousHash, namespace: result.staticPod.namespace })
        }
        const first = comparisons.find((c) => c.result.staticPod)?.result.staticPod
        if (first) audit.target = `${first.namespace}/${first.name}`
        const rollout = this.start(work, audit.target, hash, settings, dryRun, nodes, actor)
        const pods = comparisons.flatMap((c) => (c.result.staticPod ? [c.result.staticPod.pod] : []))
        const pace = paceOf(settings, nodes, pods)
        return this.run(audit, { rollout, nodes, work, pace, actor }, async () => {
          const results = comparisons.map(({ node, result }) => this.recordComparison(rollout, node, result, dryRun))
          if (dryRun) return results
          // Nodes that could not be compared (no such pod, a failing test, unreachable) are FAILED already and never touched.
          const writable = comparisons.filter((c) => planned.has(c.node.name)).map((c) => c.node)
          const rolled = new Map((await this.roll({ rollout, nodes: writable, work, pace, actor })).map((r) => [r.node, r]))
          return results.map((r) => rolled.get(r.node) ?? r)
        })
      },
      (userErrors) => ({ rolloutId: null, results: [], userErrors }),
    )
  }

  // ------------------------------------------------------------------ one engine

  private start(work: RolloutWork, target: string, hash: string, settings: RolloutSettings, dryRun: boolean, nodes: NodeRecord[], actor: Actor): RolloutView {
    const rollout: RolloutView = {
      id: randomUUID(),
      kind: work.kind,
      actor: actor.name,
      target,
      hash,
      ...settings,
      dryRun,
      state: 'RUNNING',
      startedAt: this.now(),
      finishedAt: null,
      messages: [],
      nodes: nodes.map((n) => ({ node: n.name, phase: 'PENDING', status: null, error: null, message: null, startedAt: null, finishedAt: null })),
    }
    this.o.registry.add(rollout)
    return rollout
  }

  private async run(audit: AuditDraft, plan: RolloutPlan, body: () => Promise<NodeApplyResult[]>): Promise<ApplyToNodesResult> {
    const { rollout, pace } = plan
    if (!rollout.dryRun) rollout.readyTimeoutSeconds = pace.readyTimeoutSeconds
    this.step(rollout, null, `started: ${rollout.target} (${rollout.kind === 'APPLY' ? 'manifest' : 'change'} sha256 ${rollout.hash}) on ${plan.nodes.length} nodes, ${describeSettings(rollout)}`)
    if (pace.guard && !rollout.dryRun) this.step(rollout, null, pace.guard)
    await this.announce(rollout, 'ROLLOUT_STARTED')
    let results: NodeApplyResult[]
    try {
      results = await body()
    } finally {
      this.o.registry.finish(rollout, this.now())
    }
    audit.message = `rollout ${rollout.id} ${rollout.state}: ${summary(results)}`
    this.step(rollout, null, `finished ${rollout.state}: ${summary(results)}`)
    await this.announce(rollout, 'ROLLOUT_FINISHED')
    return { rolloutId: rollout.id, results, userErrors: [] }
  }

  /**
   * One event per node of a rollout that writes (a dry run changes nothing):
   * a subscriber or webhook limited to some nodes hears of the rollouts on
   * those. Best effort: a store that fails here must not fail the rollout.
   */
  private async announce(rollout: RolloutView, type: 'ROLLOUT_STARTED' | 'ROLLOUT_FINISHED'): Promise<void> {
    if (rollout.dryRun || !this.o.events) return
    const [namespace = null, name = null] = rollout.target.split('/')
    const at = this.now()
    const events: NewEvent[] = rollout.nodes.map((n) => ({
      at,
      type,
      node: n.node,
      namespace,
      name,
      message:
        type === 'ROLLOUT_STARTED'
          ? `rollout ${rollout.id} (${rollout.kind}) of ${rollout.target} started by ${rollout.actor} on ${rollout.nodes.length} nodes`
          : `rollout ${rollout.id} of ${rollout.target} ${rollout.state}; on this node: ${n.status ?? n.phase}${n.error ? ` (${n.error.code}: ${n.error.message})` : ''}`.slice(0, 500),
      fromHash: null,
      toHash: rollout.kind === 'APPLY' ? rollout.hash : null,
      actor: rollout.actor,
    }))
    await this.o.events.append(events).catch((err: unknown) => this.o.log.warn({ err: errorText(err), rollout: rollout.id }, 'rollout events could not be stored'))
  }

  /**
   * The rollout as it progresses, as seen by the actor: its state now, then
   * each change (polled: the engine changes the record in place), ending with
   * its last state. NOT_FOUND when this instance holds no such rollout.
   */
  async *watch(id: string, actor: Actor, pollMs = 250): AsyncGenerator<RolloutView> {
    let last = ''
    for (;;) {
      const rollout = this.o.registry.get(id, actor)
      if (!rollout) {
        if (last === '') throw new ServiceError('NOT_FOUND', `no rollout ${quoteInput(id)} on this instance (rollouts are held by the instance that runs them; see the rollouts query)`, ['id'])
        return
      }
      const shown = JSON.stringify(rollout)
      if (shown !== last) {
        last = shown
        yield rollout
      }
      if (rollout.finishedAt !== null) return
      await new Promise((resolve) => setTimeout(resolve, pollMs).unref())
    }
  }

  /** Dry run of apply: each node compared (WOULD_APPLY or UNCHANGED, with the diff); nothing written. */
  private async compare(work: RolloutWork, nodes: NodeRecord[], rollout: RolloutView): Promise<NodeApplyResult[]> {
    return (await this.compareAll(work, nodes)).map(({ node, result }) => this.recordComparison(rollout, node, result, true))
  }

  private compareAll(work: RolloutWork, nodes: NodeRecord[]): Promise<Array<{ node: NodeRecord; result: StaticPodResult }>> {
    return mapWithConcurrency(nodes, DRY_RUN_CONCURRENCY, async (node) => ({ node, result: await work.write(node, true) }))
  }

  /** A node's comparison as a result: FAILED (done), or, for a dry run, WOULD_APPLY / UNCHANGED (done). */
  private recordComparison(rollout: RolloutView, node: NodeRecord, compared: StaticPodResult, dryRun: boolean): NodeApplyResult {
    const error = compared.userErrors[0]
    const result: NodeApplyResult = error
      ? { node: node.name, status: 'FAILED', staticPod: null, error, diff: null }
      : withDiffOf(compared, { node: node.name, status: compared.changed ? 'WOULD_APPLY' : 'UNCHANGED', staticPod: compared.staticPod, error: null })
    if (error || dryRun) this.finishNode(rollout, node.name, result, error?.message ?? null)
    return result
  }

  /** The pace's concurrency; stopping at the first failure where the pace says so (later nodes SKIPPED). */
  private async roll(plan: RolloutPlan): Promise<NodeApplyResult[]> {
    const { rollout, pace } = plan
    let stoppedAt: string | null = null
    return mapWithConcurrency(plan.nodes, pace.concurrency, async (node) => {
      if (stoppedAt !== null) {
        const why = `skipped: the rollout stopped at node ${stoppedAt}`
        this.finishNode(rollout, node.name, { status: 'SKIPPED', error: null }, why)
        return { node: node.name, status: 'SKIPPED', staticPod: null, error: null, diff: null }
      }
      const result = await this.onNode(plan, node, () => this.applyOne(plan, node))
      if (pace.stopAtFirstFailure && (result.status === 'FAILED' || result.status === 'ROLLED_BACK')) stoppedAt ??= node.name
      return result
    })
  }

  /** Write, then, with a timeout, wait for the new pod and roll back if it does not come up. */
  private async applyOne(plan: RolloutPlan, node: NodeRecord): Promise<Omit<NodeApplyResult, 'node'>> {
    const { rollout, work, pace } = plan
    const { result: put, settled } = await this.o.settledWrites.writeAndSettle({
      node,
      pod: work.podOn(node),
      write: async () => {
        const written = await work.write(node, false)
        if (written.changed && written.staticPod) this.step(rollout, node.name, `written (sha256 ${written.staticPod.hash}, revision ${written.staticPod.revision})`)
        return written
      },
      timeoutSeconds: pace.readyTimeoutSeconds,
      autoRollback: rollout.autoRollback,
      actor: plan.actor,
      action: work.action,
      context: `rollout ${rollout.id}`,
      onProgress: (phase, detail) => this.progress(rollout, node.name, phase, detail),
    })
    const error = put.userErrors[0]
    if (error) return { status: 'FAILED', staticPod: null, error, diff: null }
    if (!put.changed || !put.staticPod) return withDiffOf(put, { status: 'UNCHANGED', staticPod: put.staticPod, error: null })
    if (!settled || settled.status === 'READY') return withDiffOf(put, { status: 'APPLIED', staticPod: settled?.staticPod ?? put.staticPod, error: null })
    return withDiffOf(put, { status: settled.status, staticPod: settled.staticPod, error: settled.error })
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
    // Assigned, not spread: a spread would read (and so make) the lazy diff.
    return Object.assign(result, { node: node.name })
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

  /** Every step of a rollout is a log line; the rollout's own (not a node's) are its messages too. */
  private step(rollout: RolloutView, node: string | null, what: string): void {
    this.o.log.info({ rollout: rollout.id, target: rollout.target, node }, `rollout ${rollout.id}${node ? ` node ${node}` : ''}: ${what}`)
    if (node === null && rollout.messages.length < MAX_ROLLOUT_MESSAGES) rollout.messages.push(what)
  }

  // ------------------------------------------------------------------ which nodes

  /** Exactly one of nodes (in the order given) and labelSelector (by name); FORBIDDEN when the actor may not use one of them. */
  private async targetNodes(input: RolloutSettingsInput, actor: Actor): Promise<NodeRecord[]> {
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

type RolloutSettings = Pick<RolloutView, 'strategy' | 'maxUnavailable' | 'readyTimeoutSeconds' | 'autoRollback'>

function rolloutSettings(input: RolloutSettingsInput): RolloutSettings {
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
function validateForEveryNode(manifest: string, nodes: NodeRecord[]): { text: string; identity: PodIdentity; pod: Record<string, unknown> } {
  const parsed = parseManifest(manifest)
  let identity: PodIdentity | null = null
  for (const node of nodes) identity = validateStaticPod(parsed.object, { nodeName: node.name })
  return { text: parsed.text, identity: identity as PodIdentity, pod: parsed.object }
}

/**
 * The quorum guard. etcd members go one node at a time, each waiting to run
 * ready before the next: two members down at once loses a three-member
 * cluster. A rollout over control-plane nodes (labelled so in their records,
 * as kubeadm labels them) goes at most maxUnavailable nodes at a time, each
 * waiting, so that no more than that many of them are not ready at once. Both
 * stop at the first failure, whatever the strategy; a wait of 0 s becomes the
 * default wait, since not waiting would make the bound meaningless. Nodes not
 * labelled control-plane keep the strategy asked for, whatever the pod.
 */
function paceOf(settings: RolloutSettings, nodes: NodeRecord[], pods: Array<Record<string, unknown>>): Pace {
  const wait = settings.readyTimeoutSeconds > 0 ? settings.readyTimeoutSeconds : DEFAULT_READY_TIMEOUT_SECONDS
  const waitNote = settings.readyTimeoutSeconds > 0 ? '' : ` (readyTimeoutSeconds 0 became ${wait} s: the guard needs each node to run ready)`
  const asked = settings.strategy === 'ROLLING' ? `ROLLING with maxUnavailable ${settings.maxUnavailable}` : 'ALL_AT_ONCE'
  if (pods.some(isEtcdPod)) {
    return {
      concurrency: 1,
      stopAtFirstFailure: true,
      readyTimeoutSeconds: wait,
      guard: `quorum guard: this changes etcd members, so one node at a time, each waiting to run ready before the next, stopping at the first failure (${asked} was asked)${waitNote}`,
    }
  }
  const controlPlaneNodes = nodes.some((n) => n.labels.some((l) => CONTROL_PLANE_NODE_LABELS.includes(l.key)))
  if (controlPlaneNodes) {
    return {
      concurrency: settings.maxUnavailable,
      stopAtFirstFailure: true,
      readyTimeoutSeconds: wait,
      guard: `control-plane guard: these are control-plane nodes, so at most ${settings.maxUnavailable} node(s) at a time (maxUnavailable), each waiting to run ready, stopping at the first failure (${asked} was asked)${waitNote}`,
    }
  }
  const rolling = settings.strategy === 'ROLLING'
  return { concurrency: rolling ? settings.maxUnavailable : ALL_AT_ONCE_CONCURRENCY, stopAtFirstFailure: rolling, readyTimeoutSeconds: settings.readyTimeoutSeconds, guard: null }
}

/** A change that makes an invalid static pod on any node is refused before anything is written, naming each such node. */
function refuseInvalidResults(comparisons: Array<{ node: NodeRecord; result: StaticPodResult }>): void {
  const invalid = comparisons.flatMap(({ node, result }) => result.userErrors.filter((e) => e.code === 'VALIDATION_FAILED').slice(0, 1).map((e) => ({ node: node.name, error: e })))
  const first = invalid[0]
  if (!first) return
  const others = invalid.length > 1 ? ` (also invalid on ${invalid.slice(1).map((i) => i.node).join(', ')})` : ''
  throw new ServiceError('VALIDATION_FAILED', `node ${first.node}: ${first.error.message}${others}; nothing was written on any node`, first.error.field ?? undefined)
}

/** The result with the write's diff, still made only when read. */
function withDiffOf<T extends object>(written: StaticPodResult, result: T): T & { diff: string | null } {
  return withLazyProperty(result, 'diff', () => written.diff)
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
