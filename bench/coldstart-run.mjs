// One cold start: imports a bundle, sends it one API Gateway v2 event, prints
// how long after process start the answer came (performance.now() counts from
// the process's time origin) as JSON. Run by bench/coldstart.mjs.

import { pathToFileURL } from 'node:url'

const [bundle, body, token] = process.argv.slice(2)
const { handler } = await import(pathToFileURL(bundle).href)
const headers = { 'content-type': 'application/json', host: 'bench.local' }
if (token) headers.authorization = `Bearer ${token}`
const result = await handler(
  {
    version: '2.0',
    rawPath: '/graphql',
    rawQueryString: '',
    headers,
    body,
    isBase64Encoded: false,
    requestContext: { http: { method: 'POST', path: '/graphql', sourceIp: '127.0.0.1' }, requestId: 'bench', stage: '$default' },
  },
  {},
)
const ms = performance.now()
process.stdout.write(JSON.stringify({ ms, status: result.statusCode, body: result.body.slice(0, 200) }) + '\n')
process.exit(0)
