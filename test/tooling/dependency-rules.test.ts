// The dependency rules of .dependency-cruiser.cjs (npm run check:deps) can
// fail: a tiny src/ tree in a temporary directory with one forbidden import per
// rule, and an import cycle made of a type-only import, gives exactly those
// violations; the same layers wired the allowed way give none. The tree is
// cruised with the repo's own config through dependency-cruiser's API (the
// `cruise` the CLI calls), from the temporary directory as the base.

import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { cruise, format } from 'dependency-cruiser'
import type { ICruiseResult } from 'dependency-cruiser'
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options'

const config = fileURLToPath(new URL('../../.dependency-cruiser.cjs', import.meta.url))

type Tree = Record<string, string>

// npm packages as the repo resolves them (node_modules/<name>/...), without
// installing anything: one I/O package and one pure one.
const packages: Tree = {
  'node_modules/ssh2/package.json': '{ "name": "ssh2", "main": "lib/index.js" }',
  'node_modules/ssh2/lib/index.js': 'module.exports = {}\n',
  'node_modules/@aws-sdk/client-dynamodb/package.json': '{ "name": "@aws-sdk/client-dynamodb", "main": "index.js" }',
  'node_modules/@aws-sdk/client-dynamodb/index.js': 'module.exports = {}\n',
  'node_modules/yaml/package.json': '{ "name": "yaml", "main": "index.js" }',
  'node_modules/yaml/index.js': 'module.exports = {}\n',
}

// The layers every tree has, importing nothing forbidden.
const layers: Tree = {
  'src/domain.ts': "import type { Finding } from './manifest/types.ts'\nexport interface NodeRecord { name: string; findings: Finding[] }\n",
  'src/manifest/types.ts': 'export interface Finding { code: string }\n',
  'src/store/store.ts': "import type { NodeRecord } from '../domain.ts'\nexport interface Store { node(name: string): Promise<NodeRecord | null> }\n",
  'src/agents/agent.ts': "import type { NodeRecord } from '../domain.ts'\nexport interface Agent { read(node: NodeRecord): Promise<string> }\n",
  'src/services/nodes.ts':
    "import type { Store } from '../store/store.ts'\nimport type { Agent } from '../agents/agent.ts'\n" +
    'export class NodeService { constructor(readonly store: Store, readonly agent: Agent) {} }\n',
}

const clean: Tree = {
  ...packages,
  ...layers,
  'src/manifest/parse.ts':
    "import { createHash } from 'node:crypto'\nimport yaml from 'yaml'\nimport type { NodeRecord } from '../domain.ts'\n" +
    'export const parse = (text: string, _node?: NodeRecord) => [yaml, createHash("sha256").update(text).digest("hex")]\n',
  'src/graphql/resolvers.ts': "import type { NodeService } from '../services/nodes.ts'\nexport const resolvers = (nodes: NodeService) => ({ nodes })\n",
  'src/rest/routes.ts': "import { NodeService } from '../services/nodes.ts'\nimport type { NodeRecord } from '../domain.ts'\nexport const routes = [NodeService] as unknown as NodeRecord[]\n",
  'src/store/sqlite.ts': "import type { Store } from './store.ts'\nimport type { NodeRecord } from '../domain.ts'\nexport type Sqlite = Store & { last?: NodeRecord }\n",
  'src/agents/ssh.ts': "import type { Agent } from './agent.ts'\nexport type Ssh = Agent & { ssh2?: typeof import('ssh2') }\n",
  'src/diagnosis/certificates.ts':
    "import { X509Certificate } from 'node:crypto'\nimport type { Finding } from '../manifest/types.ts'\nexport const parse = (pem: string): Finding[] => [{ code: new X509Certificate(pem).subject }]\n",
  'src/events/derive.ts':
    "import { createHash } from 'node:crypto'\nimport type { NodeRecord } from '../domain.ts'\nimport { parse } from '../diagnosis/certificates.ts'\n" +
    "export const key = (node: NodeRecord) => [parse, createHash('sha256').update(node.name).digest('hex')]\n",
  // A client of the API: node:fs, the network, yaml, and the records of src/domain.ts are fine.
  'src/cli/main.ts':
    "import { readFileSync } from 'node:fs'\nimport { request } from 'node:http'\nimport yaml from 'yaml'\nimport type { NodeRecord } from '../domain.ts'\n" +
    'export const main = (node: NodeRecord) => [readFileSync, request, yaml, node.name]\n',
}

// One forbidden import per rule (the manifest rule once per kind of I/O), the
// agents rule once by a type-only import, and a cycle closed by `import type`.
const violating: Tree = {
  ...clean,
  'src/graphql/resolvers.ts': "import type { Store } from '../store/store.ts'\nexport const resolvers = (store: Store) => ({ store })\n",
  'src/rest/routes.ts': "import type { Agent } from '../agents/agent.ts'\nexport const routes = (agent: Agent) => [agent]\n",
  'src/agents/ssh.ts': "import type { Store } from '../store/store.ts'\nexport type Ssh = { store: Store }\n",
  'src/agents/local.ts': "import { NodeService } from '../services/nodes.ts'\nexport const local = NodeService\n",
  'src/manifest/parse.ts':
    "import { readFileSync } from 'node:fs'\nimport { Client } from 'ssh2'\nimport { DynamoDBClient } from '@aws-sdk/client-dynamodb'\n" +
    "import type { Store } from '../store/store.ts'\nexport const parse = (store: Store) => [readFileSync, Client, DynamoDBClient, store]\n",
  'src/store/sqlite.ts': "import { NodeService } from '../services/nodes.ts'\nexport const sqlite = NodeService\n",
  'src/diagnosis/certificates.ts': "import type { Agent } from '../agents/agent.ts'\nexport const read = (agent: Agent) => [agent]\n",
  'src/events/derive.ts': "import type { NodeService } from '../services/nodes.ts'\nexport const derive = (nodes: NodeService) => [nodes]\n",
  'src/cli/main.ts':
    "import { NodeService } from '../services/nodes.ts'\nimport type { Store } from '../store/store.ts'\nimport type { Agent } from '../agents/agent.ts'\n" +
    'export const main = (store: Store, agent: Agent) => [NodeService, store, agent]\n',
  'src/services/readiness.ts': "import type { StaticPods } from './static-pods.ts'\nexport type Readiness = { pods: StaticPods }\n",
  'src/services/static-pods.ts': "import type { Readiness } from './readiness.ts'\nexport class StaticPods { readiness?: Readiness }\n",
}

async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [path, text] of Object.entries(tree)) {
    await mkdir(dirname(join(root, path)), { recursive: true })
    await writeFile(join(root, path), text)
  }
}

// The violations, and the exit status of `depcruise` (its `err` reporter's).
async function check(root: string): Promise<{ exitCode: number; violations: string[] }> {
  const options = await extractDepcruiseOptions(config)
  const result = await cruise(['src'], { ...options, baseDir: root, outputType: 'json' })
  const output = (typeof result.output === 'string' ? JSON.parse(result.output) : result.output) as ICruiseResult
  // A cycle is reported once, on one of its edges: name it by its members
  // (objects since dependency-cruiser 16, plain names before).
  const violations = output.summary.violations
    .map((v) => (v.cycle ? `${v.rule.name}: ${v.cycle.map((c) => (typeof c === 'string' ? c : c.name)).sort().join(' <-> ')}` : `${v.rule.name}: ${v.from} -> ${v.to}`))
    .sort()
  const { exitCode } = await format(output, { outputType: 'err' })
  return { exitCode, violations }
}

describe('dependency rules (.dependency-cruiser.cjs)', () => {
  let base: string
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'staticpod-api-depcruise-'))
  })
  after(async () => {
    await rm(base, { recursive: true, force: true })
  })

  it('reports every forbidden import and the cycle, and nothing else', async () => {
    const root = join(base, 'violating')
    await writeTree(root, violating)
    const { exitCode, violations } = await check(root)
    assert.deepEqual(violations, [
      'agents-not-to-store-or-services: src/agents/local.ts -> src/services/nodes.ts',
      'agents-not-to-store-or-services: src/agents/ssh.ts -> src/store/store.ts',
      'cli-is-a-client: src/cli/main.ts -> src/agents/agent.ts',
      'cli-is-a-client: src/cli/main.ts -> src/services/nodes.ts',
      'cli-is-a-client: src/cli/main.ts -> src/store/store.ts',
      'diagnosis-is-pure: src/diagnosis/certificates.ts -> src/agents/agent.ts',
      'events-is-pure: src/events/derive.ts -> src/services/nodes.ts',
      'manifest-is-pure: src/manifest/parse.ts -> fs',
      'manifest-is-pure: src/manifest/parse.ts -> node_modules/@aws-sdk/client-dynamodb/index.js',
      'manifest-is-pure: src/manifest/parse.ts -> node_modules/ssh2/lib/index.js',
      'manifest-is-pure: src/manifest/parse.ts -> src/store/store.ts',
      'no-circular: src/services/readiness.ts <-> src/services/static-pods.ts',
      'store-not-to-services: src/store/sqlite.ts -> src/services/nodes.ts',
      'transports-not-to-store-or-agents: src/graphql/resolvers.ts -> src/store/store.ts',
      'transports-not-to-store-or-agents: src/rest/routes.ts -> src/agents/agent.ts',
    ])
    assert.ok(exitCode > 0, 'every rule is an error, so check:deps exits non-zero')
  })

  it('passes the same layers wired the allowed way', async () => {
    const root = join(base, 'clean')
    await writeTree(root, clean)
    assert.deepEqual(await check(root), { exitCode: 0, violations: [] })
  })
})
