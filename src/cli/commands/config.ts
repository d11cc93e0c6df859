// config get-contexts | use-context | set-context | current-context | view:
// the contexts of ~/.config/staticpodctl/config.yaml, as kubectl config's.

import type { Command } from 'commander'
import { CliError, usage } from '../errors.ts'
import { configPath, readConfig, resolveConnection, setContext, useContext } from '../config.ts'
import type { Ctx, GlobalFlags } from '../context.ts'
import { yaml } from '../output/format.ts'
import { table } from '../output/table.ts'

export function registerConfig(program: Command, ctx: Ctx, globals: () => GlobalFlags): void {
  const config = program
    .command('config')
    .description(`Contexts (server and token) in ${'$XDG_CONFIG_HOME/staticpodctl/config.yaml'} (default ~/.config/staticpodctl/config.yaml; STATICPODCTL_CONFIG names another)`)

  config
    .command('get-contexts')
    .description('List the contexts; * marks the current one')
    .action(async () => {
      const path = configPath(ctx.io.env)
      const file = await readConfig(path)
      if (file.contexts.length === 0) {
        ctx.err(`No contexts in ${path}; add one with: staticpodctl config set-context NAME --server URL --token-file FILE\n`)
        return
      }
      ctx.out(
        table(
          ['current', 'name', 'server', 'auth'],
          file.contexts.map((c) => [c.name === file['current-context'] ? '*' : ' ', c.name, c.server ?? '(default)', c['token-file'] ? `token-file ${c['token-file']}` : c.token ? 'token' : 'none']),
        ),
      )
    })

  config
    .command('use-context')
    .description('Make a context the current one')
    .argument('<name>')
    .action(async (name: string) => {
      await useContext(configPath(ctx.io.env), name)
      ctx.out(`Switched to context "${name}".\n`)
    })

  config
    .command('set-context')
    .description('Create or change a context from the global --server, --token-file (or --token) given with it')
    .argument('<name>')
    .addHelpText('after', '\nExample:\n  staticpodctl config set-context prod --server https://staticpod.example.com --token-file ~/.config/staticpodctl/prod.token\n')
    .action(async (name: string) => {
      const g = globals()
      if (g.token !== undefined && g.tokenFile !== undefined) throw usage('give --token or --token-file, not both')
      if (g.server !== undefined) {
        try {
          const u = new URL(g.server)
          if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('scheme')
        } catch {
          throw usage(`--server ${g.server}: expected an http:// or https:// URL`)
        }
      }
      const path = configPath(ctx.io.env)
      const what = await setContext(path, name, {
        ...(g.server !== undefined ? { server: g.server } : {}),
        ...(g.tokenFile !== undefined ? { 'token-file': g.tokenFile } : {}),
        ...(g.token !== undefined ? { token: g.token } : {}),
      })
      ctx.out(`Context "${name}" ${what} in ${path}.\n`)
    })

  config
    .command('current-context')
    .description('Print the current context')
    .action(async () => {
      const path = configPath(ctx.io.env)
      const current = (await readConfig(path))['current-context']
      if (!current) throw new CliError('NOT_FOUND', `no current context in ${path}`)
      ctx.out(`${current}\n`)
    })

  config
    .command('view')
    .description('Print the config file (tokens redacted) and where this run would connect')
    .action(async () => {
      const path = configPath(ctx.io.env)
      const file = await readConfig(path)
      const redacted = { ...file, contexts: file.contexts.map((c) => (c.token ? { ...c, token: 'REDACTED' } : c)) }
      const connection = await resolveConnection(globals(), ctx.io.env)
      ctx.out(`# ${path}\n${yaml(redacted)}# this run: server ${connection.server} (${connection.serverFrom}), token from ${connection.tokenFrom}\n`)
    })
}
