// lint [--node NODE]: what in each staticPodPath would surprise the kubelet
// (stray backups, unparseable files, duplicates, API references ...). Exits 1
// when there is any finding, like a linter.

import type { Command } from 'commander'
import { CliError } from '../errors.ts'
import type { Ctx } from '../context.ts'
import { list, outputFormat, structured } from '../output/format.ts'
import { table } from '../output/table.ts'
import { lintNodeQuery, lintQuery } from '../queries.ts'

interface Linted {
  name: string
  findings: Array<{ code: string; fileName: string | null; message: string }>
}

export function registerLint(program: Command, ctx: Ctx): void {
  program
    .command('lint')
    .description("The findings of the nodes' static pod directories; exit 1 when there are any")
    .option('--node <node>', 'this node only')
    .option('-l, --selector <selector>', 'the nodes with these labels')
    .option('-o, --output <format>', 'json or yaml')
    .action(async (opts: { node?: string; selector?: string; output?: string }) => {
      const format = outputFormat(opts.output, ['json', 'yaml'])
      const api = await ctx.api()
      let nodes: Linted[]
      if (opts.node) {
        const { node } = await api.request<{ node: Linted | null }>(lintNodeQuery, { name: opts.node })
        if (!node) throw new CliError('NOT_FOUND', `node "${opts.node}" is not registered`)
        nodes = [node]
      } else {
        nodes = (await api.request<{ nodes: Linted[] }>(lintQuery, { selector: opts.selector ?? null })).nodes
      }
      const rows = nodes.flatMap((n) => n.findings.map((f) => ({ node: n.name, ...f })))
      if (format === 'json' || format === 'yaml') ctx.out(structured(format, list('FindingList', rows)))
      else if (rows.length === 0) ctx.err(`No findings on ${nodes.length} node${nodes.length === 1 ? '' : 's'}.\n`)
      else ctx.out(table(['node', 'code', 'file', 'message'], rows.map((r) => [r.node, r.code, r.fileName, r.message])))
      if (rows.length > 0) throw new CliError('FINDINGS', `${rows.length} finding${rows.length === 1 ? '' : 's'} on ${new Set(rows.map((r) => r.node)).size} node(s)`)
    })
}
