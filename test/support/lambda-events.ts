// API Gateway HTTP API (payload format 2.0) events, shaped as API Gateway
// sends them to a function, and a local stand-in for SSM's GetParameter.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { HttpApiEvent } from '../../src/lambda.ts'

export function httpApiEvent(method: string, pathWithQuery: string, opts: { headers?: Record<string, string>; body?: string } = {}): HttpApiEvent {
  const [rawPath = '/', rawQueryString = ''] = pathWithQuery.split('?')
  const headers: Record<string, string> = { host: 'abc123.execute-api.eu-west-1.amazonaws.com', 'user-agent': 'lambda-test', ...opts.headers }
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body))
  return {
    version: '2.0',
    rawPath,
    rawQueryString,
    headers,
    body: opts.body,
    isBase64Encoded: false,
    requestContext: {
      http: { method, path: rawPath, sourceIp: '203.0.113.7' },
      requestId: `req-${Math.random().toString(16).slice(2)}`,
      stage: '$default',
    },
  }
}

export function graphqlEvent(query: string, variables: Record<string, unknown> = {}, token?: string): HttpApiEvent {
  return httpApiEvent('POST', '/graphql', {
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  })
}

/**
 * SSM's GetParameter (AWS JSON 1.1) on 127.0.0.1, answering from `parameters`.
 * Point the SDK at it with AWS_ENDPOINT_URL_SSM. The real client and its
 * request signing run; only AWS is replaced.
 */
export async function startFakeSsm(parameters: Record<string, string>): Promise<{ endpoint: string; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => (body += c))
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '')
      const { Name, WithDecryption } = JSON.parse(body || '{}') as { Name?: string; WithDecryption?: boolean }
      requests.push(`${target} ${Name} decrypt=${WithDecryption}`)
      const value = Name === undefined ? undefined : parameters[Name]
      res.setHeader('content-type', 'application/x-amz-json-1.1')
      if (target !== 'AmazonSSM.GetParameter' || value === undefined) {
        res.statusCode = 400
        res.end(JSON.stringify({ __type: 'ParameterNotFound', message: `no parameter ${Name}` }))
        return
      }
      res.end(JSON.stringify({ Parameter: { Name, Type: 'SecureString', Value: value, Version: 1 } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}
