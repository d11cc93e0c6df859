#!/usr/bin/env node
// Bundles src/lambda.ts for AWS Lambda into dist/lambda/: one ESM file with
// every dependency inside, plus the few files the app reads at run time. No
// node_modules are shipped.
//
//   node scripts/build-lambda.mjs [--entry src/lambda.ts] [--out dist/lambda]
//
// Left out, all native: better-sqlite3 (SQLite is not used on Lambda, and
// src/store/open.ts imports it only for STORE_URL=sqlite:...), cpu-features and
// ssh2's own sshcrypto.node (both optional: ssh2 falls back to Node's crypto).

import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { tsImport } from 'tsx/esm/api'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(join(root, 'package.json'))

const { values } = parseArgs({
  options: {
    entry: { type: 'string', default: 'src/lambda.ts' },
    out: { type: 'string', default: 'dist/lambda' },
    name: { type: 'string', default: 'lambda' },
  },
})

const NATIVE_MODULES = ['better-sqlite3', 'cpu-features']

// Files the bundled code reads from disk at start, as [package, file in it,
// where the bundle looks for it]. The GraphiQL assets mirror ASSETS in
// src/http/playground.ts, which finds them with require.resolve('<pkg>/package.json')
// from the bundle's directory; @fastify/swagger-ui reads its logo from
// __dirname/static. test/lambda-bundle.test.ts starts the bundle and fetches
// every asset the playground page links, so a file missing here fails a test,
// not a cold start.
const RUNTIME_FILES = [
  ...['package.json', 'umd/react.production.min.js'].map((f) => ['react', f, `node_modules/react/${f}`]),
  ...['package.json', 'umd/react-dom.production.min.js'].map((f) => ['react-dom', f, `node_modules/react-dom/${f}`]),
  ...['package.json', 'graphiql.min.js', 'graphiql.min.css'].map((f) => ['graphiql', f, `node_modules/graphiql/${f}`]),
  ...['package.json', 'umd/graphql-ws.min.js'].map((f) => ['graphql-ws', f, `node_modules/graphql-ws/${f}`]),
  ['@fastify/swagger-ui', 'static/logo.svg', 'static/logo.svg'],
]

/** The SQLite store, replaced by a module that says why it is not there. */
const noSqlite = {
  name: 'no-sqlite',
  setup(b) {
    // The filter sees the specifier as written ('./sqlite.ts' in src/store/open.ts), so the importer is checked too.
    b.onResolve({ filter: /(^|[/\\])sqlite\.ts$/ }, (args) =>
      /[/\\]src[/\\]store[/\\]/.test(args.importer) ? { path: args.path, namespace: 'no-sqlite' } : undefined,
    )
    b.onLoad({ filter: /.*/, namespace: 'no-sqlite' }, () => ({
      contents: `export const SqliteStore = { open() { throw new Error('this bundle has no SQLite store (native module left out): use STORE_URL=dynamodb:<table>') } }`,
      loader: 'js',
    }))
  },
}

/**
 * zod's locales (error messages in 40-odd languages, a third of the package as
 * bundled) replaced by English alone, the one zod configures and the one we
 * use. zod's namespace object `z` exports them as `z.locales`, so esbuild
 * cannot drop them even though nothing reads them: without this they are
 * parsed at every cold start.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[/\\]zod[/\\]v4[/\\](classic|core)[/\\]/.test(args.importer) ? { path: join(dirname(args.importer), '..', 'locales', 'en.js'), namespace: 'zod-en' } : undefined,
    )
    b.onLoad({ filter: /.*/, namespace: 'zod-en' }, (args) => ({ contents: `export { default as en } from ${JSON.stringify(args.path)}`, loader: 'js', resolveDir: dirname(args.path) }))
  },
}

/**
 * The AWS SDK from its ES module build (each package's "module" field,
 * dist-es/) instead of the CommonJS one that platform 'node' picks (its
 * "main", dist-cjs/). In ES modules esbuild keeps only the commands the store
 * sends, and the credential providers the SDK loads with import() (SSO, STS,
 * the INI file, IMDS) become chunks of their own that a function with its
 * credentials in the environment never reads: half of what DynamoDB costs a
 * cold start. Only @aws-sdk/* and @smithy/* packages without an exports map:
 * those with one already resolve to their ES build, and other packages keep
 * esbuild's choice (graphql's, for one, must stay one copy).
 */
const awsSdkEsm = {
  name: 'aws-sdk-esm',
  setup(b) {
    b.onResolve({ filter: /^@(aws-sdk|smithy)\/[^/]+$/ }, async (args) => {
      if (args.pluginData?.awsSdkEsm) return undefined
      const resolved = await b.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { awsSdkEsm: true } })
      if (resolved.errors.length > 0 || resolved.external) return resolved
      const pkgDir = resolved.path.slice(0, resolved.path.lastIndexOf(`${sep}node_modules${sep}`) + `${sep}node_modules${sep}`.length + args.path.length)
      const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'))
      if (pkg.name !== args.path || pkg.exports || typeof pkg.module !== 'string') return resolved
      return { path: join(pkgDir, pkg.module) }
    })
  },
}

// The served schema's SDL, parsed now instead of at every cold start
// (src/graphql/schema.ts reads it as STATICPOD_SCHEMA_DOCUMENT). Built into a
// schema here first, so SDL that would not start the app fails the build.
const { schemaDocument } = await tsImport('../src/graphql/schema.ts', import.meta.url)
const { buildASTSchema } = await import('graphql')
const document = schemaDocument({ locations: false })
buildASTSchema(document)

const outDir = resolve(root, values.out)
await rm(outDir, { recursive: true, force: true })
await mkdir(outDir, { recursive: true })

const result = await build({
  entryPoints: [join(root, values.entry)],
  outdir: outDir,
  entryNames: values.name,
  outExtension: { '.js': '.mjs' },
  // What the code imports with import() (the Kubernetes client, ssh2, the AWS
  // SDKs) goes into chunks of its own, read from disk only when first needed:
  // a cold start parses the main chunk alone.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  // Node 20 compatible code, though the runtime is nodejs22.x.
  target: 'node20',
  minify: true,
  sourcemap: 'external',
  metafile: true,
  legalComments: 'none',
  external: [...NATIVE_MODULES, '*.node'],
  define: { STATICPOD_SCHEMA_DOCUMENT: JSON.stringify(JSON.stringify(document)) },
  plugins: [noSqlite, zodEnglishOnly, awsSdkEsm],
  // CommonJS dependencies inside an ESM bundle still call require() and read __dirname.
  banner: {
    js: [
      "import { createRequire as __createRequire } from 'node:module';",
      "import { fileURLToPath as __fileURLToPath } from 'node:url';",
      "import { dirname as __pathDirname } from 'node:path';",
      'const require = __createRequire(import.meta.url);',
      'const __filename = __fileURLToPath(import.meta.url);',
      'const __dirname = __pathDirname(__filename);',
    ].join(' '),
  },
  logLevel: 'warning',
})

for (const [pkg, file, target] of RUNTIME_FILES) {
  const to = join(outDir, target)
  await mkdir(dirname(to), { recursive: true })
  await cp(join(dirname(require.resolve(`${pkg}/package.json`)), file), to)
}

await writeFile(join(outDir, 'meta.json'), JSON.stringify(result.metafile))
const outputs = Object.entries(result.metafile.outputs).filter(([path]) => path.endsWith('.mjs'))
// What a cold start parses: the entry file and the chunks it imports statically
// (every import() target is an entryPoint in the metafile too, so not that).
const startFiles = new Set()
const visit = (path) => {
  const output = result.metafile.outputs[path]
  if (startFiles.has(path) || !output) return
  startFiles.add(path)
  for (const i of output.imports) if (i.kind === 'import-statement') visit(i.path)
}
visit(outputs.find(([path]) => path.endsWith(`/${values.name}.mjs`))?.[0])
const main = [...startFiles].reduce((n, path) => n + result.metafile.outputs[path].bytes, 0)
const bytes = outputs.reduce((n, [, o]) => n + o.bytes, 0)
const leaked = Object.keys(result.metafile.inputs).filter((p) => NATIVE_MODULES.some((m) => p.includes(`node_modules/${m}/`)) || p.endsWith('src/store/sqlite.ts'))
if (leaked.length > 0) throw new Error(`native modules ended up in the bundle: ${leaked.join(', ')}`)
const mb = (n) => `${(n / 1024 / 1024).toFixed(2)} MB`
console.log(`built ${relative(root, join(outDir, `${values.name}.mjs`))}: ${mb(main)} loaded at start, ${mb(bytes)} with ${outputs.length - 1} lazy chunks; the schema's ${document.definitions.length} definitions inside`)
