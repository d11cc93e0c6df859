// The baseline: a bare Fastify + Mercurius server with the same StaticPod
// shape, answering `staticPods` from an in-memory array (no store, no rules).
//
// It gets the cheap options a bare Fastify + Mercurius user would set too, so
// that the service is not measured against a handicapped baseline: mercurius's
// jit, with the service's own setting (src/app.ts, the mercurius block; keep
// the two the same). BARE_JIT=off serves it with graphql-js instead, to show
// what the jit alone is worth (bench/graphql/run.ts reports both).

import Fastify from 'fastify'
import mercurius from 'mercurius'
import { createHash } from 'node:crypto'
import { POD_NAMES, manifestFor } from './seed.ts'

const nodes = Number(process.env.BENCH_NODES ?? 1000)
const podsPerNode = Number(process.env.BENCH_PODS ?? 8)
const jit = process.env.BARE_JIT === 'off' ? undefined : { minCount: 2, eluThreshold: 1 }
const observedAt = new Date().toISOString()
const pods = Array.from({ length: nodes }, (_, n) =>
  POD_NAMES.slice(0, podsPerNode).map((pod) => {
    const nodeName = `cp-${String(n).padStart(4, '0')}`
    const manifest = manifestFor(n, pod)
    return {
      id: `${nodeName}/kube-system/${pod}`,
      nodeName,
      namespace: 'kube-system',
      name: pod,
      mirrorPodName: `${pod}-${nodeName}`,
      fileName: `${pod}.yaml`,
      hash: createHash('sha256').update(manifest).digest('hex'),
      revision: 1,
      managed: false,
      stale: false,
      observedAt,
    }
  }),
).flat()

const schema = `
  type StaticPod { id: ID! nodeName: String! namespace: String! name: String! mirrorPodName: String! fileName: String! hash: String! revision: Int! managed: Boolean! stale: Boolean! observedAt: String! }
  type Query { staticPods(node: String, namespace: String, maxAgeSeconds: Int): [StaticPod!]! }
`
const app = Fastify({ logger: false })
await app.register(mercurius, { schema, resolvers: { Query: { staticPods: () => pods } }, ...(jit ? { jit } : {}) })
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
const address = app.server.address()
process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`)
