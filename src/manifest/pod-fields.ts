// Lenient readers for Pod objects that may be malformed (files found on a node,
// display). They never throw; validate.ts is the strict counterpart.

import type { ContainerSpec } from './types.ts'
import { isMapping } from './parse.ts'
import { mirrorPodName } from './names.ts'

/** The kubelet puts a static pod without metadata.namespace into this one. */
const DEFAULT_NAMESPACE = 'default'

export interface PodName {
  namespace: string
  name: string
  mirrorPodName: string
}

/**
 * namespace/name of a Pod object, or null when it has no usable metadata.name
 * (a non-empty string). Does not check the name rules: a file on disk is what
 * it is, and the caller reports problems separately.
 */
export function podIdentityOf(object: Record<string, unknown>, nodeName: string): PodName | null {
  const metadata = object['metadata']
  if (!isMapping(metadata)) return null
  const name = metadata['name']
  if (typeof name !== 'string' || name.length === 0) return null
  return { namespace: namespaceOf(metadata), name, mirrorPodName: mirrorPodName(name, nodeName) }
}

/** metadata.namespace, or the kubelet's default when it is absent, null or empty. */
export function namespaceOf(metadata: Record<string, unknown>): string {
  const namespace = metadata['namespace']
  return typeof namespace === 'string' && namespace.length > 0 ? namespace : DEFAULT_NAMESPACE
}

/** Containers then init containers, skipping entries without a string name and image. */
export function containerSpecs(object: Record<string, unknown>): ContainerSpec[] {
  const spec = object['spec']
  if (!isMapping(spec)) return []
  return [...specsOf(spec['containers'], false), ...specsOf(spec['initContainers'], true)]
}

function specsOf(list: unknown, init: boolean): ContainerSpec[] {
  if (!Array.isArray(list)) return []
  return list.flatMap((item: unknown): ContainerSpec[] => {
    if (!isMapping(item)) return []
    const { name, image } = item
    return typeof name === 'string' && typeof image === 'string' ? [{ name, image, init }] : []
  })
}
