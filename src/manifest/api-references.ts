// The one place for the rule "static pods may not refer to API objects".
// The kubelet runs a static pod with no API server behind it, so it cannot fetch
// a Secret, ConfigMap, service account token, claim ... for it, and the API
// server (NodeRestriction) refuses a mirror pod that names one. validateStaticPod
// refuses such manifests; lintManifestDir reports files already on a node.

import { isMapping } from './parse.ts'

export interface ApiReference {
  /** Path inside the manifest object, e.g. ['spec', 'volumes', '0', 'secret']. */
  path: string[]
  message: string
}

const WHY = 'the kubelet runs static pods without the API server (the mirror pod would be refused)'
const forbidden = (what: string): string => `Static pods may not refer to ${what}: ${WHY}.`

/** Container lists of a Pod spec; ephemeral containers are checked too though they are refused on their own. */
const CONTAINER_LISTS = ['containers', 'initContainers', 'ephemeralContainers'] as const

/** Volume sources that are API objects in themselves. */
const API_OBJECT_VOLUMES: Record<string, string> = {
  secret: 'Secrets',
  configMap: 'ConfigMaps',
  persistentVolumeClaim: 'PersistentVolumeClaims',
  ephemeral: 'ephemeral volumes (they create a PersistentVolumeClaim)',
  csi: 'CSI volumes (the CSI driver is an API object)',
}

const PROJECTED_SOURCES: Record<string, string> = {
  secret: 'Secrets',
  configMap: 'ConfigMaps',
  serviceAccountToken: 'service account tokens',
  clusterTrustBundle: 'ClusterTrustBundles',
}

export function findApiReferences(object: Record<string, unknown>): ApiReference[] {
  const spec = object['spec']
  if (!isMapping(spec)) return []
  const found: ApiReference[] = []
  const add = (path: Array<string | number>, what: string): void => {
    found.push({ path: ['spec', ...path.map(String)], message: forbidden(what) })
  }

  if (isNonEmptyString(spec['serviceAccountName'])) add(['serviceAccountName'], 'a service account')
  if (isNonEmptyString(spec['serviceAccount'])) add(['serviceAccount'], 'a service account')
  if (isNonEmptyList(spec['imagePullSecrets'])) add(['imagePullSecrets'], 'Secrets (imagePullSecrets)')
  if (isNonEmptyList(spec['resourceClaims'])) add(['resourceClaims'], 'ResourceClaims')
  if (isNonEmptyList(spec['ephemeralContainers'])) add(['ephemeralContainers'], 'ephemeral containers (they are added through the API server)')

  for (const list of CONTAINER_LISTS) {
    entries(spec[list]).forEach((container, i) => {
      for (const ref of containerReferences(container)) add([list, i, ...ref.path], ref.what)
    })
  }

  entries(spec['volumes']).forEach((volume, i) => {
    for (const ref of volumeReferences(volume)) add(['volumes', i, ...ref.path], ref.what)
  })
  return found
}

interface Reference {
  path: Array<string | number>
  what: string
}

function containerReferences(container: Record<string, unknown>): Reference[] {
  const refs: Reference[] = []
  entries(container['env']).forEach((env, j) => {
    const valueFrom = env['valueFrom']
    if (!isMapping(valueFrom)) return
    if (isPresent(valueFrom['secretKeyRef'])) refs.push({ path: ['env', j, 'valueFrom', 'secretKeyRef'], what: 'Secrets' })
    if (isPresent(valueFrom['configMapKeyRef'])) refs.push({ path: ['env', j, 'valueFrom', 'configMapKeyRef'], what: 'ConfigMaps' })
  })
  entries(container['envFrom']).forEach((source, j) => {
    if (isPresent(source['secretRef'])) refs.push({ path: ['envFrom', j, 'secretRef'], what: 'Secrets' })
    if (isPresent(source['configMapRef'])) refs.push({ path: ['envFrom', j, 'configMapRef'], what: 'ConfigMaps' })
  })
  const resources = container['resources']
  if (isMapping(resources) && isNonEmptyList(resources['claims'])) {
    refs.push({ path: ['resources', 'claims'], what: 'ResourceClaims' })
  }
  return refs
}

function volumeReferences(volume: Record<string, unknown>): Reference[] {
  const refs: Reference[] = []
  for (const [source, value] of Object.entries(volume)) {
    if (source === 'name' || !isPresent(value)) continue
    const what = API_OBJECT_VOLUMES[source]
    if (what) {
      refs.push({ path: [source], what })
    } else if (source === 'azureFile') {
      // azureFile names its Secret by secretName (a required field).
      refs.push({ path: [source], what: 'Secrets (azureFile reads its account key from one)' })
    } else if (source === 'projected') {
      refs.push(...projectedReferences(value))
    } else if (isMapping(value) && isPresent(value['secretRef'])) {
      // cephfs, flexVolume, iscsi, rbd, scaleIO, storageos, cinder ... name a Secret this way.
      refs.push({ path: [source, 'secretRef'], what: 'Secrets' })
    }
  }
  return refs
}

function projectedReferences(projected: unknown): Reference[] {
  if (!isMapping(projected)) return []
  const refs: Reference[] = []
  entries(projected['sources']).forEach((source, j) => {
    for (const [kind, what] of Object.entries(PROJECTED_SOURCES)) {
      if (isPresent(source[kind])) refs.push({ path: ['projected', 'sources', j, kind], what })
    }
  })
  return refs
}

/** The mappings of a list, with their index; anything else (null, malformed) yields nothing. */
function entries(list: unknown): Array<Record<string, unknown>> {
  if (!Array.isArray(list)) return []
  // A sparse result keeps the original indexes for the paths; forEach skips the holes.
  const out: Array<Record<string, unknown>> = []
  list.forEach((item: unknown, i) => {
    if (isMapping(item)) out[i] = item
  })
  return out
}

// An explicit `secret: null` refers to nothing, and the API server drops it too.
function isPresent(value: unknown): boolean {
  return value !== null && value !== undefined
}

function isNonEmptyString(value: unknown): boolean {
  return typeof value === 'string' && value.length > 0
}

function isNonEmptyList(value: unknown): boolean {
  return Array.isArray(value) && value.length > 0
}
