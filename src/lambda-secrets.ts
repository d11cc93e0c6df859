// Secrets for the Lambda entry point, read once at cold start from SSM
// Parameter Store or Secrets Manager, so that the template and the function's
// environment hold only their names, never their values.
//
// Both sources are read with one client, SSM's GetParameter: a Secrets Manager
// secret is also reachable as the parameter
// /aws/reference/secretsmanager/<secret id or ARN>. One client keeps the
// bundle and the cold start smaller, and the IAM policy to two actions.

/** For each setting the app reads (left), the variables that may name where its value is kept. */
const SECRET_SOURCES = {
  SSH_PRIVATE_KEY: { ssmParameter: 'SSH_PRIVATE_KEY_SSM_PARAMETER', secretArn: 'SSH_PRIVATE_KEY_SECRET_ARN' },
  AUTH_TOKENS: { ssmParameter: 'AUTH_TOKENS_SSM_PARAMETER', secretArn: 'AUTH_TOKENS_SECRET_ARN' },
} as const

type SecretSetting = keyof typeof SECRET_SOURCES

/** Reads one parameter, decrypted (SecureString). */
export type ParameterReader = (name: string) => Promise<string>

const SECRETS_MANAGER_REFERENCE = '/aws/reference/secretsmanager/'

export class SecretLoadError extends Error {
  override readonly name = 'SecretLoadError'
}

/**
 * The environment with each secret setting filled in from where its
 * *_SSM_PARAMETER or *_SECRET_ARN variable points. A setting given both ways,
 * or also as plain text, is refused: which one wins would be a guess.
 */
export async function resolveSecrets(env: NodeJS.ProcessEnv, readParameter?: ParameterReader): Promise<NodeJS.ProcessEnv> {
  const wanted: Array<{ setting: SecretSetting; parameter: string; from: string }> = []
  for (const [setting, sources] of Object.entries(SECRET_SOURCES) as Array<[SecretSetting, (typeof SECRET_SOURCES)[SecretSetting]]>) {
    const parameter = nonEmpty(env[sources.ssmParameter])
    const secret = nonEmpty(env[sources.secretArn])
    const given = [parameter && sources.ssmParameter, secret && sources.secretArn, nonEmpty(env[setting]) && setting].filter(Boolean)
    if (given.length > 1) throw new SecretLoadError(`${setting}: set only one of ${given.join(', ')}`)
    if (parameter) wanted.push({ setting, parameter, from: sources.ssmParameter })
    if (secret) wanted.push({ setting, parameter: SECRETS_MANAGER_REFERENCE + secret, from: sources.secretArn })
  }
  if (wanted.length === 0) return env
  // The SDK is imported only when a secret is to be read: a function without any loads none of it.
  const ssm = readParameter ? null : (await import('./lambda-ssm.ts')).ssmParameterReader()
  const read = readParameter ?? ssm!.read
  const resolved: NodeJS.ProcessEnv = { ...env }
  try {
    await Promise.all(
      wanted.map(async ({ setting, parameter, from }) => {
        try {
          resolved[setting] = await read(parameter)
        } catch (err) {
          throw new SecretLoadError(`${setting}: cannot read ${parameter} (named by ${from}): ${err instanceof Error ? err.message : String(err)}`)
        }
      }),
    )
  } finally {
    // Read once per container: no reason to keep its connections open.
    ssm?.close()
  }
  return resolved
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}
