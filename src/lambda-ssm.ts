// Reads SecureString parameters with SSM's GetParameter. A module of its own
// so that lambda-secrets.ts can import() it, and with it the SSM client, only
// when a secret is named: the client is imported statically here because a
// bundler's import() of a CommonJS package yields no named exports.

import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm'

export function ssmParameterReader(): { read: (name: string) => Promise<string>; close: () => void } {
  const client = new SSMClient({})
  return {
    read: async (name) => {
      const { Parameter } = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }))
      if (typeof Parameter?.Value !== 'string') throw new Error('the parameter has no value')
      return Parameter.Value
    },
    close: () => client.destroy(),
  }
}
