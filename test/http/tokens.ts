// Tokens for tests: the documents hold only hashes, as in production.

import { createHash } from 'node:crypto'

export const TOKENS = {
  viewer: 'viewer-token-7f3a9c',
  operator: 'operator-token-2b8e41',
  admin: 'admin-token-c0ffee',
  cpOperator: 'cp-operator-token-51d2',
  edgeViewer: 'edge-viewer-token-9e77',
} as const

const sha = (t: string) => createHash('sha256').update(t).digest('hex')

export const TOKENS_DOCUMENT = JSON.stringify({
  tokens: [
    { name: 'alice-viewer', role: 'viewer', sha256: sha(TOKENS.viewer) },
    { name: 'ci-operator', role: 'operator', sha256: sha(TOKENS.operator) },
    { name: 'root-admin', role: 'admin', sha256: sha(TOKENS.admin) },
    { name: 'chatops-bot', role: 'operator', sha256: sha(TOKENS.cpOperator), nodes: ['cp-*'] },
    { name: 'edge-watcher', role: 'viewer', sha256: sha(TOKENS.edgeViewer), nodes: ['edge-?'] },
  ],
})

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
