// The one write-then-wait path: baseline, write, wait for the new pod to run
// ready, and roll back when it does not. updateStaticPod(waitForReady) and
// every node of applyStaticPodToNodes go through it, so that an update and a
// rollout judge a node alike; the write and the rollback are the static pod
// service's own write path (locked, compared, backed up, audited), and the
// wait's outcome is an audit event of its own.

import type { Logger } from 'pino'
import type { NodeRecord } from '../domain.ts'
import type { UserError } from '../errors.ts'
import { parseManifest } from '../manifest/parse.ts'
import { podIdentityOf } from '../manifest/pod-fields.ts'
import { podKeyString } from '../domain.ts'
import { hasRole, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { NodeService } from './nodes.ts'
import type { ReadinessService } from './readiness.ts'
import { readyTimeoutOf } from './readiness-signals.ts'
import type { StaticPodView } from './static-pod-view.ts'
import type { PatchInput, StaticPodResult, StaticPodService, UpdateInput } from './static-pods.ts'

type SettlePhase = 'WAITING_FOR_READY' | 'ROLLING_BACK'

export interface SettledWriteRequest {
  node: NodeRecord
  /** The pod the write is of. */
  pod: { namespace: string; name: string }
  /** The write itself, through the static pod service (which audits it). */
  write: () => Promise<StaticPodResult>
  /** 0: write and do not wait. */
  timeoutSeconds: number
  autoRollback: boolean
  actor: Actor
  /** The mutation the wait belongs to, recorded as the action of its audit event. */
  action: string
  /** Says which rollout a log line or audit message is about, e.g. "rollout 0f3c…". */
  context?: string
  /** Told when the node starts waiting or rolling back, and of each poll's answer. */
  onProgress?: (phase: SettlePhase, detail: string) => void
}

/** What the wait came to; null when there was nothing to wait for (not written, unchanged, no timeout). */
export type SettleOutcome =
  | { status: 'READY'; staticPod: StaticPodView; detail: string }
  | { status: 'FAILED' | 'ROLLED_BACK'; staticPod: StaticPodView | null; error: UserError }

export interface SettledWriteOptions {
  staticPods: StaticPodService
  nodes: NodeService
  readiness: ReadinessService
  audit: AuditService
  log: Logger
}

export class SettledWriteService {
  constructor(private readonly o: SettledWriteOptions) {}

  /** updateStaticPod: with waitForReady (and not a dry run), the update settled; else the plain update. */
  async updateStaticPod(input: UpdateInput, actor: Actor): Promise<StaticPodResult> {
    const target = input.waitForReady && !input.dryRun ? await this.waitTarget(input, actor, (node) => podOfManifest(input.manifest, node)) : null
    return this.settle(input, actor, 'updateStaticPod', target, () => this.o.staticPods.updateStaticPod(input, actor))
  }

  /** patchStaticPod: as updateStaticPod, for a change applied to the node's manifest. */
  async patchStaticPod(input: PatchInput & SettleInput, actor: Actor): Promise<StaticPodResult> {
    const target = input.waitForReady && !input.dryRun ? await this.waitTarget(input, actor, (node) => this.podOnNode(node, input, actor)) : null
    return this.settle(input, actor, 'patchStaticPod', target, () => this.o.staticPods.patchStaticPod(input, actor))
  }

  private async settle(input: SettleInput, actor: Actor, action: string, target: WaitTarget | null, write: () => Promise<StaticPodResult>): Promise<StaticPodResult> {
    // Nothing to wait for, or a write that is going to be refused: the write itself says why, and audits it.
    if (!target) return write()
    const { result, settled } = await this.writeAndSettle({
      node: target.node,
      pod: target.pod,
      write,
      timeoutSeconds: target.timeoutSeconds,
      autoRollback: input.autoRollback ?? false,
      actor,
      action,
    })
    if (!settled || settled.status === 'READY') return result
    return { ...result, staticPod: settled.staticPod, rolledBack: settled.status === 'ROLLED_BACK', userErrors: [settled.error] }
  }

  /**
   * Baseline (what ran before), the write, and, when it changed the node and
   * there is a timeout, the wait and the rollback.
   */
  async writeAndSettle(req: SettledWriteRequest): Promise<{ result: StaticPodResult; settled: SettleOutcome | null }> {
    // Before the write: the new pod is told from the old one by its sandbox and mirror config hash.
    const baseline = req.timeoutSeconds > 0 ? await this.o.readiness.baseline(req.node, req.pod) : null
    const result = await req.write()
    if (!baseline || !result.changed || !result.staticPod || result.userErrors.length > 0) return { result, settled: null }
    const written = result.staticPod
    const { node } = req
    const target = `${written.namespace}/${written.name}`
    const prefix = req.context ? `${req.context}: ` : ''
    req.onProgress?.('WAITING_FOR_READY', `waiting up to ${req.timeoutSeconds} s for the new pod`)
    const verdict = await this.o.readiness.waitUntilReady(node, written, baseline, req.timeoutSeconds, (detail) => req.onProgress?.('WAITING_FOR_READY', detail))
    const seconds = (verdict.waitedMs / 1000).toFixed(1)
    const message = verdict.ready
      ? `${prefix}ready after ${seconds} s (${verdict.detail})`
      : verdict.crashLoop
        ? `${prefix}the new pod crash-loops after ${seconds} s: ${verdict.detail}`
        : `${prefix}the new pod was not ready within ${req.timeoutSeconds} s: ${verdict.detail}`
    await this.o.audit.record({
      actor: req.actor.name,
      action: req.action,
      node: node.name,
      target,
      fromHash: result.previousHash,
      toHash: written.hash,
      result: verdict.ready ? 'OK' : 'TIMEOUT',
      message,
      dryRun: false,
    })
    if (verdict.ready) return { result, settled: { status: 'READY', staticPod: written, detail: message } }

    const failure = `node ${node.name}: ${message.slice(prefix.length)}`
    if (!req.autoRollback) {
      return { result, settled: { status: 'FAILED', staticPod: written, error: { code: 'TIMEOUT', message: `${failure}; left in place (autoRollback is off)`, field: null } } }
    }
    req.onProgress?.('ROLLING_BACK', result.previousHash ? `writing back the previous manifest (sha256 ${result.previousHash})` : 'deleting the new manifest (there was none before)')
    this.o.log.info({ node: node.name, target, context: req.context }, `${prefix}rolling back on node ${node.name}`)
    const rollback = await this.rollBack(node, written, result.previousHash, req.actor)
    if (rollback.problem !== null) {
      return { result, settled: { status: 'FAILED', staticPod: written, error: { code: 'TIMEOUT', message: `${failure}; the rollback failed: ${rollback.problem}`, field: null } } }
    }
    const undone = result.previousHash ? `the previous manifest (sha256 ${result.previousHash}) was written back` : 'the new manifest was deleted (there was none before)'
    return { result, settled: { status: 'ROLLED_BACK', staticPod: rollback.staticPod, error: { code: 'TIMEOUT', message: `${failure}; ${undone}`, field: null } } }
  }

  /**
   * Only what this wait wrote is undone: a manifest changed since (expectedHash)
   * is left alone. The previous bytes come back as a ROLLBACK revision, byte
   * for byte; a pod that did not exist before is deleted.
   */
  private async rollBack(node: NodeRecord, written: StaticPodView, previousHash: string | null, actor: Actor): Promise<{ staticPod: StaticPodView | null; problem: string | null }> {
    const { staticPods } = this.o
    const ref = { node: node.name, namespace: written.namespace, name: written.name, expectedHash: written.hash }
    if (previousHash === null) {
      const deleted = await staticPods.deleteStaticPod(ref, actor)
      const error = deleted.userErrors[0]
      return { staticPod: null, problem: error ? `${error.code}: ${error.message}` : null }
    }
    const key = { node: node.name, namespace: written.namespace, name: written.name }
    const history = (await staticPods.histories([key], 20)).get(podKeyString(key)) ?? []
    const previous = history.find((r) => r.revision < written.revision && r.hash === previousHash && r.action !== 'DELETE')
    if (!previous) return { staticPod: null, problem: `the previous manifest (sha256 ${previousHash}) is not in the store's recent history` }
    const restored = await staticPods.rollbackStaticPod({ ...ref, revision: previous.revision }, actor)
    const error = restored.userErrors[0]
    if (error) return { staticPod: null, problem: `${error.code}: ${error.message}` }
    if (restored.staticPod?.hash !== previousHash) {
      return { staticPod: restored.staticPod, problem: `the node holds sha256 ${restored.staticPod?.hash ?? 'nothing'} after the rollback, not ${previousHash}` }
    }
    return { staticPod: restored.staticPod, problem: null }
  }

  /** What a write waits for; null when there is nothing to wait for, or the write is going to be refused. */
  private async waitTarget(
    input: SettleInput & { node: string },
    actor: Actor,
    podOf: (node: NodeRecord) => Promise<{ namespace: string; name: string } | null> | { namespace: string; name: string } | null,
  ): Promise<WaitTarget | null> {
    if (!hasRole(actor, 'operator')) return null
    const node = await this.o.nodes.require(input.node, actor).catch(() => null)
    if (!node) return null
    try {
      const timeoutSeconds = readyTimeoutOf(input.readyTimeoutSeconds)
      const pod = await podOf(node)
      return pod && timeoutSeconds > 0 ? { node, pod, timeoutSeconds } : null
    } catch {
      return null
    }
  }

  /** The pod a patch addresses: its namespace is the node's when not given. */
  private async podOnNode(node: NodeRecord, ref: { namespace?: string | null | undefined; name: string }, actor: Actor): Promise<{ namespace: string; name: string } | null> {
    if (ref.namespace) return { namespace: ref.namespace, name: ref.name }
    const { pod } = await this.o.staticPods.get({ node: node.name, name: ref.name }, actor)
    return pod && { namespace: pod.namespace, name: pod.name }
  }
}

interface SettleInput {
  dryRun?: boolean | null | undefined
  waitForReady?: boolean | null | undefined
  readyTimeoutSeconds?: number | null | undefined
  autoRollback?: boolean | null | undefined
}

interface WaitTarget {
  node: NodeRecord
  pod: { namespace: string; name: string }
  timeoutSeconds: number
}

function podOfManifest(manifest: string | Uint8Array, node: NodeRecord): { namespace: string; name: string } | null {
  const identity = podIdentityOf(parseManifest(manifest).object, node.name)
  return identity && { namespace: identity.namespace, name: identity.name }
}
