// A second process using the real local agent, for tests that need another
// process on the same node: one that is killed -9 mid-write, or one that holds
// the node lock. It reports on stdout, one line per step, and then waits until
// the parent kills it (or gives up by itself after a minute, so nothing is left
// running if the parent dies first).
//
//   agent-child.ts pause-before-rename <staticPodPath> <stateDir> <fileName> <contentFile>
//     prints "PAUSED <tempPath>" once the temp file is written and flushed.
//   agent-child.ts hold-lock <staticPodPath> <stateDir> <actor>
//     prints "HOLDING <pid>" while holding the node lock.
import { readFile } from 'node:fs/promises'
import { createLocalAgent } from '../../src/agents/local.ts'
import { LOCAL_AGENT_DEFAULTS } from './agent-defaults.ts'

const SELF_DESTRUCT_MS = 60_000
setTimeout(() => process.exit(3), SELF_DESTRUCT_MS)

const waitForever = (): Promise<never> => new Promise<never>(() => undefined)
const [mode, staticPodPath, stateDir, ...rest] = process.argv.slice(2)
if (!mode || !staticPodPath || !stateDir) throw new Error('usage: agent-child.ts <mode> <staticPodPath> <stateDir> ...')

if (mode === 'pause-before-rename') {
  const [fileName, contentFile] = rest
  if (!fileName || !contentFile) throw new Error('pause-before-rename needs <fileName> <contentFile>')
  const agent = await createLocalAgent({
    ...LOCAL_AGENT_DEFAULTS,
    nodeName: 'child-node',
    staticPodPath,
    stateDir,
    hooks: {
      afterTempWrite: async (tempPath) => {
        process.stdout.write(`PAUSED ${tempPath}\n`)
        await waitForever()
      },
    },
  })
  await agent.withLock({ actor: 'child', instance: 'crash-test' }, async () => {
    await agent.writeManifest(fileName, await readFile(contentFile))
  })
} else if (mode === 'hold-lock') {
  const [actor] = rest
  const agent = await createLocalAgent({ ...LOCAL_AGENT_DEFAULTS, nodeName: 'child-node', staticPodPath, stateDir })
  await agent.withLock({ actor: actor ?? 'child', instance: 'lock-holder' }, async () => {
    process.stdout.write(`HOLDING ${process.pid}\n`)
    await waitForever()
  })
} else {
  throw new Error(`unknown mode ${mode}`)
}
