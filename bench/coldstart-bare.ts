// The baseline of bench:coldstart: a bare Fastify + Mercurius app of the same
// shape as src/lambda.ts (GraphQL at /graphql, /healthz, behind
// @fastify/aws-lambda, built on the first invocation), with nothing of ours.

import awsLambdaFastify from '@fastify/aws-lambda'
import Fastify from 'fastify'
import mercurius from 'mercurius'

type Proxy = (event: unknown, context: never) => Promise<unknown>

let proxy: Promise<Proxy> | undefined

async function build(): Promise<Proxy> {
  const app = Fastify({ logger: false })
  await app.register(mercurius, {
    schema: 'type Query { hello: String! }',
    resolvers: { Query: { hello: async () => 'world' } },
    path: '/graphql',
  })
  app.get('/healthz', async () => ({ status: 'ok' }))
  const handler = awsLambdaFastify(app, { callbackWaitsForEmptyEventLoop: false })
  await app.ready()
  return handler
}

export async function handler(event: unknown, context: unknown): Promise<unknown> {
  proxy ??= build()
  return (await proxy)(event, context as never)
}
