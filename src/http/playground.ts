// The GraphiQL playground, served with every asset from this process (out of
// the graphiql, react and react-dom packages): mercurius's built-in page loads
// them from a public CDN and stays blank on a network without internet, which
// is exactly where a break-glass tool is needed.

import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'

const require = createRequire(import.meta.url)

const ASSETS: Record<string, { pkg: string; file: string; type: string }> = {
  'react.production.min.js': { pkg: 'react', file: 'umd/react.production.min.js', type: 'text/javascript; charset=utf-8' },
  'react-dom.production.min.js': { pkg: 'react-dom', file: 'umd/react-dom.production.min.js', type: 'text/javascript; charset=utf-8' },
  'graphiql.min.js': { pkg: 'graphiql', file: 'graphiql.min.js', type: 'text/javascript; charset=utf-8' },
  'graphiql.min.css': { pkg: 'graphiql', file: 'graphiql.min.css', type: 'text/css; charset=utf-8' },
}

/** A file of an installed package (its exports map does not list the UMD builds). */
function packageFile(pkg: string, file: string): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), file)
}

/** Opens in the playground: what an operator asks first. */
const EXAMPLE_QUERY = `# staticpod-api: the static pods of every node, read from the nodes
# themselves (no API server needed). Press the play button to run it.
# With tokens configured, add {"Authorization": "Bearer <token>"} under Headers.
query Overview {
  cluster {
    nodeCount
    apiServer { configured reachable error }
  }
  nodes {
    name
    kind
    staticPodPath
    agent { reachable lastError latencyMs }
    findings { code fileName message }
    staticPods {
      namespace
      name
      fileName
      hash
      revision
      managed
      stale
      containers { name image }
    }
  }
}
`

function page(base: string): string {
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>staticpod-api · GraphiQL</title>
  <link rel="stylesheet" href="${base}/graphiql.min.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Loading the playground…</div>
  <script src="${base}/react.production.min.js"></script>
  <script src="${base}/react-dom.production.min.js"></script>
  <script src="${base}/graphiql.min.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: new URL('/graphql', location.href).href });
    const root = ReactDOM.createRoot(document.getElementById('graphiql'));
    root.render(React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: ${JSON.stringify(EXAMPLE_QUERY)},
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
    }));
  </script>
</body>
</html>
`
}

export async function playgroundRoutes(app: FastifyInstance): Promise<void> {
  // Read from disk at each request, not kept: 3.8 MB the process would hold for a page few ever open.
  // Found at start, so that a missing file stops the start rather than the playground.
  const assets = new Map(Object.entries(ASSETS).map(([name, a]) => [name, { path: packageFile(a.pkg, a.file), type: a.type }]))
  for (const { path } of assets.values()) if (!existsSync(path)) throw new Error(`playground asset missing: ${path}`)
  const html = page('/graphiql/assets')
  const headers = {
    'cache-control': 'no-cache',
    // Everything from here: a page that tried to load from elsewhere would fail loudly, not hang.
    'content-security-policy': "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'",
  }
  app.get('/graphiql', { schema: { hide: true } }, async (_request, reply) => reply.headers(headers).type('text/html; charset=utf-8').send(html))
  app.get<{ Params: { asset: string } }>('/graphiql/assets/:asset', { schema: { hide: true } }, async (request, reply) => {
    const asset = assets.get(request.params.asset)
    if (!asset) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'no such asset' } })
    return reply.header('cache-control', 'public, max-age=3600').type(asset.type).send(await readFile(asset.path))
  })
}
