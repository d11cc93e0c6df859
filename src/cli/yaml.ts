// The yaml package, loaded on first use: most runs print no YAML and read no
// config file, and loading it is a good part of a run's start-up time.

import { createRequire } from 'node:module'

let loaded: typeof import('yaml') | undefined

export function yamlLib(): typeof import('yaml') {
  loaded ??= createRequire(import.meta.url)('yaml') as typeof import('yaml')
  return loaded
}
