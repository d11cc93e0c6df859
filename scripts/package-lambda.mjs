#!/usr/bin/env node
// npm run package:lambda: bundle (scripts/build-lambda.mjs), then `osls package`
// into .serverless/, offline: no AWS credentials, no login, no network. The
// VPC and secret parameters get placeholders unless given (the zip does not
// depend on them; `osls deploy` takes the real ones, docs/deploy-aws.md).

import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

const PLACEHOLDER_PARAMS = {
  subnetIds: 'subnet-00000000000000000',
  securityGroupIds: 'sg-00000000000000000',
  sshKeyParameter: '/staticpod-api/ssh-private-key',
  authTokensSecretArn: 'arn:aws:secretsmanager:eu-west-1:000000000000:secret:staticpod-api/auth-tokens',
}

function run(command, args, env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env })
  if (result.status !== 0) process.exit(result.status ?? 1)
}

run(process.execPath, [join(root, 'scripts/build-lambda.mjs')], process.env)

const given = new Set(process.argv.slice(2).flatMap((a) => (a.startsWith('--param=') ? [a.slice(8).split('=')[0]] : [])))
const params = Object.entries(PLACEHOLDER_PARAMS)
  .filter(([name]) => !given.has(name))
  .map(([name, value]) => `--param=${name}=${value}`)

// osls, not the `serverless` package that serverless-offline pulled in: its
// bin is node_modules/osls/bin/serverless.js whatever .bin/sls points at.
const osls = join(root, 'node_modules/osls/bin/serverless.js')
run(process.execPath, [osls, 'package', ...params, ...process.argv.slice(2)], {
  ...process.env,
  // Packaging reads no AWS resource; dummy credentials keep any credential
  // lookup from reaching a metadata endpoint, and telemetry stays off.
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'packaging-offline',
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'packaging-offline',
  AWS_REGION: process.env.AWS_REGION ?? 'eu-west-1',
  SLS_TELEMETRY_DISABLED: '1',
  SLS_NOTIFICATIONS_MODE: 'off',
  SLS_DEPRECATION_DISABLE: '*',
  SERVERLESS_PLATFORM_STAGE: 'offline',
  CI: process.env.CI ?? '1',
})

const zips = readdirSync(join(root, '.serverless')).filter((f) => f.endsWith('.zip'))
for (const zip of zips) console.log(`.serverless/${zip}: ${(statSync(join(root, '.serverless', zip)).size / 1024 / 1024).toFixed(2)} MB`)
