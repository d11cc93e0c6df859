// Static pods: every rule of reading and writing manifests lives here, and both
// GraphQL and REST call it. The write path is docs/architecture.md's, step by step:
// validate, lock, read, compare-and-swap, unchanged?, back up, write atomically,
// read back, record the revision and the audit event, unlock.

import { createTwoFilesPatch } from 'diff'
import type { NodeAgent } from '../agents/agent.ts'
import type { AgentProvider } from '../agents/registry.ts'
import { ServiceError, type UserError } from '../errors.ts'
import { sha256Hex } from '../manifest/hash.ts'
import type { DirEntry } from '../manifest/types.ts'
import { checkFileName, defaultFileName, mirrorPodName } from '../manifest/names.ts'
import { parseManifest } from '../manifest/parse.ts'
import { setRestartAnnotation } from '../manifest/restart.ts'
import { applyChange, checkChange, type CheckedChange, type ManifestChange } from '../manifest/change.ts'
import { editInPlace } from '../manifest/edit-in-place.ts'
import { validateStaticPod } from '../manifest/validate.ts'
import type { NodeObservation, NodeRecord, ObservedPod, PodKey, RevisionAction, RevisionRecord } from '../domain.ts'
import type { Store } from '../store/store.ts'
import { podKeyString } from '../domain.ts'
import { toView, viewsOfObservation, type StaticPodView } from './static-pod-view.ts'
import type { AuditDraft, AuditService } from './audit.ts'
import type { Actor } from './actor.ts'
import { maxAgeOf, observedPod, type NodeFailure, type NodeState, type NodeStateService } from './node-state.ts'
import type { NodeService } from './nodes.ts'
import { readyTimeoutOf } from './readiness-signals.ts'
import { withLazyProperty } from '../lazy-property.ts'

export interface StaticPodResult {
  staticPod: StaticPodView | null
  previousHash: string | null
  dryRun: boolean
  rolledBack: boolean
  changed: boolean
  diff: string | null
  userErrors: UserError[]
}

export interface DeleteResult {
  deleted: boolean
  previousHash: string | null
  dryRun: boolean
  userErrors: UserError[]
}

export interface PodRef {
  node: string
  namespace?: string | null | undefined
  name: string
  expectedHash?: string | null | undefined
  dryRun?: boolean | null | undefined
}

export interface CreateInput {
  node: string
  manifest: string | Uint8Array
  fileName?: string | null | undefined
  dryRun?: boolean | null | undefined
}

export interface UpdateInput extends PodRef {
  manifest: string | Uint8Array
  waitForReady?: boolean | null | undefined
  readyTimeoutSeconds?: number | null | undefined
  autoRollback?: boolean | null | undefined
}

export interface PutInput extends PodRef {
  namespace: string
  manifest: string | Uint8Array
  /** Only create: ALREADY_EXISTS when the node has the pod (If-None-Match: *). */
  mustNotExist?: boolean
  /** Only replace: CONFLICT when the node does not have the pod (If-Match: *). */
  mustExist?: boolean
  /** The mutation its audit event is recorded under (default putStaticPod): a rollout's per-node writes are applyStaticPodToNodes. */
  auditAction?: string
}

export interface PatchInput extends PodRef {
  change: ManifestChange
  /** The mutation its audit event is recorded under (default patchStaticPod): a rollout's per-node writes are patchStaticPodOnNodes. */
  auditAction?: string
}

export interface RollbackInput extends PodRef {
  revision: number
}

export interface StaticPodServiceOptions {
  store: Store
  agents: AgentProvider
  nodes: NodeService
  nodeState: NodeStateService
  audit: AuditService
  clock: () => Date
  /** Served state may be this old when a query does not give maxAgeSeconds. */
  defaultMaxAgeSeconds: number
  /** Names this process in node-side lock files. */
  instanceId: string
}

/** UPSERT: UPDATE when the node has the pod, else CREATE (decided under the node lock). */
type WriteAction = Exclude<RevisionAction, 'DELETE' | 'OBSERVED'> | 'UPSERT'

/** What a write does, given the pod currently on the node (null: none). */
interface WritePlan {
  action: WriteAction
  node: NodeRecord
  name: string
  /** undefined: the pod's namespace on the node, where its name is unique there. */
  namespace: string | undefined
  expectedHash: string | null
  /** CONFLICT when the node does not have the pod (checked under the lock, like expectedHash). */
  mustExist?: boolean
  dryRun: boolean
  actor: Actor
  content(current: ObservedPod | null): { text: string; fileName: string }
}

/** Reads nodes' states at most maxAgeSeconds old (NodeStateService.statesOf, or a GraphQL query's shared reads). */
export type NodeStatesLoader = (nodes: NodeRecord[], maxAgeSeconds: number) => Promise<{ states: NodeState[]; failures: NodeFailure[] }>

export class StaticPodService {
  constructor(private readonly o: StaticPodServiceOptions) {}

  // ------------------------------------------------------------------ reads

  /**
   * The static pods of the nodes the actor may see. `load` reads the nodes'
   * states; a GraphQL query passes its own, which shares them with the
   * query's other fields.
   */
  async list(
    query: { node?: string | null; namespace?: string | null; maxAgeSeconds?: number | null },
    actor: Actor,
    load: NodeStatesLoader = (nodes, maxAge) => this.o.nodeState.statesOf(nodes, maxAge),
  ): Promise<{
    pods: StaticPodView[]
    failures: NodeFailure[]
  }> {
    const nodes = query.node ? [await this.o.nodes.require(query.node, actor)] : await this.o.nodes.list(actor)
    const { states, failures } = await load(nodes, maxAgeOf(query.maxAgeSeconds, this.o.defaultMaxAgeSeconds))
    return { pods: states.flatMap((s) => this.viewsOf(s, query.namespace)), failures }
  }

  /** The static pods of one node's state, optionally of one namespace. */
  viewsOf(state: NodeState, namespace?: string | null): StaticPodView[] {
    const views = viewsOfObservation(state.node, state.observation, state.stale)
    return namespace ? views.filter((v) => v.namespace === namespace) : [...views]
  }

  /** One pod; null when the node has none of that name. NOT_FOUND with a hint for a mirror pod's name. */
  async get(
    query: { node: string; namespace?: string | null; name: string; maxAgeSeconds?: number | null },
    actor: Actor,
    load: NodeStatesLoader = (nodes, maxAge) => this.o.nodeState.statesOf(nodes, maxAge),
  ): Promise<{
    pod: StaticPodView | null
    failures: NodeFailure[]
  }> {
    const node = await this.o.nodes.require(query.node, actor)
    const { states, failures } = await load([node], maxAgeOf(query.maxAgeSeconds, this.o.defaultMaxAgeSeconds))
    const state = states[0]
    if (!state) return { pod: null, failures }
    const pod = findPod(state.observation, node, query.name, query.namespace ?? undefined, { missing: 'null' })
    return { pod: pod && toView(node, state.observation, pod, state.stale), failures }
  }

  /** Newest first, for many pods in one store call. */
  async histories(keys: PodKey[], limit: number): Promise<Map<string, RevisionRecord[]>> {
    return this.o.store.listRevisions(keys, Math.max(0, Math.min(limit, 1000)))
  }

  // ------------------------------------------------------------------ writes

  createStaticPod(input: CreateInput, actor: Actor): Promise<StaticPodResult> {
    const dryRun = input.dryRun ?? false
    return this.mutate('createStaticPod', actor, { node: input.node, dryRun }, async (audit) => {
      const node = await this.o.nodes.require(input.node, actor)
      const { text, identity } = parseAndValidate(input.manifest, node)
      audit.target = `${identity.namespace}/${identity.name}`
      const fileName = input.fileName ?? defaultFileName(identity.name)
      checkFileName(fileName)
      return this.write(
        {
          action: 'CREATE',
          node,
          name: identity.name,
          namespace: identity.namespace,
          expectedHash: null,
          dryRun,
          actor,
          content: () => ({ text, fileName }),
        },
        audit,
      )
    })
  }

  /** The write of an update; waiting for the new pod (waitForReady) is settled-write.ts's. */
  updateStaticPod(input: UpdateInput, actor: Actor): Promise<StaticPodResult> {
    const dryRun = input.dryRun ?? false
    return this.mutate('updateStaticPod', actor, { node: input.node, dryRun }, async (audit) => {
      audit.target = targetOf(input)
      if (input.waitForReady) readyTimeoutOf(input.readyTimeoutSeconds)
      const node = await this.o.nodes.require(input.node, actor)
      const { text, identity } = parseAndValidate(input.manifest, node)
      checkSameIdentity(input, identity, node)
      audit.target = `${identity.namespace}/${identity.name}`
      return this.write(
        {
          action: 'UPDATE',
          node,
          name: identity.name,
          namespace: identity.namespace,
          expectedHash: input.expectedHash ?? null,
          dryRun,
          actor,
          content: (current) => ({ text, fileName: requireCurrent(current, node, input).fileName }),
        },
        audit,
      )
    })
  }

  /**
   * Creates or replaces the manifest of namespace/name (REST PUT): the
   * manifest must be for exactly that pod; with expectedHash, the node must
   * have the pod with that hash.
   */
  putStaticPod(input: PutInput, actor: Actor): Promise<StaticPodResult & { created: boolean }> {
    const dryRun = input.dryRun ?? false
    return this.mutate(
      input.auditAction ?? 'putStaticPod',
      actor,
      { node: input.node, dryRun },
      async (audit) => {
        audit.target = `${input.namespace}/${input.name}`
        const node = await this.o.nodes.require(input.node, actor)
        const { text, identity } = parseAndValidate(input.manifest, node)
        checkSameIdentity(input, identity, node)
        const result = await this.write(
          {
            action: input.mustNotExist ? 'CREATE' : 'UPSERT',
            node,
            name: identity.name,
            namespace: identity.namespace,
            expectedHash: input.expectedHash ?? null,
            mustExist: input.mustExist ?? false,
            dryRun,
            actor,
            content: (current) => ({ text, fileName: current?.fileName ?? defaultFileName(identity.name) }),
          },
          audit,
        )
        // Assigned, not spread: a spread would read (and so make) the lazy diff.
        return Object.assign(result, { created: result.previousHash === null })
      },
      (userErrors) => ({ ...failedWrite(dryRun, userErrors), created: false }),
    )
  }

  restartStaticPod(input: PodRef, actor: Actor): Promise<StaticPodResult> {
    return this.editCurrent('restartStaticPod', 'RESTART', input, actor, () => {
      const at = this.o.clock().toISOString()
      return (pod) => setRestartAnnotation(pod.manifest, at)
    })
  }

  /**
   * Changes the node's own manifest in place (manifest/change.ts says what a
   * change does to the Pod, manifest/edit-in-place.ts writes that into the
   * file's text without touching any other line).
   */
  patchStaticPod(input: PatchInput, actor: Actor): Promise<StaticPodResult> {
    return this.editCurrent(input.auditAction ?? 'patchStaticPod', 'UPDATE', input, actor, () => {
      const change: CheckedChange = checkChange(input.change)
      return (pod, node) => changedText(pod, change, node)
    })
  }

  /**
   * A write whose new text is made from the node's current file, under the
   * node lock, so the diff returned is the one written (restart, patch).
   * `prepare` checks the input before the node is looked up and returns the
   * edit; NOT_FOUND when the node has no such pod.
   */
  private editCurrent(
    mutation: string,
    action: 'RESTART' | 'UPDATE',
    input: PodRef,
    actor: Actor,
    prepare: () => (current: ObservedPod, node: NodeRecord) => string,
  ): Promise<StaticPodResult> {
    const dryRun = input.dryRun ?? false
    return this.mutate(mutation, actor, { node: input.node, dryRun }, async (audit) => {
      audit.target = targetOf(input)
      const edit = prepare()
      const node = await this.o.nodes.require(input.node, actor)
      return this.write(
        {
          action,
          node,
          name: input.name,
          namespace: input.namespace ?? undefined,
          expectedHash: input.expectedHash ?? null,
          dryRun,
          actor,
          content: (current) => {
            const pod = requireCurrent(current, node, input)
            return { text: edit(pod, node), fileName: pod.fileName }
          },
        },
        audit,
      )
    })
  }

  rollbackStaticPod(input: RollbackInput, actor: Actor): Promise<StaticPodResult> {
    const dryRun = input.dryRun ?? false
    return this.mutate('rollbackStaticPod', actor, { node: input.node, dryRun }, async (audit) => {
      audit.target = targetOf(input)
      const node = await this.o.nodes.require(input.node, actor)
      const key = { node: node.name, namespace: input.namespace ?? (await this.namespaceOf(node, input)), name: input.name }
      audit.target = `${key.namespace}/${key.name}`
      const target = await this.o.store.getRevision(key, input.revision)
      if (!target) {
        // No such revision: perhaps the name is a mirror pod's (etcd-cp-1), which namespaceOf says.
        if (input.namespace) await this.namespaceOf(node, input)
        throw new ServiceError('NOT_FOUND', `${key.namespace}/${key.name} on node ${node.name} has no revision ${input.revision}`, ['revision'])
      }
      if (target.action === 'DELETE') {
        throw new ServiceError(
          'VALIDATION_FAILED',
          `revision ${input.revision} records the deletion of ${key.namespace}/${key.name}; roll back to the revision before it`,
          ['revision'],
        )
      }
      return this.write(
        {
          action: 'ROLLBACK',
          node,
          name: key.name,
          namespace: key.namespace,
          expectedHash: input.expectedHash ?? null,
          dryRun,
          actor,
          // A pod that was deleted since comes back in the file it had then.
          content: (current) => ({ text: target.manifest, fileName: current?.fileName ?? target.fileName }),
        },
        audit,
      )
    })
  }

  deleteStaticPod(input: PodRef, actor: Actor): Promise<DeleteResult> {
    const dryRun = input.dryRun ?? false
    const failed = (userErrors: UserError[]): DeleteResult => ({ deleted: false, previousHash: null, dryRun, userErrors })
    return this.mutate(
      'deleteStaticPod',
      actor,
      { node: input.node, dryRun },
      async (audit) => {
        audit.target = targetOf(input)
        const node = await this.o.nodes.require(input.node, actor)
        const agent = await this.o.agents.agentFor(node)
        return this.underNodeLock(node, agent, actor, async () => {
          const reading = await this.o.nodeState.readManifestsWith(node, agent)
          const current = findPod(reading.observation, node, input.name, input.namespace ?? undefined, { missing: 'throw' }) as ObservedPod
          audit.target = `${current.namespace}/${current.name}`
          audit.fromHash = current.hash
          checkExpectedHash(input.expectedHash ?? null, current)
          if (dryRun) return { deleted: true, previousHash: current.hash, dryRun, userErrors: [] }
          await agent.backup(current.fileName, Buffer.from(current.manifest, 'utf8'))
          await agent.deleteManifest(current.fileName)
          if ((await agent.readManifest(current.fileName)) !== null) {
            throw new ServiceError('WRITE_FAILED', `${current.fileName} is still on node ${node.name} after deleting it`)
          }
          const deletion = await this.o.store.appendRevision({
            node: node.name,
            namespace: current.namespace,
            name: current.name,
            hash: current.hash,
            manifest: current.manifest,
            fileName: current.fileName,
            action: 'DELETE',
            actor: actor.name,
            recordedAt: this.o.clock().toISOString(),
          })
          await this.o.nodeState.recordFileChange(node, reading, current.fileName, null, deletion)
          return { deleted: true, previousHash: current.hash, dryRun, userErrors: [] }
        })
      },
      failed,
    )
  }

  // ------------------------------------------------------------------ the write path

  private async write(plan: WritePlan, audit: AuditDraft): Promise<StaticPodResult> {
    const { node, dryRun } = plan
    const agent = await this.o.agents.agentFor(node)
    // At first contact, the file the pod usually has is read with the listing under the lock.
    agent.expectFiles([defaultFileName(plan.name)])
    return this.underNodeLock(node, agent, plan.actor, async () => {
      const reading = await this.o.nodeState.readManifestsWith(node, agent)
      const { observation } = reading
      // A new pod may be named like another pod's mirror (web-local for web on node local): no hint there.
      const current =
        plan.action === 'CREATE' || plan.action === 'UPSERT'
          ? observation.pods.find((p) => p.namespace === plan.namespace && p.name === plan.name) ?? null
          : findPod(observation, node, plan.name, plan.namespace, { missing: plan.action === 'ROLLBACK' ? 'null' : 'throw' })
      const action = plan.action === 'UPSERT' ? (current ? 'UPDATE' : 'CREATE') : plan.action
      const key: PodKey = { node: node.name, namespace: current?.namespace ?? plan.namespace ?? 'default', name: plan.name }
      audit.target = `${key.namespace}/${key.name}`
      audit.fromHash = current?.hash ?? null
      if (plan.action === 'CREATE' && current) {
        throw new ServiceError(
          'ALREADY_EXISTS',
          `node ${node.name} already has static pod ${key.namespace}/${key.name} (in ${current.fileName}); update it instead`,
          ['manifest', 'metadata', 'name'],
        )
      }
      checkExpectedHash(plan.expectedHash, current)
      if (plan.mustExist && !current) {
        throw new ServiceError('CONFLICT', `node ${node.name} has no static pod ${key.namespace}/${key.name} (If-Match: * asks for one); nothing was written`, ['expectedHash'])
      }
      const { text, fileName } = plan.content(current)
      if (!current) checkFileNameFree(reading.entries, fileName, plan.action === 'ROLLBACK' ? ['revision'] : ['fileName'])

      const bytes = Buffer.from(text, 'utf8')
      const hash = sha256Hex(bytes)
      audit.toHash = hash
      const previousHash = current?.hash ?? null
      if (current && current.hash === hash && current.fileName === fileName) {
        audit.message = 'unchanged: the node already has these bytes'
        return { staticPod: toView(node, observation, current, false), previousHash, dryRun, rolledBack: false, changed: false, diff: '', userErrors: [] }
      }
      // Made when a caller reads it: most rollout callers ask each node for its status only.
      const diff = (): string => unifiedDiff(node, current, fileName, text)
      if (dryRun) {
        const latest = (await this.o.store.latestRevisions([key])).get(podKeyString(key))
        const wouldBe: ObservedPod = { namespace: key.namespace, name: key.name, fileName, hash, revision: (latest?.revision ?? 0) + 1, managed: true, manifest: text }
        return withLazyProperty({ staticPod: toView(node, observation, wouldBe, false), previousHash, dryRun, rolledBack: false, changed: true, userErrors: [] }, 'diff', diff)
      }

      if (current) await agent.backup(current.fileName, Buffer.from(current.manifest, 'utf8'))
      await agent.writeManifest(fileName, bytes)
      await this.verifyWritten(agent, node, fileName, hash, current)
      const revision = await this.o.store.appendRevision({
        ...key,
        hash,
        manifest: text,
        fileName,
        action,
        actor: plan.actor.name,
        recordedAt: this.o.clock().toISOString(),
      })
      // The node's state after the write, from the listing read under the lock:
      // the new revision is recorded already, so it is not seen as a change.
      const after = await this.o.nodeState.recordFileChange(node, reading, fileName, bytes, revision)
      const written = after.pods.find((p) => p.namespace === key.namespace && p.name === key.name) ?? observedPod({ ...key, fileName, hash, text }, revision)
      return withLazyProperty({ staticPod: toView(node, after, written, false), previousHash, dryRun, rolledBack: false, changed: true, userErrors: [] }, 'diff', diff)
    })
  }

  /** Step 7: the bytes on the node are the bytes asked for, or the old ones are put back. */
  private async verifyWritten(agent: NodeAgent, node: NodeRecord, fileName: string, hash: string, previous: ObservedPod | null): Promise<void> {
    const readBack = await agent.readManifest(fileName)
    if (readBack !== null && sha256Hex(readBack) === hash) return
    if (previous) await agent.writeManifest(previous.fileName, Buffer.from(previous.manifest, 'utf8')).catch(() => undefined)
    else await agent.deleteManifest(fileName).catch(() => undefined)
    throw new ServiceError('WRITE_FAILED', `node ${node.name} did not keep the bytes written to ${fileName}; the previous content was put back`)
  }

  private underNodeLock<T>(node: NodeRecord, agent: NodeAgent, actor: Actor, fn: () => Promise<T>): Promise<T> {
    return agent.withLock({ actor: actor.name, instance: this.o.instanceId }, fn)
  }

  /**
   * The namespace of the pod addressed, from the node's current state (read
   * live); NOT_FOUND naming the static pod when the name is its mirror pod's.
   */
  private async namespaceOf(node: NodeRecord, ref: PodRef): Promise<string> {
    const { states } = await this.o.nodeState.statesOf([node], 0)
    const observation = states[0]?.observation
    const pod = observation && findPod(observation, node, ref.name, ref.namespace ?? undefined, { missing: 'null' })
    return ref.namespace ?? pod?.namespace ?? 'default'
  }

  private mutate<R>(
    action: string,
    actor: Actor,
    meta: { node: string; dryRun: boolean },
    body: (audit: AuditDraft) => Promise<R>,
    failed: (userErrors: UserError[]) => R = (userErrors) => failedWrite(meta.dryRun, userErrors) as R,
  ): Promise<R> {
    return this.o.audit.runMutation({ action, actor, requires: 'operator', node: meta.node, dryRun: meta.dryRun }, body, failed)
  }
}

// ------------------------------------------------------------------ rules

function parseAndValidate(manifest: string | Uint8Array, node: NodeRecord) {
  const parsed = parseManifest(manifest)
  const identity = validateStaticPod(parsed.object, { nodeName: node.name })
  return { text: parsed.text, identity }
}

/**
 * The node's manifest with the change applied in place, valid as a static pod
 * of the same name and namespace (a patch may not rename it).
 */
function changedText(current: ObservedPod, change: CheckedChange, node: NodeRecord): string {
  const before = parseManifest(current.manifest).object
  const after = applyChange(before, change)
  const identity = validateStaticPod(after, { nodeName: node.name })
  checkSameIdentity({ node: node.name, namespace: current.namespace, name: current.name }, identity, node)
  return editInPlace(current.manifest, after)
}

/**
 * An update may not rename the pod: that is a create and a delete. The name
 * `kubectl get pods` shows (the mirror pod <name>-<node>) is not the pod's
 * name: that is said before anything is compared.
 */
function checkSameIdentity(ref: PodRef, identity: { namespace: string; name: string }, node: NodeRecord): void {
  if (identity.name !== ref.name && ref.name === mirrorPodName(identity.name, node.name)) throw mirrorPodNotFound(node, ref.name, identity)
  if (identity.name !== ref.name) {
    throw new ServiceError(
      'VALIDATION_FAILED',
      `the manifest is for pod ${identity.name}, not ${ref.name}: to rename a static pod, create the new one and delete the old`,
      ['manifest', 'metadata', 'name'],
    )
  }
  if (ref.namespace && identity.namespace !== ref.namespace) {
    throw new ServiceError(
      'VALIDATION_FAILED',
      `the manifest is in namespace ${identity.namespace}, not ${ref.namespace}`,
      ['manifest', 'metadata', 'namespace'],
    )
  }
}

function checkExpectedHash(expectedHash: string | null, current: ObservedPod | null): void {
  if (expectedHash === null || expectedHash === undefined) return
  if (current?.hash !== expectedHash) {
    throw new ServiceError(
      'CONFLICT',
      current
        ? `the manifest on the node has hash ${current.hash}, not the expected ${expectedHash}: it changed since you read it; nothing was written`
        : `the pod no longer exists on the node (expected hash ${expectedHash}); nothing was written`,
      ['expectedHash'],
    )
  }
}

function requireCurrent(current: ObservedPod | null, node: NodeRecord, ref: PodRef): ObservedPod {
  if (!current) throw notFound(node, ref.name, ref.namespace ?? undefined)
  return current
}

/** The listing read under the lock holds every name the kubelet sees (a new file name never starts with '.'). */
function checkFileNameFree(entries: DirEntry[], fileName: string, field: string[]): void {
  if (entries.some((e) => e.name === fileName)) {
    throw new ServiceError('ALREADY_EXISTS', `a file named ${fileName} already exists in the node's staticPodPath`, field)
  }
}

/**
 * Finds a pod by name (and namespace, when given). Without a namespace the
 * name must be unique on the node. A mirror pod's name gets a NOT_FOUND that
 * names the static pod to use instead.
 */
function findPod(
  observation: NodeObservation,
  node: NodeRecord,
  name: string,
  namespace: string | undefined,
  opts: { missing: 'null' | 'throw' },
): ObservedPod | null {
  const matches = observation.pods.filter((p) => p.name === name && (!namespace || p.namespace === namespace))
  if (matches.length > 1) {
    throw new ServiceError(
      'VALIDATION_FAILED',
      `node ${node.name} has a static pod ${name} in namespaces ${matches.map((p) => p.namespace).join(', ')}: give the namespace`,
      ['namespace'],
    )
  }
  if (matches[0]) return matches[0]
  const mirrored = observation.pods.find((p) => mirrorPodName(p.name, node.name) === name && (!namespace || p.namespace === namespace))
  if (mirrored) throw mirrorPodNotFound(node, name, mirrored)
  if (opts.missing === 'throw') throw notFound(node, name, namespace)
  return null
}

/** The caller addressed a mirror pod (read-only, made by the kubelet): NOT_FOUND, naming the static pod it mirrors. */
function mirrorPodNotFound(node: NodeRecord, name: string, pod: { namespace: string; name: string }): ServiceError {
  return new ServiceError(
    'NOT_FOUND',
    `${name} is the mirror pod of static pod ${pod.namespace}/${pod.name} on node ${node.name}; mirror pods are read-only copies: address the static pod, name: "${pod.name}"`,
    ['name'],
  )
}

function notFound(node: NodeRecord, name: string, namespace: string | undefined): ServiceError {
  return new ServiceError('NOT_FOUND', `node ${node.name} has no static pod ${namespace ? `${namespace}/` : ''}${name}`, ['name'])
}

function targetOf(ref: { namespace?: string | null | undefined; name: string }): string {
  return `${ref.namespace ?? 'default'}/${ref.name}`
}

function unifiedDiff(node: NodeRecord, current: ObservedPod | null, fileName: string, text: string): string {
  const path = `${node.staticPodPath}/${fileName}`
  return createTwoFilesPatch(current ? `${node.staticPodPath}/${current.fileName}` : '/dev/null', path, current?.manifest ?? '', text, '', '', {
    context: 3,
  })
}

function failedWrite(dryRun: boolean, userErrors: UserError[]): StaticPodResult {
  return { staticPod: null, previousHash: null, dryRun, rolledBack: false, changed: false, diff: null, userErrors }
}
