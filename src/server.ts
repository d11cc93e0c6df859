// The long-running process: parse the configuration, build the app, listen,
// and shut down gracefully (drain requests, close agents and the store).

import { buildApp } from './app.ts'
import { ConfigError, checkSshPrivateKey, loadConfig } from './config.ts'

async function main(): Promise<void> {
  let config
  try {
    config = loadConfig()
    await checkSshPrivateKey(config)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`staticpod-api: ${err.message}\n`)
      process.exit(1)
    }
    throw err
  }

  const app = await buildApp(config)
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    app.close().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'shutdown failed')
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))

  await app.listen({ host: config.host, port: config.port })
  // Only the long-running server observes on its own; Lambda runs one round per schedule (src/lambda.ts).
  app.services.observer.start()
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : config.port
  const base = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  app.log.info(
    { localNode: config.localNode, store: config.store },
    `staticpod-api serving: GraphiQL at ${base}/graphiql, GraphQL at ${base}/graphql`,
  )
}

main().catch((err: unknown) => {
  process.stderr.write(`staticpod-api: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
