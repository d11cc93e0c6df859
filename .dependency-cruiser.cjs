// npm run check:deps: the layering of src/ (README, "Layout"). Each rule says
// why it exists. A rule sees direct imports only, type-only ones included
// (`import type` ties two modules together at compile time as much as a value
// import does), and dynamic `import()` too. src/domain.ts holds the records the
// whole program shares (plain data) and may be imported from anywhere.
// test/tooling/dependency-rules.test.ts shows that every rule can fail.

// Modules that touch the outside world: files, sockets, processes, the SQLite
// and DynamoDB stores, the API server. A resolved npm package is
// node_modules/<name>/..., an unresolved one just <name>.
const IO_PACKAGES = '(^|node_modules/)(ssh2|better-sqlite3|@aws-sdk/[^/]+|@kubernetes/client-node)(/|$)'
const IO_CORE_MODULES = '^(node:)?(fs|fs/promises|net|child_process|http|https|http2|tls|dgram|dns|dns/promises)$'
// The parts of src/ that do I/O, or compose the ones that do.
const IO_SRC = '^src/(store|agents|services|cluster|http|graphql|rest|net)/|^src/(app|server|config|lambda|lambda-ssm|lambda-secrets)\\.ts$'

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'An import cycle makes module load order matter (a value read before its module has run is undefined) and means two ' +
        'modules cannot be understood, tested or moved apart. Break it by moving the shared part to a module both import.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'transports-not-to-store-or-agents',
      severity: 'error',
      comment:
        'GraphQL resolvers and REST routes only map requests to service calls and results to answers: every rule (authorisation, ' +
        'audit, locking, validation) lives in src/services/, which is the only way to the store and the node agents.',
      from: { path: '^src/(graphql|rest)/' },
      to: { path: '^src/(store|agents)/' },
    },
    {
      name: 'agents-not-to-store-or-services',
      severity: 'error',
      comment:
        'A node agent reads and writes files on one node and knows nothing of history, audit or policy: the services call the ' +
        'agents, never the other way round, so an agent can run (and be tested) without a store.',
      from: { path: '^src/agents/' },
      to: { path: '^src/(store|services)/' },
    },
    {
      name: 'manifest-is-pure',
      severity: 'error',
      comment:
        'src/manifest/ (parse, validate, hash, names, lint, restart edit) is pure: the same bytes give the same answer, with no ' +
        'file, socket, process, store or API server behind it, so it can run anywhere (validation before a write, tests, Lambda).',
      from: { path: '^src/manifest/' },
      to: { path: [IO_PACKAGES, IO_CORE_MODULES, IO_SRC] },
    },
    {
      name: 'diagnosis-is-pure',
      severity: 'error',
      comment:
        'src/diagnosis/ judges evidence (certificates, exit codes, log and journal lines) that services/diagnosis.ts has read ' +
        'through the node agents: pure, like src/manifest/, so every rule of it can be tested without a node.',
      from: { path: '^src/diagnosis/' },
      to: { path: [IO_PACKAGES, IO_CORE_MODULES, IO_SRC] },
    },
    {
      name: 'events-is-pure',
      severity: 'error',
      comment:
        'src/events/ turns the observations and certificates the services read into events: pure, like src/diagnosis/, so ' +
        'every rule of it can be tested on observations built by hand, and the same observations always give the same events.',
      from: { path: '^src/events/' },
      to: { path: [IO_PACKAGES, IO_CORE_MODULES, IO_SRC] },
    },
    {
      name: 'cli-is-a-client',
      severity: 'error',
      comment:
        'src/cli/ (staticpodctl) is a client of the API like any other: it talks to the service over HTTP(S) with the GraphQL ' +
        'schema, and imports none of the service (services, store, agents, transports, the app and its config), so it cannot ' +
        'reach round the API or depend on the server\'s internals. Shared shapes come from schema/*.graphql, not from src/.',
      from: { path: '^src/cli/' },
      to: { path: IO_SRC },
    },
    {
      name: 'store-not-to-services',
      severity: 'error',
      comment:
        'The store keeps records and knows no rules; services use the store. A store importing a service would be a layer ' +
        'upside down (and the start of a cycle). Shared records belong in src/domain.ts.',
      from: { path: '^src/store/' },
      to: { path: '^src/services/' },
    },
  ],
  options: {
    // Cruise into npm packages only as far as their entry, to know they are there.
    doNotFollow: { path: 'node_modules' },
    // Use the TypeScript source as written, so `import type` counts.
    tsPreCompilationDeps: true,
    // The code imports with explicit .ts extensions (allowImportingTsExtensions),
    // which needs no tsconfig paths to resolve.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
}
