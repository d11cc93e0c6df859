// JSON schemas of the REST routes: they validate requests and are the OpenAPI
// document served at /docs.

const errorBody = {
  type: 'object',
  description: 'A typed error: code is one of the contract\'s ErrorCode values.',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', examples: ['CONFLICT'] },
        message: { type: 'string' },
        field: { type: 'array', items: { type: 'string' } },
      },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const

const errors = {
  400: { ...errorBody, description: 'VALIDATION_FAILED: the manifest or a parameter is invalid; the field names it' },
  401: { ...errorBody, description: 'UNAUTHENTICATED: no or an unknown bearer token' },
  403: { ...errorBody, description: 'FORBIDDEN: the token\'s role or node globs do not allow it' },
  404: { ...errorBody, description: 'NOT_FOUND' },
  409: { ...errorBody, description: 'ALREADY_EXISTS' },
  412: { ...errorBody, description: 'CONFLICT: the manifest on the node does not have the If-Match hash; nothing was written' },
  423: { ...errorBody, description: 'LOCKED: another change to the node is in progress' },
  502: { ...errorBody, description: 'NODE_UNREACHABLE, NODE_UNVERIFIED or HOST_KEY_MISMATCH' },
  504: { ...errorBody, description: 'TIMEOUT' },
}

const label = { type: 'object', properties: { key: { type: 'string' }, value: { type: 'string' } } } as const

const node = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    kind: { type: 'string', enum: ['LOCAL', 'SSH'] },
    host: { type: 'string' },
    port: { type: 'integer' },
    user: { type: 'string' },
    privilege: { type: 'string', enum: ['NONE', 'SUDO'] },
    via: { type: ['string', 'null'] },
    staticPodPath: { type: 'string' },
    hostKeyFingerprint: { type: ['string', 'null'] },
    observedHostKeyFingerprint: { type: ['string', 'null'] },
    labels: { type: 'array', items: label },
  },
} as const

const containerStatus = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    image: { type: ['string', 'null'] },
    state: { type: 'string' },
    ready: { type: ['boolean', 'null'] },
    restartCount: { type: ['integer', 'null'] },
  },
} as const

const staticPod = {
  type: 'object',
  properties: {
    id: { type: 'string', description: '<node>/<namespace>/<name>' },
    node: { type: 'string' },
    namespace: { type: 'string' },
    name: { type: 'string' },
    mirrorPodName: { type: 'string', description: 'The name the kubelet gives the running pod and its mirror: <name>-<node>' },
    fileName: { type: 'string' },
    path: { type: 'string' },
    hash: { type: 'string', description: 'Lowercase hex SHA-256 of the file\'s exact bytes (also the ETag)' },
    revision: { type: 'integer' },
    managed: { type: 'boolean', description: 'Written through this service (true) or found on the node (false)' },
    observedAt: { type: 'string', format: 'date-time' },
    stale: { type: 'boolean', description: 'Served from the store because the node could not be reached just now' },
    containers: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, image: { type: 'string' }, init: { type: 'boolean' } } } },
    runtime: {
      type: ['object', 'null'],
      properties: { state: { type: 'string' }, observedAt: { type: 'string' }, containers: { type: 'array', items: containerStatus } },
    },
    manifest: { type: 'string', description: 'The file\'s exact content' },
  },
} as const

const putResult = {
  ...staticPod,
  properties: {
    ...staticPod.properties,
    changed: { type: 'boolean', description: 'false when the node already had exactly these bytes' },
    dryRun: { type: 'boolean' },
    previousHash: { type: ['string', 'null'] },
  },
} as const

const nodeParam = { node: { type: 'string', description: 'Node name' } }
const podParams = {
  type: 'object',
  properties: { ...nodeParam, namespace: { type: 'string' }, name: { type: 'string', description: 'The static pod\'s metadata.name (not the mirror pod name)' } },
  required: ['node', 'namespace', 'name'],
} as const
const maxAge = { maxAgeSeconds: { type: 'integer', minimum: 0, description: 'Serve stored state at most this old; 0 reads the node now' } }
const dryRun = { type: 'object', properties: { dryRun: { type: 'boolean', default: false, description: 'Validate and report; write nothing' } } } as const
const security = [{ bearerAuth: [] }]

export const listNodes = {
  summary: 'Registered nodes',
  tags: ['nodes'],
  security,
  response: { 200: { type: 'array', items: node }, 401: errors[401] },
}

export const listStaticPods = {
  summary: 'The static pods of one node',
  tags: ['static pods'],
  security,
  params: { type: 'object', properties: nodeParam, required: ['node'] },
  querystring: { type: 'object', properties: { namespace: { type: 'string' }, ...maxAge } },
  response: { 200: { type: 'array', items: staticPod }, 401: errors[401], 403: errors[403], 404: errors[404] },
}

export const getStaticPod = {
  summary: 'One static pod; with Accept: application/yaml, the manifest bytes',
  description: 'The ETag header is the manifest\'s hash: give it back as If-Match to PUT or DELETE.',
  tags: ['static pods'],
  security,
  params: podParams,
  querystring: { type: 'object', properties: maxAge },
  response: { 200: { ...staticPod, description: 'The static pod (JSON), or the manifest itself (application/yaml)' }, 401: errors[401], 403: errors[403], 404: errors[404] },
}

export const getStaticPodLog = {
  summary: 'A container\'s log, read on the node (as kubectl logs)',
  description:
    'Operator; every read is audited. crictl logs on the node, or where crictl is missing the kubelet\'s file under /var/log/pods (the X-Staticpod-Log-Source header says which). Lines oldest first, each with the runtime\'s timestamp. 404 when the container never ran or has no previous attempt.',
  tags: ['static pods'],
  security,
  params: podParams,
  querystring: {
    type: 'object',
    properties: {
      container: { type: 'string', maxLength: 253, description: 'May be left out when the pod has one container' },
      previous: { type: 'boolean', default: false, description: 'The attempt before the current one' },
      tailLines: { type: 'integer', minimum: 0, default: 200 },
      sinceSeconds: { type: 'integer', minimum: 1 },
      limitBytes: { type: 'integer', minimum: 1, default: 1048576 },
    },
  },
  response: { 200: { type: 'string', description: 'text/plain: the log lines' }, ...errors },
}

export const putStaticPod = {
  summary: 'Create or replace the manifest',
  description:
    'The body is the manifest (YAML or JSON), written byte for byte; its metadata.namespace and metadata.name must be the path\'s. If-Match: "<hash>" writes only if the node still has that hash (else 412); If-None-Match: * only creates.',
  tags: ['static pods'],
  security,
  params: podParams,
  querystring: dryRun,
  response: { 200: { ...putResult, description: 'Updated (or unchanged, or a dry run)' }, 201: { ...putResult, description: 'Created' }, ...errors },
}

export const patchStaticPod = {
  summary: 'Change the manifest in place with a patch',
  description:
    'The body is a patch (JSON or YAML text) in the format its Content-Type names, as the Kubernetes API takes them: application/strategic-merge-patch+json (strategic merge patch for a v1 Pod), application/merge-patch+json (RFC 7386) or application/json-patch+json (RFC 6902). It is applied to the node\'s own manifest, and only the lines it changes are written: comments, key order and formatting stay. If-Match as for PUT (412 when stale); a JSON patch test that fails is 412 too. Other content types: 415.',
  tags: ['static pods'],
  security,
  params: podParams,
  querystring: dryRun,
  response: {
    200: {
      ...putResult,
      properties: { ...putResult.properties, diff: { type: ['string', 'null'], description: 'Unified diff from the previous manifest; empty when unchanged' } },
      description: 'Patched (or unchanged, or a dry run)',
    },
    415: { ...errorBody, description: 'The Content-Type is not one of the three patch types' },
    ...errors,
  },
}

export const deleteStaticPod = {
  summary: 'Remove the manifest; the kubelet then stops the pod',
  description: 'If-Match as for PUT.',
  tags: ['static pods'],
  security,
  params: podParams,
  querystring: dryRun,
  response: {
    200: { type: 'object', description: 'Dry run: what would be deleted', properties: { deleted: { type: 'boolean' }, dryRun: { type: 'boolean' }, previousHash: { type: ['string', 'null'] } } },
    204: { type: 'null', description: 'Deleted' },
    ...errors,
  },
}
