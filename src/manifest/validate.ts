// Is this object a Pod the kubelet will run as a static pod, and will the API
// server accept its mirror pod? Every problem is collected, each with the path
// of the field at fault, so a caller can fix them all in one go.

import { ServiceError, ValidationErrors } from '../errors.ts'
import type { ContainerSpec } from './types.ts'
import { findApiReferences } from './api-references.ts'
import { DNS1123_SUBDOMAIN_MAX, isDns1123Label, isDns1123Subdomain, mirrorPodName } from './names.ts'
import { describeValue, isMapping } from './parse.ts'
import { containerSpecs, namespaceOf } from './pod-fields.ts'

export interface PodIdentity {
  namespace: string
  name: string
  mirrorPodName: string
  containers: ContainerSpec[]
}

export interface ValidateOptions {
  nodeName: string
  /** Field path prefix for errors; ['manifest'] by default. */
  field?: string[]
}

/** A problem at a path inside the manifest object (no prefix). */
export interface ManifestProblem {
  path: string[]
  message: string
}

/**
 * Throws one ValidationErrors listing every problem, or returns who the pod is.
 * Order of checks: kind and apiVersion (nothing else is worth saying about a
 * Deployment), then metadata and spec, then references to API objects.
 */
export function validateStaticPod(object: Record<string, unknown>, opts: ValidateOptions): PodIdentity {
  const prefix = opts.field ?? ['manifest']
  const kindProblems = podKindProblems(object)
  const problems =
    kindProblems.length > 0 ? kindProblems : [...podProblems(object, opts.nodeName), ...findApiReferences(object)]
  if (problems.length > 0) {
    throw new ValidationErrors(problems.map((p) => new ServiceError('VALIDATION_FAILED', p.message, [...prefix, ...p.path])))
  }
  // podProblems found a mapping metadata with a valid string name.
  const metadata = object['metadata'] as Record<string, unknown>
  const name = metadata['name'] as string
  return {
    namespace: namespaceOf(metadata),
    name,
    mirrorPodName: mirrorPodName(name, opts.nodeName),
    containers: containerSpecs(object),
  }
}

const ONE_V1_POD = 'a static pod manifest must be exactly one v1 Pod'

/** Problems with apiVersion and kind: is this a v1 Pod at all? */
export function podKindProblems(object: Record<string, unknown>): ManifestProblem[] {
  const problems: ManifestProblem[] = []
  const { kind, apiVersion } = object
  if (kind !== 'Pod') {
    const got = kind === undefined ? 'kind is missing' : `kind is ${typeof kind === 'string' ? kind : describeValue(kind)}`
    const hint =
      typeof kind === 'string' && kind.endsWith('List') ? ': put each Pod in a file of its own' : ' (the kubelet runs nothing else)'
    problems.push({ path: ['kind'], message: `${got}; ${ONE_V1_POD}${hint}.` })
  }
  if (apiVersion !== 'v1') {
    const got =
      apiVersion === undefined ? 'apiVersion is missing' : `apiVersion is ${typeof apiVersion === 'string' ? apiVersion : describeValue(apiVersion)}`
    problems.push({ path: ['apiVersion'], message: `${got}; ${ONE_V1_POD} (apiVersion: v1, kind: Pod).` })
  }
  return problems
}

/**
 * Problems the kubelet itself would reject the Pod for (metadata, containers),
 * given that it is a v1 Pod. References to API objects are not among them:
 * see findApiReferences.
 */
export function podProblems(object: Record<string, unknown>, nodeName: string): ManifestProblem[] {
  return [...metadataProblems(object['metadata'], nodeName), ...specProblems(object['spec'])]
}

function metadataProblems(metadata: unknown, nodeName: string): ManifestProblem[] {
  if (!isMapping(metadata)) {
    const got = metadata === undefined ? 'is missing' : `is ${describeValue(metadata)}`
    return [{ path: ['metadata'], message: `metadata ${got}; it must be a mapping with at least a name.` }]
  }
  const problems: ManifestProblem[] = []
  const name = metadata['name']
  if (name === undefined || name === null || name === '') {
    problems.push({ path: ['metadata', 'name'], message: 'metadata.name is required: the kubelet refuses a static pod without one.' })
  } else if (typeof name !== 'string') {
    problems.push({ path: ['metadata', 'name'], message: `metadata.name must be a string, not ${describeValue(name)}.` })
  } else if (!isDns1123Subdomain(name)) {
    problems.push({
      path: ['metadata', 'name'],
      message: `metadata.name ${JSON.stringify(name)} is not a valid name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most ${DNS1123_SUBDOMAIN_MAX} characters.`,
    })
  } else {
    const mirror = mirrorPodName(name, nodeName)
    if (!isDns1123Subdomain(mirror)) {
      const why =
        mirror.length > DNS1123_SUBDOMAIN_MAX
          ? `${mirror.length} characters long; the limit is ${DNS1123_SUBDOMAIN_MAX}`
          : 'not a valid DNS-1123 subdomain'
      problems.push({
        path: ['metadata', 'name'],
        message: `The kubelet names this pod ${JSON.stringify(mirror)} (<name>-<node>), which is ${why}: it would refuse to run it.`,
      })
    }
  }

  const namespace = metadata['namespace']
  // Absent, null or empty: the kubelet uses "default".
  if (namespace !== undefined && namespace !== null && namespace !== '') {
    if (typeof namespace !== 'string') {
      problems.push({ path: ['metadata', 'namespace'], message: `metadata.namespace must be a string, not ${describeValue(namespace)}.` })
    } else if (!isDns1123Label(namespace)) {
      problems.push({
        path: ['metadata', 'namespace'],
        message: `metadata.namespace ${JSON.stringify(namespace)} is not a valid namespace: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters.`,
      })
    }
  }
  return problems
}

function specProblems(spec: unknown): ManifestProblem[] {
  if (!isMapping(spec)) {
    const got = spec === undefined ? 'is missing' : `is ${describeValue(spec)}`
    return [{ path: ['spec'], message: `spec ${got}; it must be a mapping with at least one container.` }]
  }
  const problems: ManifestProblem[] = []
  const containers = spec['containers']
  if (!Array.isArray(containers) || containers.length === 0) {
    const got = containers === undefined ? 'is missing' : Array.isArray(containers) ? 'is empty' : `is ${describeValue(containers)}`
    problems.push({ path: ['spec', 'containers'], message: `spec.containers ${got}; a Pod needs at least one container.` })
  }
  const initContainers = spec['initContainers']
  if (initContainers !== undefined && initContainers !== null && !Array.isArray(initContainers)) {
    problems.push({ path: ['spec', 'initContainers'], message: `spec.initContainers must be a list, not ${describeValue(initContainers)}.` })
  }

  // Container names are unique across containers and initContainers.
  const firstUse = new Map<string, string>()
  for (const list of ['containers', 'initContainers'] as const) {
    const items: unknown = spec[list]
    if (!Array.isArray(items)) continue
    items.forEach((container: unknown, i) => {
      problems.push(...containerProblems(container, ['spec', list, String(i)], firstUse))
    })
  }
  return problems
}

function containerProblems(container: unknown, path: string[], firstUse: Map<string, string>): ManifestProblem[] {
  const where = `${path[1]}[${path[2]}]`
  if (!isMapping(container)) {
    return [{ path, message: `spec.${where} must be a mapping (a container), not ${describeValue(container)}.` }]
  }
  const problems: ManifestProblem[] = []
  const { name, image } = container
  if (typeof name !== 'string' || name.length === 0) {
    problems.push({ path: [...path, 'name'], message: `spec.${where}.name is required and must be a string.` })
  } else if (!isDns1123Label(name)) {
    problems.push({
      path: [...path, 'name'],
      message: `Container name ${JSON.stringify(name)} is not valid: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters.`,
    })
  } else {
    const earlier = firstUse.get(name)
    if (earlier) {
      problems.push({ path: [...path, 'name'], message: `Container name ${JSON.stringify(name)} is already used by spec.${earlier}; names must be unique across containers and initContainers.` })
    } else {
      firstUse.set(name, where)
    }
  }
  if (typeof image !== 'string' || image.trim().length === 0) {
    problems.push({ path: [...path, 'image'], message: `spec.${where}.image is required: the kubelet has nothing to run without it.` })
  } else if (image.trim() !== image) {
    problems.push({ path: [...path, 'image'], message: `spec.${where}.image must not start or end with whitespace.` })
  }
  return problems
}
