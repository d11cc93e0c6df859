// Mirror pods: the read-only copies of static pods that the kubelets post to
// the API server. The rules of reading them, of matching them with the static
// pods on the nodes, and of the one change allowed on them (delete, so that the
// kubelet posts a fresh one) live here.

import { isMirrorPod, mirrorPodView, syncStatus, type MirrorPodView, type SyncStatus } from '../cluster/mirror-pods.ts'
import { ServiceError, type UserError } from '../errors.ts'
import { mirrorPodName } from '../manifest/names.ts'
import { authorize, canSeeNode, type Actor } from './actor.ts'
import type { AuditService } from './audit.ts'
import type { ClusterService } from './cluster.ts'
import type { NodeState } from './node-state.ts'
import type { StaticPodService } from './static-pods.ts'
import type { StaticPodView } from './static-pod-view.ts'

export type { MirrorPodView, SyncStatus }

export interface MirrorPodRef {
  namespace: string
  name: string
}

export interface RecreateMirrorPodResult {
  deleted: boolean
  userErrors: UserError[]
}

export class MirrorPodService {
  constructor(
    private readonly o: {
      cluster: ClusterService
      audit: AuditService
      staticPods: StaticPodService
    },
  ) {}

  /**
   * Mirror pods on the given nodes (null: every node the actor may see), in ONE
   * API call whatever the number of nodes: a field selector for one node, else
   * one list across the cluster filtered here. The API server has no "node in
   * (a, b, c)" selector, so the alternative, one call per node, would grow with
   * the query; a cluster-wide pod list is a single read the API server serves
   * routinely (every kubectl get pods -A does it).
   */
  async list(query: { nodes: string[] | null; namespace?: string | null | undefined }, actor: Actor): Promise<MirrorPodView[]> {
    for (const node of query.nodes ?? []) authorize(actor, 'viewer', node)
    if (query.nodes?.length === 0) return []
    const selectors = [query.nodes?.length === 1 ? `spec.nodeName=${query.nodes[0]}` : null, query.namespace ? `metadata.namespace=${query.namespace}` : null]
    const fieldSelector = selectors.filter((s) => s !== null).join(',') || undefined
    const pods = await this.o.cluster.call((api) => api.listPods({ fieldSelector }))
    const wanted = query.nodes && new Set(query.nodes)
    return pods
      .filter(isMirrorPod)
      .map(mirrorPodView)
      .filter((m): m is MirrorPodView => m !== null && (!wanted || wanted.has(m.nodeName)) && canSeeNode(actor, m.nodeName))
      .sort((a, b) => a.nodeName.localeCompare(b.nodeName) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
  }

  /** The static pod's mirror pod among its node's mirror pods: same namespace, named <name>-<node>. */
  mirrorOf(pod: StaticPodView, mirrorsOfNode: MirrorPodView[]): MirrorPodView | null {
    return mirrorsOfNode.find((m) => m.nodeName === pod.nodeName && m.namespace === pod.namespace && m.name === pod.mirrorPodName) ?? null
  }

  /** null mirrors: the API server could not be asked. */
  syncOf(pod: StaticPodView, mirrorsOfNode: MirrorPodView[] | null): SyncStatus {
    if (mirrorsOfNode === null) return 'API_SERVER_UNAVAILABLE'
    return syncStatus(pod.containers, this.mirrorOf(pod, mirrorsOfNode))
  }

  /** The static pod a mirror pod stands for, on its node as last read; null for an orphan. */
  staticPodOf(mirror: MirrorPodView, state: NodeState): StaticPodView | null {
    const pod = state.observation.pods.find((p) => p.namespace === mirror.namespace && mirrorPodName(p.name, state.node.name) === mirror.name)
    return (pod && this.o.staticPods.viewsOf(state, pod.namespace).find((v) => v.name === pod.name)) ?? null
  }

  /**
   * Deletes one mirror pod through the API server; the kubelet posts a fresh one
   * (new uid) from the manifest, and the static pod keeps running. Only mirror
   * pods: any other pod is NOT_FOUND here, since this service never deletes
   * what it does not stand for.
   */
  recreateMirrorPod(ref: MirrorPodRef, actor: Actor): Promise<RecreateMirrorPodResult> {
    return this.o.audit.runMutation<RecreateMirrorPodResult>(
      { action: 'recreateMirrorPod', actor, requires: 'operator', node: null, target: `${ref.namespace}/${ref.name}`, dryRun: false },
      async (audit) => {
        const pod = await this.o.cluster.call((api) => api.readPod(ref.namespace, ref.name)).catch((err: unknown) => {
          if (err instanceof ServiceError && err.code === 'NOT_FOUND') throw noMirrorPod(ref, 'the API server has no pod of that name')
          throw err
        })
        const mirror = isMirrorPod(pod) ? mirrorPodView(pod) : null
        if (!mirror) {
          throw noMirrorPod(ref, 'that pod is not a mirror pod (no kubernetes.io/config.mirror annotation); only mirror pods are recreated here')
        }
        authorize(actor, 'operator', mirror.nodeName)
        audit.node = mirror.nodeName
        audit.message = `deleted mirror pod uid ${mirror.uid}; the kubelet on ${mirror.nodeName} posts a new one`
        await this.o.cluster.call((api) => api.deletePod(ref.namespace, ref.name)).catch((err: unknown) => {
          // Deleted by someone (or the kubelet) in between: the outcome asked for is there.
          if (!(err instanceof ServiceError && err.code === 'NOT_FOUND')) throw err
        })
        return { deleted: true, userErrors: [] }
      },
      (userErrors) => ({ deleted: false, userErrors }),
    )
  }
}

function noMirrorPod(ref: MirrorPodRef, why: string): ServiceError {
  return new ServiceError('NOT_FOUND', `no mirror pod ${ref.namespace}/${ref.name}: ${why}`, ['name'])
}

