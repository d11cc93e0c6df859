import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { imageProblem, MAX_IMAGE_LENGTH, tagProblem, withTag } from '../../../src/manifest/change/image.ts'

const digest = `sha256:${'9f'.repeat(32)}`

describe('withTag', () => {
  it('replaces the tag, keeping registry, port and repository', () => {
    assert.equal(withTag('registry.k8s.io/kube-apiserver:v1.31.3', 'v1.31.4'), 'registry.k8s.io/kube-apiserver:v1.31.4')
    assert.equal(withTag('localhost:5000/x:1', '2'), 'localhost:5000/x:2')
    assert.equal(withTag('localhost:5000/team/x', '2'), 'localhost:5000/team/x:2')
    assert.equal(withTag('[::1]:5000/x:1', '2'), '[::1]:5000/x:2')
    assert.equal(withTag('nginx', '1.27'), 'nginx:1.27')
  })

  it('drops a digest', () => {
    assert.equal(withTag(`registry.k8s.io/etcd:3.5.12-0@${digest}`, '3.5.15-0'), 'registry.k8s.io/etcd:3.5.15-0')
    assert.equal(withTag(`localhost:5000/etcd@${digest}`, '3.5.15-0'), 'localhost:5000/etcd:3.5.15-0')
  })
})

describe('imageProblem', () => {
  it('accepts references with registry, port, tag and digest', () => {
    for (const image of ['busybox', 'docker.io/library/busybox:1.36', 'a-b.c_d/e__f:g', 'registry-1.example:443/a/b/c:v1', `x@${digest}`, `x:1@${digest}`, `x@sha512+b64u:${'a'.repeat(32)}`]) {
      assert.equal(imageProblem(image), null, image)
    }
  })

  it('refuses what a runtime cannot pull', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      [' nginx', /whitespace/],
      ['nginx:1\n', /whitespace/],
      ['Nginx', /not an image reference/],
      ['nginx:', /not an image reference/],
      ['nginx::1', /not an image reference/],
      ['nginx@sha256:abc', /not an image reference/],
      ['-nginx', /not an image reference/],
      ['registry.k8s.io/', /not an image reference/],
      [`r/${'a'.repeat(MAX_IMAGE_LENGTH)}`, /the limit is 512/],
    ]
    for (const [image, message] of cases) assert.match(imageProblem(image) ?? 'accepted', message, JSON.stringify(image))
  })
})

describe('tagProblem', () => {
  it('follows the reference grammar for tags', () => {
    for (const ok of ['v1.31.4', 'latest', '3.5.15-0', '_x', 'A'.repeat(128)]) assert.equal(tagProblem(ok), null, ok)
    for (const bad of ['', '.v1', '-v1', 'v1 ', 'v1:2', 'v1@sha', 'A'.repeat(129)]) assert.ok(tagProblem(bad), bad)
  })
})
