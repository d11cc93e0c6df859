import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigError, checkSshPrivateKey, loadConfig } from '../src/config.ts'

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.doesNotMatch(err.message, /\n/, 'one line')
    return err.message
  }
  assert.fail('expected a ConfigError')
}

describe('config', () => {
  it('has the contract defaults', () => {
    const c = loadConfig({})
    assert.equal(c.host, '127.0.0.1')
    assert.equal(c.port, 3000)
    assert.deepEqual(c.store, { kind: 'sqlite', path: resolve('data/staticpod-api.db') })
    assert.deepEqual(c.localNode?.name, 'local')
    assert.equal(c.localNode?.staticPodPath, resolve('data/manifests'))
    assert.equal(c.logLevel, 'info')
    assert.equal(c.kubeconfig, undefined)
  })

  it('reads every variable', () => {
    const tokens = JSON.stringify({ tokens: [{ name: 'ci', role: 'operator', sha256: 'a'.repeat(64), nodes: ['cp-*'] }] })
    const c = loadConfig({ HOST: '0.0.0.0', PORT: '8080', STORE_URL: 'dynamodb:staticpod', LOCAL_NODE_PATH: 'off', LOG_LEVEL: 'debug', KUBECONFIG: '/k', AUTH_TOKENS: tokens })
    assert.equal(c.port, 8080)
    assert.deepEqual(c.store, { kind: 'dynamodb', table: 'staticpod' })
    assert.equal(c.localNode, null)
    assert.equal(c.kubeconfig, '/k')
    assert.deepEqual(c.tokens, [{ name: 'ci', role: 'operator', sha256: 'a'.repeat(64), nodes: ['cp-*'] }])
  })

  it('names the variable of a bad value', () => {
    assert.match(configError({ PORT: '99999' }), /^Invalid PORT/)
    assert.match(configError({ STORE_URL: 'postgres://x' }), /^Invalid STORE_URL: expected sqlite:<path> or dynamodb:<table>/)
    assert.match(configError({ LOG_LEVEL: 'loud' }), /^Invalid LOG_LEVEL/)
    assert.match(configError({ LOCAL_NODE_NAME: 'Local Node' }), /^Invalid LOCAL_NODE_NAME/)
    assert.match(configError({ LOCAL_NODE_PATH: '/m', LOCAL_NODE_STATE_DIR: '/m/state' }), /^Invalid LOCAL_NODE_STATE_DIR: .* inside LOCAL_NODE_PATH/)
  })

  it('the watch settings: the contract defaults, bounds, and a webhook key that is checked but never echoed', () => {
    const c = loadConfig({})
    assert.deepEqual(c.observe, { intervalSeconds: 30, concurrency: 16 })
    assert.equal(c.eventRetentionDays, 14)
    assert.equal(c.webhooks.maxAttempts, 8)
    assert.equal(c.webhooks.secretKey, undefined)
    assert.deepEqual(c.subscriptions, { maxConnections: 500, maxPerConnection: 20, messagesPerMinute: 120 })
    assert.equal(loadConfig({ OBSERVE_INTERVAL_SECONDS: '0' }).observe.intervalSeconds, 0)
    assert.match(configError({ OBSERVE_INTERVAL_SECONDS: '-1' }), /^Invalid OBSERVE_INTERVAL_SECONDS/)
    assert.match(configError({ EVENT_RETENTION_DAYS: '0' }), /^Invalid EVENT_RETENTION_DAYS/)
    assert.match(configError({ WEBHOOK_MAX_ATTEMPTS: '100' }), /^Invalid WEBHOOK_MAX_ATTEMPTS/)
    const key = 'ab'.repeat(32)
    assert.equal(loadConfig({ WEBHOOK_SECRET_KEY: key }).webhooks.secretKey?.toString('hex'), key)
    const bad = configError({ WEBHOOK_SECRET_KEY: 'not-a-key-but-a-secret-value' })
    assert.match(bad, /^Invalid WEBHOOK_SECRET_KEY:/)
    assert.ok(!bad.includes('not-a-key-but-a-secret-value'), 'the value is not echoed')
    assert.match(configError({ WEBHOOK_SECRET_KEY: key, WEBHOOK_SECRET_KEY_FILE: '/k' }), /set WEBHOOK_SECRET_KEY_FILE or WEBHOOK_SECRET_KEY, not both/)
  })

  it('the kubelet settings: defaults from what kubeadm and the kubelet do, and a healthz URL that is http(s)', () => {
    const c = loadConfig({})
    assert.equal(c.localNode?.kubeletHealthzUrl, 'http://127.0.0.1:10248/healthz')
    assert.equal(c.ssh.kubeletHealthzPort, 10248)
    assert.equal(c.ssh.kubeletConfigPath, '/var/lib/kubelet/config.yaml')
    assert.deepEqual(c.nodeProbes, { crictlTimeoutMs: 10_000, kubeletTimeoutMs: 2_000 })
    assert.equal(loadConfig({ LOCAL_KUBELET_HEALTHZ_URL: 'https://127.0.0.1:10250/healthz' }).localNode?.kubeletHealthzUrl, 'https://127.0.0.1:10250/healthz')
    assert.equal(configError({ LOCAL_KUBELET_HEALTHZ_URL: 'ftp://127.0.0.1/healthz' }), 'Invalid LOCAL_KUBELET_HEALTHZ_URL: expected an http:// or https:// URL (got "ftp://127.0.0.1/healthz")')
    assert.match(configError({ SSH_KUBELET_HEALTHZ_PORT: '0' }), /^Invalid SSH_KUBELET_HEALTHZ_PORT/)
  })

  it('the security settings: lists, booleans, and limits that must fit each other', () => {
    assert.match(configError({ MANIFEST_BUDGET_WAIT_MS: '5000', REQUEST_TIMEOUT_MS: '3000' }), /^Invalid MANIFEST_BUDGET_WAIT_MS: 5000 must be less than REQUEST_TIMEOUT_MS/)
    assert.match(configError({ NODE_ADDRESS_ALLOW: '10.0.0.0/33' }), /^Invalid NODE_ADDRESS_ALLOW: "10.0.0.0\/33": the prefix length/)
    assert.match(configError({ TRUST_PROXY: 'proxy.example' }), /^Invalid TRUST_PROXY/)
    assert.match(configError({ METRICS_PUBLIC: 'maybe' }), /^Invalid METRICS_PUBLIC/)
    const c = loadConfig({ METRICS_PUBLIC: 'false', TRUST_PROXY: '2', HEADERS_TIMEOUT_MS: '90000', REQUEST_TIMEOUT_MS: '30000', NODE_ADDRESS_ALLOW: '10.0.0.0/8:22, [fd00::/8]' })
    assert.equal(c.metricsPublic, false)
    assert.equal(c.trustProxy, 2)
    assert.equal(c.http.headersTimeoutMs, 30000, 'headers cannot take longer than the whole request')
    assert.equal(c.nodeAddressAllow?.allows('10.1.2.3', 22), true)
    assert.equal(c.nodeAddressAllow?.allows('10.1.2.3', 2222), false)
  })

  it('refuses a non-loopback HOST without tokens, and bad tokens documents', () => {
    assert.match(configError({ HOST: '0.0.0.0' }), /^Invalid HOST: 0\.0\.0\.0 is not a loopback address/)
    assert.equal(loadConfig({ HOST: '127.0.0.2' }).host, '127.0.0.2')
    assert.equal(loadConfig({ HOST: '::1' }).host, '::1')
    assert.match(configError({ AUTH_TOKENS: 'tokens: [' }), /^Invalid AUTH_TOKENS: not valid YAML or JSON/)
    assert.match(configError({ AUTH_TOKENS: 'tokens:\n- {name: bot, role: root, sha256: x}' }), /^Invalid AUTH_TOKENS: tokens\.0\.role/)
    assert.match(configError({ AUTH_TOKENS: 'tokens:\n- {name: bot, role: viewer, sha256: s3cret-token}' }), /never the token itself/)
    assert.match(configError({ AUTH_TOKENS_FILE: '/nonexistent/tokens.yaml' }), /^Invalid AUTH_TOKENS_FILE: cannot read/)
  })

  it('checks the shape of the SSH key at once and parses it with ssh2 only when asked (the server does at start)', async () => {
    assert.match(configError({ SSH_PRIVATE_KEY: 'hunter2' }), /^Invalid SSH_PRIVATE_KEY: not a private key/)
    const garbage = '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n'
    const config = loadConfig({ SSH_PRIVATE_KEY: garbage })
    await assert.rejects(checkSshPrivateKey(config), (err: unknown) => err instanceof ConfigError && /^Invalid SSH_PRIVATE_KEY: not a private key ssh2 can use/.test(err.message))
  })
})
