// The settings an agent takes that the configuration gives it, as
// src/config.ts has them by default (what `npm start` runs with): for tests
// that make an agent themselves and are not about these settings.

import type { LocalAgentOptions } from '../../src/agents/local.ts'
import type { SshAgentOptions } from '../../src/agents/ssh.ts'
import type { SshPoolSettings } from '../../src/agents/ssh-pool.ts'
import { loadConfig } from '../../src/config.ts'

const defaults = loadConfig({})

const locks = { lockTtlMs: defaults.lockTtlMs, lockWaitMs: defaults.lockWaitMs }

export const LOCAL_AGENT_DEFAULTS: Pick<LocalAgentOptions, 'kubeletHealthzUrl' | 'crictlTimeoutMs' | 'kubeletTimeoutMs' | 'lockTtlMs' | 'lockWaitMs'> = {
  kubeletHealthzUrl: defaults.localNode?.kubeletHealthzUrl as string,
  ...defaults.nodeProbes,
  ...locks,
}

/** The SSH pool's limits (SSH_CONNECT_TIMEOUT_MS ... SSH_MAX_OPERATIONS_PER_NODE). */
export const SSH_POOL_DEFAULTS: Omit<SshPoolSettings, 'privateKey'> = {
  connectTimeoutMs: defaults.ssh.connectTimeoutMs,
  operationTimeoutMs: defaults.ssh.operationTimeoutMs,
  idleTimeoutMs: defaults.ssh.idleTimeoutMs,
  keepaliveIntervalMs: defaults.ssh.keepaliveIntervalMs,
  maxConnections: defaults.ssh.maxConnections,
  maxOperationsPerNode: defaults.ssh.maxOperationsPerNode,
}

export const SSH_AGENT_DEFAULTS: Pick<SshAgentOptions, 'kubeletHealthzPort' | 'crictlTimeoutMs' | 'kubeletTimeoutMs' | 'lockTtlMs' | 'lockWaitMs'> = {
  kubeletHealthzPort: defaults.ssh.kubeletHealthzPort,
  ...defaults.nodeProbes,
  ...locks,
}
