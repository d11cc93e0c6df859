#!/usr/bin/env node
// staticpodctl (src/cli/): `npx staticpodctl` after `npm install`, no build
// step. The project runs its TypeScript through tsx; its loader is registered
// in this very process (no child process, so the arguments and the token in
// the environment stay in one process), then src/cli/main.ts runs.
import { register } from 'tsx/esm/api'

register()
const { run, hideToken } = await import('../src/cli/main.ts')
const argv = process.argv.slice(2)
hideToken(argv)
// `staticpodctl get pods | head`: a reader that went away is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
    throw err
  })
}
const code = await run(argv)
// Exit once what was written is out, without waiting for idle keep-alive sockets.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
