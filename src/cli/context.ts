// What every command is given: the terminal's streams and environment, and the
// API client, made on first use from the global flags (so `completion` and
// `config` never need a server).

import { Api } from './client.ts'
import { resolveConnection, type ConnectionFlags } from './config.ts'
import { usage } from './errors.ts'
import { parseDuration } from './output/time.ts'

export interface OutStream {
  write(text: string): unknown
  isTTY?: boolean
  columns?: number
}

export interface Io {
  stdout: OutStream
  stderr: OutStream
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  env: NodeJS.ProcessEnv
}

export interface GlobalFlags extends ConnectionFlags {
  requestTimeout?: string
}

export class Ctx {
  private client: Api | undefined

  constructor(
    readonly io: Io,
    private readonly globals: () => GlobalFlags,
  ) {}

  async api(): Promise<Api> {
    if (this.client) return this.client
    const flags = this.globals()
    const connection = await resolveConnection(flags, this.io.env)
    let timeoutMs: number | null = null
    if (flags.requestTimeout !== undefined && flags.requestTimeout !== '0') {
      const seconds = parseDuration(flags.requestTimeout)
      if (seconds === null) throw usage(`--request-timeout ${flags.requestTimeout}: expected a duration such as 30s or 5m`)
      timeoutMs = seconds * 1000
    }
    this.client = new Api(connection, timeoutMs)
    return this.client
  }

  /** The client if a command made one (for the warnings it collected). */
  get madeClient(): Api | undefined {
    return this.client
  }

  out(text: string): void {
    this.io.stdout.write(text)
  }

  err(text: string): void {
    this.io.stderr.write(text)
  }
}

export type PodResource = 'pod' | 'node' | 'rollout'

const RESOURCES: Record<string, PodResource> = {
  pod: 'pod',
  pods: 'pod',
  po: 'pod',
  staticpod: 'pod',
  staticpods: 'pod',
  node: 'node',
  nodes: 'node',
  no: 'node',
  rollout: 'rollout',
  rollouts: 'rollout',
  ro: 'rollout',
}

/** `pod NAME`, `pods NAME` or `pod/NAME`, as kubectl takes them. */
export function resourceArgs(resource: string, name: string | undefined, allowed: readonly PodResource[]): { resource: PodResource; name: string | undefined } {
  let kind = resource
  let n = name
  const slash = resource.indexOf('/')
  if (slash > 0) {
    if (name !== undefined) throw usage(`give ${resource} or ${resource.slice(0, slash)} ${name}, not both`)
    kind = resource.slice(0, slash)
    n = resource.slice(slash + 1)
  }
  const found = RESOURCES[kind.toLowerCase()]
  if (!found || !allowed.includes(found)) throw usage(`unknown resource "${kind}": expected ${allowed.map((a) => (a === 'pod' ? 'pods' : `${a}s`)).join(' or ')}`)
  return { resource: found, name: n }
}

/** The pod a command is about: NAME and --node are required. */
export function podRef(resource: string, name: string | undefined, opts: { node?: string; namespace?: string }): { node: string; namespace: string | null; name: string } {
  const r = resourceArgs(resource, name, ['pod'])
  if (!r.name) throw usage('a pod NAME is required')
  if (!opts.node) throw usage('--node NODE is required: a static pod lives on one node')
  return { node: opts.node, namespace: opts.namespace ?? null, name: r.name }
}
