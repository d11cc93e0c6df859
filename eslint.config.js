// npm run lint: correctness only. There is no formatter and no style rule here:
// the code's own layout (2 spaces, no semicolons, single quotes, long lines) is
// not checked. TypeScript files get typescript-eslint's recommended set plus
// the type-aware rules that catch real bugs in async server code; they use the
// type information of tsconfig.json through the project service. The .mjs
// scripts are outside tsconfig.json and get the untyped rules only.
import js from '@eslint/js'
import { defineConfig } from 'eslint/config'
import tseslint from 'typescript-eslint'

// The `globals` package is not a dependency; these are the Node globals the
// .mjs scripts may use (the TypeScript files get theirs from @types/node).
const nodeGlobals = Object.fromEntries(
  [
    'AbortController', 'AbortSignal', 'Buffer', 'URL', 'URLSearchParams', 'TextDecoder', 'TextEncoder', 'console', 'process',
    'fetch', 'globalThis', 'performance', 'queueMicrotask', 'structuredClone', 'setTimeout', 'clearTimeout', 'setInterval',
    'clearInterval', 'setImmediate', 'clearImmediate',
  ].map((name) => [name, 'readonly']),
)

// `_name` marks a parameter or binding kept on purpose.
const unusedVars = [
  'error',
  {
    args: 'after-used',
    argsIgnorePattern: '^_',
    varsIgnorePattern: '^_',
    caughtErrorsIgnorePattern: '^_',
    destructuredArrayIgnorePattern: '^_',
    ignoreRestSiblings: true,
  },
]

export default defineConfig(
  {
    // Build output, local state, and generated code (npm run codegen).
    ignores: ['node_modules/', 'dist/', '.serverless/', '.tmp/', 'data/', 'coverage/', 'src/graphql/generated/'],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // A promise nobody awaits loses its rejection (an unhandled rejection
      // stops the process) and its ordering; `void p` says it is deliberate.
      // node:test's test() and describe() return promises the runner itself
      // tracks, so a top-level `test(...)` is not a floating promise.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] },
      ],
      // An async function passed where the callback's result is ignored
      // (event listeners, forEach, timers) has its rejection lost; and a
      // promise in an `if` is always true.
      '@typescript-eslint/no-misused-promises': 'error',
      // `await` of something that is not a promise is almost always a missing
      // call or a wrong type.
      '@typescript-eslint/await-thenable': 'error',
      // verbatimModuleSyntax keeps value imports at run time; a type imported
      // as a value loads its module (and can make an import cycle) for nothing.
      // `typeof import('ssh2')` types a module that is loaded lazily on
      // purpose (ssh2, @kubernetes/client-node), so type annotations may import.
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'separate-type-imports', disallowTypeAnnotations: false }],
      '@typescript-eslint/no-unused-vars': unusedVars,
    },
  },
  {
    // Tests and benchmarks read GraphQL and REST answers as loose JSON
    // (`data.nodes[0].name`); src/ has no `any` and keeps the rule.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: { globals: nodeGlobals },
    rules: { '@typescript-eslint/no-unused-vars': unusedVars },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...nodeGlobals, module: 'writable', require: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
)
