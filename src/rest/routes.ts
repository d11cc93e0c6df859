// The small REST surface of the contract, on the same services as GraphQL:
// handlers read the request, call a service, and pick the answer's fields; the
// services hold every rule. ETag is the manifest's hash, If-Match gives
// compare-and-swap (412), Accept: application/yaml gives the manifest bytes.
// Errors are {"error": {"code", "message", "field"}} with the contract's
// status codes.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { HTTP_STATUS, ServiceError, isServiceError, quoteInput, type ErrorCode, type UserError } from '../errors.ts'
import { requireActor } from '../http/auth.ts'
import type { Services } from '../services/index.ts'
import { nodeAddressOf } from '../services/nodes.ts'
import type { StaticPodView } from '../services/static-pod-view.ts'
import type { NodeKind, NodeRecord } from '../domain.ts'
import type { PatchType } from '../manifest/change.ts'
import * as schemas from './schemas.ts'

interface PodParams {
  node: string
  namespace: string
  name: string
}

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml']

/** The patch content types the Kubernetes API takes, and the patch type each means. */
const PATCH_TYPES: Record<string, PatchType> = {
  'application/strategic-merge-patch+json': 'STRATEGIC',
  'application/merge-patch+json': 'MERGE',
  'application/json-patch+json': 'JSON',
}

export async function restRoutes(app: FastifyInstance, opts: { services: Services }): Promise<void> {
  const { services } = opts
  const actor = requireActor

  // A PUT body is the manifest: keep its exact bytes, whatever its content type.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown }, request, reply) => {
    if (isServiceError(error)) return sendError(reply, error.code, error.message, error.field)
    if (error.validation) return sendError(reply, 'VALIDATION_FAILED', error.message)
    if (typeof error.statusCode === 'number' && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ error: { code: error.statusCode === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST', message: error.message } })
    }
    request.log.error({ err: error }, 'unexpected error in a REST handler')
    return reply.code(500).send({ error: { code: 'INTERNAL_SERVER_ERROR', message: 'Internal server error' } })
  })
  app.setNotFoundHandler((request, reply) => sendError(reply, 'NOT_FOUND', `no route ${request.method} ${quoteInput(request.url.split('?')[0] ?? '', 200)}`))

  app.get('/api/v1/nodes', { schema: schemas.listNodes }, async (request) => (await services.nodes.list(actor(request))).map(nodeJson))

  app.get<{ Params: { node: string }; Querystring: { namespace?: string; maxAgeSeconds?: number } }>(
    '/api/v1/nodes/:node/staticpods',
    { schema: schemas.listStaticPods },
    async (request, reply) => {
      const { pods, failures } = await services.staticPods.list({ node: request.params.node, ...request.query }, actor(request))
      warnIfStale(reply, failures)
      return pods.map(staticPodJson)
    },
  )

  app.get<{ Params: PodParams; Querystring: { maxAgeSeconds?: number } }>(
    '/api/v1/nodes/:node/staticpods/:namespace/:name',
    { schema: schemas.getStaticPod },
    async (request, reply) => {
      const { pod, failures } = await services.staticPods.get({ ...request.params, ...request.query }, actor(request))
      if (!pod) throw new ServiceError('NOT_FOUND', `node ${request.params.node} has no static pod ${request.params.namespace}/${request.params.name}`)
      warnIfStale(reply, failures)
      reply.header('etag', `"${pod.hash}"`)
      if (wantsYaml(request)) return reply.type('application/yaml; charset=utf-8').send(pod.manifest)
      return staticPodJson(pod)
    },
  )

  // As `kubectl logs`: the lines as text, oldest first.
  app.get<{ Params: PodParams; Querystring: { container?: string; previous?: boolean; tailLines?: number; sinceSeconds?: number; limitBytes?: number } }>(
    '/api/v1/nodes/:node/staticpods/:namespace/:name/log',
    { schema: schemas.getStaticPodLog },
    async (request, reply) => {
      const { pod } = await services.staticPods.get(request.params, actor(request))
      if (!pod) throw new ServiceError('NOT_FOUND', `node ${request.params.node} has no static pod ${request.params.namespace}/${request.params.name}`)
      const log = await services.diagnosis.containerLog(pod, request.query, actor(request))
      reply.header('x-staticpod-log-source', log.source)
      if (log.truncated) reply.header('x-staticpod-log-truncated', 'true')
      return reply.type('text/plain; charset=utf-8').send(log.lines.map((l) => `${l}\n`).join(''))
    },
  )

  app.put<{ Params: PodParams; Querystring: { dryRun?: boolean } }>(
    '/api/v1/nodes/:node/staticpods/:namespace/:name',
    { schema: schemas.putStaticPod },
    async (request, reply) => {
      const body = request.body
      if (!Buffer.isBuffer(body) || body.length === 0) throw new ServiceError('VALIDATION_FAILED', 'the request body must be the manifest (YAML or JSON)', ['manifest'])
      const precondition = ifMatch(request)
      const result = await services.staticPods.putStaticPod(
        {
          ...request.params,
          manifest: body,
          expectedHash: precondition === '*' ? null : precondition,
          mustNotExist: request.headers['if-none-match'] === '*',
          mustExist: precondition === '*',
          dryRun: request.query.dryRun ?? false,
        },
        actor(request),
      )
      const failure = result.userErrors[0]
      if (failure) return sendUserError(reply, failure)
      const pod = result.staticPod as StaticPodView
      reply.header('etag', `"${pod.hash}"`)
      return reply.code(result.created && !result.dryRun ? 201 : 200).send({ ...staticPodJson(pod), changed: result.changed, dryRun: result.dryRun, previousHash: result.previousHash })
    },
  )

  app.patch<{ Params: PodParams; Querystring: { dryRun?: boolean } }>(
    '/api/v1/nodes/:node/staticpods/:namespace/:name',
    { schema: schemas.patchStaticPod },
    async (request, reply) => {
      const contentType = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
      const patchType = PATCH_TYPES[contentType]
      if (!patchType) {
        return reply.code(415).send({
          error: { code: 'VALIDATION_FAILED', message: `Content-Type must be one of ${Object.keys(PATCH_TYPES).join(', ')}; got ${quoteInput(contentType || '(none)')}`, field: ['Content-Type'] },
        })
      }
      const body = request.body
      if (!Buffer.isBuffer(body) || body.length === 0) throw new ServiceError('VALIDATION_FAILED', 'the request body must be the patch (JSON or YAML)', ['change', 'patch'])
      const precondition = ifMatch(request)
      const result = await services.staticPods.patchStaticPod(
        {
          ...request.params,
          change: { patch: body.toString('utf8'), patchType },
          expectedHash: precondition === '*' ? null : precondition,
          dryRun: request.query.dryRun ?? false,
        },
        actor(request),
      )
      const failure = result.userErrors[0]
      if (failure) return sendUserError(reply, failure)
      const pod = result.staticPod as StaticPodView
      reply.header('etag', `"${pod.hash}"`)
      return { ...staticPodJson(pod), changed: result.changed, dryRun: result.dryRun, previousHash: result.previousHash, diff: result.diff }
    },
  )

  app.delete<{ Params: PodParams; Querystring: { dryRun?: boolean } }>(
    '/api/v1/nodes/:node/staticpods/:namespace/:name',
    { schema: schemas.deleteStaticPod },
    async (request, reply) => {
      const precondition = ifMatch(request)
      const result = await services.staticPods.deleteStaticPod(
        { ...request.params, expectedHash: precondition === '*' ? null : precondition, dryRun: request.query.dryRun ?? false },
        actor(request),
      )
      const failure = result.userErrors[0]
      if (failure) return sendUserError(reply, failure)
      return reply.code(result.dryRun ? 200 : 204).send(result.dryRun ? { deleted: true, dryRun: true, previousHash: result.previousHash } : undefined)
    },
  )
}

// ---------------------------------------------------------------- shaping

/** The REST names of the node kinds: the GraphQL NodeKind enum's (src/rest/schemas.ts lists the same). */
const NODE_KIND_NAMES: Record<NodeKind, 'LOCAL' | 'SSH'> = { local: 'LOCAL', ssh: 'SSH' }

function nodeJson(node: NodeRecord) {
  return {
    name: node.name,
    kind: NODE_KIND_NAMES[node.kind],
    ...nodeAddressOf(node),
    staticPodPath: node.staticPodPath,
    labels: node.labels,
  }
}

function staticPodJson(pod: StaticPodView) {
  return {
    id: pod.id,
    node: pod.nodeName,
    namespace: pod.namespace,
    name: pod.name,
    mirrorPodName: pod.mirrorPodName,
    fileName: pod.fileName,
    path: pod.path,
    hash: pod.hash,
    revision: pod.revision,
    managed: pod.managed,
    observedAt: pod.observedAt,
    stale: pod.stale,
    containers: pod.containers,
    runtime: pod.runtime,
    manifest: pod.manifest,
  }
}

// ---------------------------------------------------------------- helpers

function sendError(reply: FastifyReply, code: ErrorCode, message: string, field?: string[] | null): FastifyReply {
  return reply.code(HTTP_STATUS[code]).send({ error: { code, message, ...(field ? { field } : {}) } })
}

function sendUserError(reply: FastifyReply, error: UserError): FastifyReply {
  return sendError(reply, error.code, error.message, error.field)
}

/** The hash an If-Match names ('*' for any), or null without the header. */
function ifMatch(request: FastifyRequest): string | null {
  const header = request.headers['if-match']
  if (header === undefined) return null
  const value = header.trim()
  if (value === '*') return '*'
  const match = /^(?:W\/)?"([0-9a-f]{64})"$/i.exec(value)
  if (!match?.[1]) throw new ServiceError('VALIDATION_FAILED', 'If-Match must be the quoted hash of the manifest (its ETag), or *', ['If-Match'])
  return match[1].toLowerCase()
}

function wantsYaml(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? ''
  return YAML_TYPES.some((t) => accept.includes(t)) && !accept.includes('application/json')
}

/** A node that could not be read just now: the data is its last observed state. */
function warnIfStale(reply: FastifyReply, failures: Array<{ node: string; error: ServiceError }>): void {
  const failure = failures[0]
  if (failure) reply.header('warning', `110 staticpod-api "node ${failure.node} not reachable (${failure.error.code}); served from the store"`)
}
