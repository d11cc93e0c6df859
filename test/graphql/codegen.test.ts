// The generated resolver types cannot drift from the SDL: this regenerates
// them in memory from codegen.yml (the file `npm run codegen` uses) and fails
// when what is committed under src/graphql/generated/ differs, so a change to
// schema/*.graphql without `npm run codegen` fails `npm test`.

import assert from 'node:assert/strict'
import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { generate, loadCodegenConfig, type CodegenConfig } from '@graphql-codegen/cli'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const GENERATED_DIR = 'src/graphql/generated'

interface Output {
  filename: string
  content: string
}

async function codegenConfig(): Promise<CodegenConfig> {
  const loaded = await loadCodegenConfig({ configFilePath: join(ROOT, 'codegen.yml') })
  assert.ok(loaded?.config, 'codegen.yml is there and not empty')
  return loaded.config as CodegenConfig
}

/** What codegen makes of the config, in memory (nothing is written). */
async function generated(config: CodegenConfig): Promise<Output[]> {
  return (await generate({ ...config, cwd: ROOT, silent: true }, false)) as Output[]
}

describe('generated resolver types', () => {
  it('are exactly what codegen.yml makes of schema/*.graphql (else: npm run codegen)', async () => {
    const outputs = await generated(await codegenConfig())
    assert.ok(outputs.length > 0, 'codegen.yml generates something')
    for (const output of outputs) {
      assert.ok(output.filename.startsWith(`${GENERATED_DIR}/`), `${output.filename}: generated files go under ${GENERATED_DIR}/`)
      const committed = await readFile(join(ROOT, output.filename), 'utf8').catch(() => null)
      assert.ok(committed !== null, `${output.filename} is missing: run \`npm run codegen\` and commit it`)
      assert.ok(
        committed === output.content,
        `${output.filename} is not what codegen.yml makes of schema/*.graphql (the SDL or codegen.yml changed without it): run \`npm run codegen\` and commit the result`,
      )
    }
    const files = (await readdir(join(ROOT, GENERATED_DIR))).map((f) => `${GENERATED_DIR}/${f}`).sort()
    assert.deepEqual(files, outputs.map((o) => o.filename).sort(), `only generated files live in ${GENERATED_DIR}/ (a stale one left behind?)`)
  })

  it('change with the SDL, so the comparison above sees a change', async () => {
    const config = await codegenConfig()
    const [output] = await generated({ ...config, schema: [config.schema ?? [], 'extend type Query { drifted(since: Int): Int }'].flat() })
    assert.ok(output)
    assert.match(output.content, /drifted\?: Resolver<Maybe<ResolversTypes\['Int'\]>, ParentType, ContextType, Partial<QueryDriftedArgs>>/)
    const committed = await readFile(join(ROOT, output.filename), 'utf8')
    assert.notEqual(committed, output.content)
  })
})
