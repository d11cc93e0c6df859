// staticpodctl: the terminal client of staticpod-api, for an SRE with the API
// server down and for chatops scripts. kubectl's verbs and flags where it has
// them; the service's GraphQL API over HTTP(S) and nothing else (it imports
// nothing of the service: npm run check:deps, rule cli-is-a-client).
// docs/staticpodctl.md is its manual.

import { Command, CommanderError, Option } from 'commander'
import { VERSION } from './client.ts'
import { Ctx, type GlobalFlags, type Io } from './context.ts'
import { CliError, EXIT, exitCodeOf } from './errors.ts'
import { registerApply } from './commands/apply.ts'
import { registerCompletion } from './commands/completion.ts'
import { registerConfig } from './commands/config.ts'
import { registerDescribe } from './commands/describe.ts'
import { registerEdit } from './commands/edit.ts'
import { registerEvents } from './commands/events.ts'
import { registerGet } from './commands/get.ts'
import { registerLint } from './commands/lint.ts'
import { registerLogs } from './commands/logs.ts'
import { registerPodWrites } from './commands/pod-writes.ts'
import { registerRollout } from './commands/rollout.ts'

function buildProgram(ctx: Ctx, globals: () => GlobalFlags): Command {
  const program = new Command('staticpodctl')
    .description('The static pods of every node, with the API server up or down: a client of staticpod-api')
    .version(VERSION, '--version', 'print the version')
    .addOption(new Option('-s, --server <url>', 'the service, e.g. https://staticpod.example.com (else STATICPOD_SERVER, the context, http://127.0.0.1:3000)'))
    .addOption(new Option('--token <token>', 'bearer token (visible to ps while the process starts: prefer --token-file or STATICPOD_TOKEN)'))
    .addOption(new Option('--token-file <file>', 'read the bearer token from this file'))
    .addOption(new Option('--context <name>', 'use this context of the config file instead of the current one'))
    .addOption(new Option('--request-timeout <duration>', 'give up on a request after this long (default: never; rollouts can wait minutes)'))
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      `
Exit status: 0 ok, 1 failed, 2 usage, 3 not found, 4 conflict (the file changed, exists, or is locked),
5 unauthenticated or forbidden, 6 node unreachable. Errors print the service's code and message on stderr.`,
    )
  registerGet(program, ctx)
  registerDescribe(program, ctx)
  registerLogs(program, ctx)
  registerEdit(program, ctx)
  registerApply(program, ctx)
  registerRollout(program, ctx)
  registerPodWrites(program, ctx)
  registerLint(program, ctx)
  registerEvents(program, ctx)
  registerConfig(program, ctx, globals)
  registerCompletion(program, ctx)
  return program
}

/** Runs one command line; resolves to the exit status. */
export async function run(argv: string[], io: Io = processIo()): Promise<number> {
  // The global flags, once commander has parsed them (asked only by commands, after parsing).
  const globals = (): GlobalFlags => program.opts<GlobalFlags>()
  const ctx = new Ctx(io, globals)
  const program = buildProgram(ctx, globals)
  const configure = (c: Command) => {
    c.exitOverride().configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(s),
    })
    c.commands.forEach(configure)
  }
  configure(program)

  try {
    await program.parseAsync(argv, { from: 'user' })
  } catch (err) {
    return report(io, err)
  }
  // Errors that came beside the data (a node that could not be read): said, and the status is theirs.
  const warnings = ctx.madeClient?.warnings ?? []
  for (const w of warnings) io.stderr.write(`warning: ${w.extensions?.code ?? 'ERROR'}: ${w.message}\n`)
  const first = warnings[0]
  return first ? exitCodeOf(first.extensions?.code ?? 'ERROR') : EXIT.OK
}

function report(io: Io, err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return err.code === 'commander.help' ? EXIT.USAGE : EXIT.OK
    // commander has printed "error: ..." already.
    return EXIT.USAGE
  }
  if (err instanceof CliError) {
    io.stderr.write(`error: ${err.code}: ${err.message}\n`)
    for (const d of err.details) io.stderr.write(`${d}\n`)
    return err.exitCode
  }
  io.stderr.write(`error: INTERNAL: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  return EXIT.FAILED
}

function processIo(): Io {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }
}

/**
 * A token given with --token is in the process's arguments; ps shows them.
 * Once parsed, the title (what ps shows on Linux) is replaced by the arguments
 * with the token blanked. --token-file and STATICPOD_TOKEN never get there.
 */
export function hideToken(argv: string[]): void {
  const i = argv.findIndex((a) => a === '--token' || a.startsWith('--token='))
  if (i === -1) return
  const shown = argv.map((a, j) => (j === i && a.startsWith('--token=') ? '--token=***' : j === i + 1 && argv[i] === '--token' ? '***' : a))
  process.title = ['staticpodctl', ...shown].join(' ')
}
