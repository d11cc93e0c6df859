#!/usr/bin/env node
// npm run bench:coldstart: time from process start to the first answered
// request (a GraphQL query through the Lambda handler), for the Lambda bundle
// and for a bare Fastify + Mercurius bundle of the same shape
// (bench/coldstart-bare.ts), both built by scripts/build-lambda.mjs with the
// same options. Each run is a fresh `node` process; the medians and their
// ratio are printed. The store is dynalite on 127.0.0.1, so the Lambda figure
// includes creating the DynamoDB client but no AWS latency.
//
//   npm run bench:coldstart [-- --runs 15]

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = fileURLToPath(new URL('..', import.meta.url))
const { values } = parseArgs({ options: { runs: { type: 'string', default: '11' } } })
const runs = Number(values.runs)

function run(args, env = process.env) {
  const result = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', env })
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

// Both bundles under .tmp/ (removed at the end); each holds all it reads at run time, the schema included.
const lambdaOut = join('.tmp', 'coldstart-lambda')
const bareOut = join('.tmp', 'coldstart-bare')
run(['scripts/build-lambda.mjs', '--out', lambdaOut])
run(['scripts/build-lambda.mjs', '--entry', 'bench/coldstart-bare.ts', '--name', 'bare', '--out', bareOut])

// dynalite for the store (the helper is TypeScript: npm runs this file with --import tsx).
const { startDynalite, LOCAL_CREDENTIALS, LOCAL_REGION } = await import('../test/support/dynalite.ts')
const dynamo = await startDynalite()
const table = await dynamo.freshTable('coldstart')
const token = 'coldstart-token'
const lambdaEnv = {
  ...process.env,
  AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
  AWS_REGION: LOCAL_REGION,
  STORE_URL: `dynamodb:${table}`,
  DYNAMODB_ENDPOINT: dynamo.endpoint,
  AUTH_TOKENS: JSON.stringify({ tokens: [{ name: 'bench', role: 'viewer', sha256: createHash('sha256').update(token).digest('hex') }] }),
  LOG_LEVEL: 'silent',
  NODE_ENV: 'production',
}

// Not spawnSync: dynalite answers from this process, which must keep running.
async function coldStart(bundle, body, env, withToken) {
  const { spawn } = await import('node:child_process')
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/coldstart-run.mjs', bundle, body, withToken ? token : ''], { cwd: root, env })
    let out = ''
    let err = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', (c) => (err += c))
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`cold start of ${bundle} failed: ${err}`))
      const result = JSON.parse(out)
      if (result.status !== 200) return reject(new Error(`cold start of ${bundle} answered ${result.status}: ${result.body}`))
      resolve(result.ms)
    })
  })
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const lambdaTimes = []
const bareTimes = []
try {
  // Interleaved, so that a slow moment of the machine hits both alike.
  for (let i = 0; i < runs; i++) {
    lambdaTimes.push(await coldStart(join(lambdaOut, 'lambda.mjs'), JSON.stringify({ query: '{ nodes { name } }' }), lambdaEnv, true))
    bareTimes.push(await coldStart(join(bareOut, 'bare.mjs'), JSON.stringify({ query: '{ hello }' }), { ...process.env, NODE_ENV: 'production' }, false))
  }
} finally {
  await dynamo.close()
  await rm(join(root, lambdaOut), { recursive: true, force: true })
  await rm(join(root, bareOut), { recursive: true, force: true })
}

const fmt = (ms) => `${ms.toFixed(0)} ms`
console.log(`cold start to first answered request, median of ${runs} (node ${process.version}):`)
console.log(`  staticpod-api Lambda bundle : ${fmt(median(lambdaTimes))}  (min ${fmt(Math.min(...lambdaTimes))}, max ${fmt(Math.max(...lambdaTimes))})`)
console.log(`  bare Fastify + Mercurius    : ${fmt(median(bareTimes))}  (min ${fmt(Math.min(...bareTimes))}, max ${fmt(Math.max(...bareTimes))})`)
console.log(`  ratio                       : ${(median(lambdaTimes) / median(bareTimes)).toFixed(2)}x`)
// The fastest runs are the ones a slow moment of the machine did not touch: their ratio moves least between runs.
console.log(`  ratio of the fastest runs   : ${(Math.min(...lambdaTimes) / Math.min(...bareTimes)).toFixed(2)}x`)
