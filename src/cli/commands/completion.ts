// completion bash|zsh: a script for the shell, which asks `staticpodctl
// __complete WORDS...` for the candidates: subcommands, flags and their
// choices from the command tree itself, and node and pod names from the
// service (2 s at most; nothing when it does not answer).

import type { Command, Option } from 'commander'
import { readConfig, configPath } from '../config.ts'
import { usage } from '../errors.ts'
import type { Ctx } from '../context.ts'
import { completionNodesQuery, completionPodsQuery } from '../queries.ts'

const BASH = `# staticpodctl completion for bash. Load it with:
#   source <(staticpodctl completion bash)
# or write it to /etc/bash_completion.d/staticpodctl.
_staticpodctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" out IFS=$'\\n'
  out=$(staticpodctl __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
  if [[ "$out" == ":file"* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  COMPREPLY=($(compgen -W "$out" -- "$cur"))
}
complete -o default -F _staticpodctl staticpodctl
`

const ZSH = `#compdef staticpodctl
# staticpodctl completion for zsh. Load it with:
#   source <(staticpodctl completion zsh)
# or write it as _staticpodctl into a directory of your $fpath.
_staticpodctl() {
  local out
  local -a candidates
  out=$(staticpodctl __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)
  if [[ "$out" == ":file"* ]]; then
    _files
    return
  fi
  candidates=(\${(f)out})
  compadd -a candidates
}
if [[ "$funcstack[1]" = "_staticpodctl" ]]; then
  _staticpodctl "$@"
else
  compdef _staticpodctl staticpodctl
fi
`

const RESOURCES: Record<string, string[]> = {
  get: ['nodes', 'pods', 'rollouts'],
  describe: ['pod', 'node'],
  edit: ['pod'],
  patch: ['pod'],
  delete: ['pod'],
  restart: ['pod'],
  history: ['pod'],
  undo: ['pod'],
  image: ['pod'],
  flag: ['pod'],
}

const FILE_FLAGS = new Set(['--filename', '--token-file', '--patch-file'])
const FORMATS = ['wide', 'json', 'yaml', 'name']

export function registerCompletion(program: Command, ctx: Ctx): void {
  program
    .command('completion')
    .description('Print the shell completion script: source <(staticpodctl completion bash)')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') ctx.out(BASH)
      else if (shell === 'zsh') ctx.out(ZSH)
      else throw usage(`completion ${shell}: bash or zsh`)
    })

  program
    .command('__complete', { hidden: true })
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words: string[] = []) => {
      const candidates = await complete(program, ctx, words).catch(() => [])
      ctx.out(candidates.map((c) => `${c}\n`).join(''))
    })
}

function findOption(cmds: Command[], flag: string): Option | undefined {
  const name = flag.split('=')[0]
  for (const c of cmds) {
    const found = c.options.find((o) => o.long === name || o.short === name)
    if (found) return found
  }
  return undefined
}

async function complete(program: Command, ctx: Ctx, words: string[]): Promise<string[]> {
  const cur = words[words.length - 1] ?? ''
  const before = words.slice(0, -1)
  let cmd = program
  const path: Command[] = [program]
  const positional: string[] = []
  const flags = new Map<string, string>()
  for (let i = 0; i < before.length; i++) {
    const w = before[i] as string
    if (w === '--') continue
    if (w.startsWith('-')) {
      const option = findOption(path, w)
      if (option && (option.required || option.optional) && !w.includes('=')) {
        flags.set(option.long ?? w, before[i + 1] ?? '')
        i++
      }
      continue
    }
    const sub = positional.length === 0 ? cmd.commands.find((c) => c.name() === w || c.aliases().includes(w)) : undefined
    if (sub) {
      cmd = sub
      path.push(sub)
    } else {
      positional.push(w)
    }
  }

  const prev = before[before.length - 1]
  const valueOf = prev?.startsWith('-') ? findOption(path, prev) : undefined
  if (valueOf && (valueOf.required || valueOf.optional) && !prev?.includes('=')) {
    const long = valueOf.long ?? ''
    if (FILE_FLAGS.has(long)) return [':file']
    if (long === '--output') return FORMATS
    if (valueOf.argChoices) return valueOf.argChoices
    if (long === '--node') return nodeNames(ctx)
    if (long === '--context') return (await readConfig(configPath(ctx.io.env))).contexts.map((c) => c.name)
    return []
  }
  if (cur.startsWith('-')) {
    return path
      .flatMap((c) => c.options)
      .filter((o) => !o.hidden)
      .flatMap((o) => [o.long, o.short])
      .filter((f): f is string => !!f)
  }
  const subs = cmd.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden).map((c) => c.name())
  if (subs.length > 0 && positional.length === 0) return subs
  const name = cmd.name()
  if (name === 'completion') return positional.length === 0 ? ['bash', 'zsh'] : []
  if (name === 'use-context') return positional.length === 0 ? (await readConfig(configPath(ctx.io.env))).contexts.map((c) => c.name) : []
  const resources = RESOURCES[name]
  if (!resources) return []
  if (positional.length === 0) return resources
  if (positional.length === 1) {
    const r = positional[0] as string
    if (/^nodes?$|^no$/.test(r)) return nodeNames(ctx)
    if (/^pods?$|^po$/.test(r)) return podNames(ctx, flags.get('--node'))
  }
  return []
}

async function nodeNames(ctx: Ctx): Promise<string[]> {
  const api = await ctx.api()
  const { nodes } = await withTimeout(api.request<{ nodes: Array<{ name: string }> }>(completionNodesQuery))
  return nodes.map((n) => n.name)
}

async function podNames(ctx: Ctx, node: string | undefined): Promise<string[]> {
  const api = await ctx.api()
  const { staticPods } = await withTimeout(api.request<{ staticPods: Array<{ name: string }> }>(completionPodsQuery, { node: node ?? null }))
  return [...new Set(staticPods.map((p) => p.name))].sort()
}

function withTimeout<T>(p: Promise<T>, ms = 5000): Promise<T> {
  return Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), ms).unref())])
}
