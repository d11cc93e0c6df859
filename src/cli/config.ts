// Where the client connects and with which token: flags, else the environment
// (STATICPOD_SERVER, STATICPOD_TOKEN), else the current context of the config
// file (~/.config/staticpodctl/config.yaml, contexts like kubeconfig's), else
// http://127.0.0.1:3000 with no token. A token read from a file or the
// environment stays in this process: it is never an argument of anything.

import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import type { Document } from 'yaml'
import { CliError, usage } from './errors.ts'
import { yamlLib } from './yaml.ts'

const DEFAULT_SERVER = 'http://127.0.0.1:3000'

interface Context {
  name: string
  server?: string
  token?: string
  'token-file'?: string
}

export interface ConfigFile {
  'current-context'?: string
  contexts: Context[]
}

/** The global flags that choose the connection. */
export interface ConnectionFlags {
  server?: string
  token?: string
  tokenFile?: string
  context?: string
}

export interface Connection {
  server: string
  token: string | null
  /** Where each came from, for `config view` and error messages. */
  serverFrom: string
  tokenFrom: string
}

export function configPath(env: NodeJS.ProcessEnv): string {
  if (env.STATICPODCTL_CONFIG) return env.STATICPODCTL_CONFIG
  const base = env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config')
  return join(base, 'staticpodctl', 'config.yaml')
}

async function readDocument(path: string): Promise<Document | null> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new CliError('CONFIG', `cannot read ${path}: ${(err as Error).message}`)
  }
  const doc = yamlLib().parseDocument(text)
  if (doc.errors.length > 0) throw new CliError('CONFIG', `${path} is not valid YAML: ${doc.errors[0]?.message ?? ''}`)
  return doc
}

export async function readConfig(path: string): Promise<ConfigFile> {
  const doc = await readDocument(path)
  const raw: unknown = doc?.toJS() ?? {}
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CliError('CONFIG', `${path}: expected a mapping with current-context and contexts`)
  const o = raw as Record<string, unknown>
  const contexts = o.contexts ?? []
  if (!Array.isArray(contexts)) throw new CliError('CONFIG', `${path}: contexts must be a list`)
  const parsed: Context[] = contexts.map((c: unknown, i) => {
    if (c === null || typeof c !== 'object' || typeof (c as Context).name !== 'string') throw new CliError('CONFIG', `${path}: contexts[${i}] needs a name`)
    for (const key of ['server', 'token', 'token-file'] as const) {
      const v = (c as Record<string, unknown>)[key]
      if (v !== undefined && v !== null && typeof v !== 'string') throw new CliError('CONFIG', `${path}: contexts[${i}].${key} must be a string`)
    }
    return c as Context
  })
  const current = o['current-context']
  return { ...(typeof current === 'string' ? { 'current-context': current } : {}), contexts: parsed }
}

function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  return path === '~' || path.startsWith('~/') ? join(env.HOME || homedir(), path.slice(1)) : path
}

async function readToken(path: string, what: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new CliError('CONFIG', `cannot read the token file ${path} (${what}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  const token = text.trim()
  if (token === '' || /\s/.test(token)) throw new CliError('CONFIG', `the token file ${path} (${what}) must hold one token`)
  return token
}

export async function resolveConnection(flags: ConnectionFlags, env: NodeJS.ProcessEnv): Promise<Connection> {
  const path = configPath(env)
  const needFile = flags.context !== undefined || !(flags.server ?? env.STATICPOD_SERVER) || !(flags.token ?? flags.tokenFile ?? env.STATICPOD_TOKEN)
  const file = needFile ? await readConfig(path) : { contexts: [] }
  const contextName = flags.context ?? file['current-context']
  const context = contextName === undefined ? undefined : file.contexts.find((c) => c.name === contextName)
  if (contextName !== undefined && !context && needFile) {
    throw new CliError(flags.context !== undefined ? 'USAGE' : 'CONFIG', `no context "${contextName}" in ${path} (see: staticpodctl config get-contexts)`)
  }

  let server = DEFAULT_SERVER
  let serverFrom = 'default'
  if (flags.server) [server, serverFrom] = [flags.server, '--server']
  else if (env.STATICPOD_SERVER) [server, serverFrom] = [env.STATICPOD_SERVER, 'STATICPOD_SERVER']
  else if (context?.server) [server, serverFrom] = [context.server, `context ${context.name}`]

  let token: string | null = null
  let tokenFrom = 'none'
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw usage('give --token or --token-file, not both')
  if (flags.token !== undefined) [token, tokenFrom] = [flags.token, '--token']
  else if (flags.tokenFile !== undefined) [token, tokenFrom] = [await readToken(expandHome(flags.tokenFile, env), '--token-file'), '--token-file']
  else if (env.STATICPOD_TOKEN) [token, tokenFrom] = [env.STATICPOD_TOKEN.trim(), 'STATICPOD_TOKEN']
  else if (context?.['token-file']) {
    const p = expandHome(context['token-file'], env)
    token = await readToken(isAbsolute(p) ? p : resolve(dirname(path), p), `context ${context.name}`)
    tokenFrom = `context ${context.name} (token-file)`
  } else if (context?.token) [token, tokenFrom] = [context.token, `context ${context.name}`]

  let url: URL
  try {
    url = new URL(server)
  } catch {
    throw usage(`the server "${server}" (${serverFrom}) is not a URL, e.g. ${DEFAULT_SERVER}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw usage(`the server "${server}" (${serverFrom}) must be http:// or https://`)
  return { server: server.replace(/\/+$/, ''), token, serverFrom, tokenFrom }
}

// ------------------------------------------------------------ changing the file

/** Applies change to the config file's document (comments and layout kept) and writes it, 0600. */
async function updateConfig(path: string, change: (doc: Document) => void): Promise<void> {
  const doc = (await readDocument(path)) ?? yamlLib().parseDocument('contexts: []\n')
  if (!yamlLib().isMap(doc.contents)) throw new CliError('CONFIG', `${path}: expected a mapping with current-context and contexts`)
  change(doc)
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  await writeFile(tmp, doc.toString(), { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}

export async function useContext(path: string, name: string): Promise<void> {
  const file = await readConfig(path)
  if (!file.contexts.some((c) => c.name === name)) throw new CliError('NOT_FOUND', `no context "${name}" in ${path} (see: staticpodctl config get-contexts)`)
  await updateConfig(path, (doc) => doc.set('current-context', name))
}

/** Creates or changes a context; fields given as null are removed. */
export async function setContext(path: string, name: string, fields: { server?: string; token?: string | null; 'token-file'?: string | null }): Promise<'created' | 'modified'> {
  const file = await readConfig(path)
  const index = file.contexts.findIndex((c) => c.name === name)
  await updateConfig(path, (doc) => {
    if (!yamlLib().isSeq(doc.get('contexts'))) doc.set('contexts', doc.createNode([]))
    if (index === -1) {
      doc.addIn(['contexts'], doc.createNode({ name }))
    }
    const at = index === -1 ? file.contexts.length : index
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined) continue
      if (value === null) doc.deleteIn(['contexts', at, key])
      else doc.setIn(['contexts', at, key], value)
    }
    // A token and a token file: the file wins when reading, so keep only the one just given.
    if (fields['token-file']) doc.deleteIn(['contexts', at, 'token'])
    if (fields.token) doc.deleteIn(['contexts', at, 'token-file'])
    if (file['current-context'] === undefined) doc.set('current-context', name)
  })
  return index === -1 ? 'created' : 'modified'
}
