// How a strategic merge patch merges each field of a v1 Pod: the
// `patchStrategy` and `patchMergeKey` struct tags of the Go types, which is
// all that k8s.io/apimachinery/pkg/util/strategicpatch reads from them
// (PatchMetaFromStruct). Copied from Kubernetes v1.36.3:
//   k8s.io/api v0.36.3, core/v1/types.go (Pod, PodSpec, Container,
//     EphemeralContainerCommon, PodStatus)
//   k8s.io/apimachinery v0.36.3, pkg/apis/meta/v1/types.go (ObjectMeta)
// Every tagged field reachable from a Pod is here. A field absent from this
// table has no strategy: a mapping is merged key by key, a list is replaced.
// A list without `merge` is replaced whole, so the tags of types reachable only
// through such lists (ContainerStatus' volumeMounts ...) never matter and are
// left out. Where a new Kubernetes version tags another Pod field, add it here.

export interface PatchField {
  /** `merge`: a list is merged by mergeKey (a list of scalars, as a set); `replace`: the value is taken whole. */
  readonly strategy?: 'merge' | 'replace'
  /** The tag says retainKeys too. Applying a patch needs no schema for it (a `$retainKeys` directive carries it); kept to match the source. */
  readonly retainKeys?: boolean
  readonly mergeKey?: string
  /** The fields of the value (of each element, for a list). */
  readonly schema?: PatchSchema
}

export interface PatchSchema {
  /** The Go type's name, for messages. */
  readonly name: string
  readonly fields: Readonly<Record<string, PatchField>>
}

/** A type with no tagged field (or one this table does not know). */
export const UNTAGGED: PatchSchema = { name: 'object', fields: {} }

const merged = (mergeKey: string, schema?: PatchSchema): PatchField => (schema ? { strategy: 'merge', mergeKey, schema } : { strategy: 'merge', mergeKey })

// core/v1 Container; EphemeralContainer inlines EphemeralContainerCommon, whose tags are the same.
const containerFields = {
  ports: merged('containerPort'),
  env: merged('name'),
  volumeMounts: merged('mountPath'),
  volumeDevices: merged('devicePath'),
}
const CONTAINER: PatchSchema = { name: 'Container', fields: containerFields }
const EPHEMERAL_CONTAINER: PatchSchema = { name: 'EphemeralContainer', fields: containerFields }

const POD_SPEC: PatchSchema = {
  name: 'PodSpec',
  fields: {
    volumes: { strategy: 'merge', retainKeys: true, mergeKey: 'name' },
    initContainers: merged('name', CONTAINER),
    containers: merged('name', CONTAINER),
    ephemeralContainers: merged('name', EPHEMERAL_CONTAINER),
    imagePullSecrets: merged('name'),
    hostAliases: merged('ip'),
    topologySpreadConstraints: merged('topologyKey'),
    schedulingGates: merged('name'),
    resourceClaims: { strategy: 'merge', retainKeys: true, mergeKey: 'name' },
  },
}

const OBJECT_META: PatchSchema = {
  name: 'ObjectMeta',
  fields: {
    ownerReferences: merged('uid'),
    // A list of strings merged as a set (patchStrategy merge without a key).
    finalizers: { strategy: 'merge' },
  },
}

const POD_STATUS: PatchSchema = {
  name: 'PodStatus',
  fields: {
    conditions: merged('type'),
    hostIPs: merged('ip'),
    podIPs: merged('ip'),
    resourceClaimStatuses: { strategy: 'merge', retainKeys: true, mergeKey: 'name' },
  },
}

export const POD_PATCH_SCHEMA: PatchSchema = {
  name: 'Pod',
  fields: {
    metadata: { schema: OBJECT_META },
    spec: { schema: POD_SPEC },
    status: { schema: POD_STATUS },
  },
}
