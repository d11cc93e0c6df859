// The API server side: mirror pods and Node objects. Reading them arrives with
// issue #4; until then the cluster is reported as not reachable, with the
// reason, and every static pod feature works without it (the break-glass case).

import { ServiceError } from '../errors.ts'

export interface ApiServerStatus {
  configured: boolean
  reachable: boolean
  version: string | null
  checkedAt: string | null
  error: string | null
}

export class ClusterService {
  constructor(private readonly kubeconfig: string | undefined) {}

  /** A KUBECONFIG, or the in-cluster service account of a pod. */
  get configured(): boolean {
    return this.kubeconfig !== undefined || process.env.KUBERNETES_SERVICE_HOST !== undefined
  }

  apiServerStatus(): ApiServerStatus {
    return { configured: this.configured, reachable: false, version: null, checkedAt: null, error: this.unavailable().message }
  }

  /** Why mirror pods and Node objects cannot be read now. */
  unavailable(): ServiceError {
    return new ServiceError(
      'API_SERVER_UNAVAILABLE',
      this.configured
        ? 'reading mirror pods and Node objects from the API server is not in this release yet (issue #4); static pods are read from the nodes'
        : 'no API server is configured (set KUBECONFIG); static pods are read from the nodes',
    )
  }
}
