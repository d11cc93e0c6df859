// The GraphiQL playground, served with every asset from this process (out of
// the graphiql, react, react-dom and graphql-ws packages): mercurius's built-in
// page loads them from a public CDN and stays blank on a network without
// internet, which is exactly where a break-glass tool is needed.
//
// Queries and mutations go over HTTP (POST /graphql), subscriptions over a
// WebSocket on /graphql (graphql-ws, subprotocol graphql-transport-ws) whose
// connection_init payload is what the Headers editor holds: the server takes
// the token from there ({"Authorization": "Bearer ..."}), since a browser
// cannot set headers on a WebSocket upgrade.

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
  // The UMD build: defines the global graphqlWs (createClient).
  'graphql-ws.min.js': { pkg: 'graphql-ws', file: 'umd/graphql-ws.min.js', type: 'text/javascript; charset=utf-8' },
}

/** A file of an installed package (its exports map does not list the UMD builds). */
function packageFile(pkg: string, file: string): string {
  return join(dirname(require.resolve(`${pkg}/package.json`)), file)
}

/** Opens in the playground: what an operator asks first. */
const EXAMPLE_QUERY = `# staticpod-api: the static pods of every node, read from the nodes
# themselves (no API server needed). Press the play button to run it.
# With tokens configured, add {"Authorization": "Bearer <token>"} under Headers.
# Subscriptions run here too, over a WebSocket with those headers:
#   subscription { events { id type node message } }
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
  <script src="${base}/graphql-ws.min.js"></script>
  <script>
    const { getOperationAST, parse } = GraphiQL.GraphQL;
    const httpUrl = new URL('/graphql', location.href);
    const wsUrl = new URL(httpUrl);
    wsUrl.protocol = httpUrl.protocol === 'https:' ? 'wss:' : 'ws:';

    // Queries and mutations: GraphiQL's own HTTP fetcher (@graphiql/toolkit's createGraphiQLFetcher),
    // with the Headers editor's headers.
    const http = GraphiQL.createFetcher({ url: httpUrl.href });

    // One graphql-ws client per Headers editor content (its connection_init payload, where the server
    // looks for the token), made by the first subscription that runs with it, kept for the next ones,
    // and closed once a subscription runs with other headers. Lazy: a socket only while a subscription runs.
    let ws = null;
    function wsClientFor(headers) {
      const key = JSON.stringify(headers || {});
      if (!ws || ws.key !== key) {
        if (ws) ws.client.dispose();
        // No retries: a refused token (4403) is shown at once, and the user runs the subscription again.
        ws = { key, client: graphqlWs.createClient({ url: wsUrl.href, connectionParams: headers || {}, retryAttempts: 0 }) };
      }
      return ws.client;
    }

    // The selected operation of the text sent (toolkit's test, on opts.documentAST, can be the document
    // before the last keystrokes: GraphiQL parses the editor's text on a debounce). Unparsable: over HTTP,
    // for the server to report.
    function isSubscription(params) {
      try {
        const operation = getOperationAST(parse(params.query), params.operationName || undefined);
        return operation !== null && operation.operation === 'subscription';
      } catch {
        return false;
      }
    }

    // A refused token as an error that says so: mercurius answers a refused connection_init with a
    // connection_error message (not in the graphql-transport-ws protocol, whose answer is a close with
    // 4403), which graphql-ws rejects as an invalid message. Other closes: their code and reason.
    function readable(error) {
      const refused = (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent && error.code === 4403) || /connection_error/.test(String(error && error.message));
      if (refused) return new Error('the server refused the subscription connection (Forbidden): put {"Authorization": "Bearer <token>"} with a valid token under Headers');
      if (typeof CloseEvent !== 'undefined' && error instanceof CloseEvent) return new Error(('socket closed with event ' + error.code + ' ' + (error.reason || '')).trim());
      return error;
    }

    // GraphiQL shows each result of an observable as it comes; unsubscribing (its stop button, or the
    // next run) completes the subscription at the server.
    function fetcher(params, opts) {
      const headers = opts && opts.headers;
      if (!isSubscription(params)) return http(params, { headers });
      const client = wsClientFor(headers);
      return {
        subscribe(observer) {
          const unsubscribe = client.subscribe(params, {
            next: (result) => observer.next(result),
            error: (error) => observer.error(readable(error)),
            complete: () => observer.complete(),
          });
          return { unsubscribe };
        },
      };
    }
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
