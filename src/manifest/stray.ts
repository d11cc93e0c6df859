// Names of backup and editor leftovers. The kubelet runs every file in
// staticPodPath whose name does not start with '.', so `cp x.yaml x.yaml.bak`
// makes a second pod definition that can shadow the real one (kubeadm#2823,
// kubernetes#55596).

const STRAY_SUFFIXES = ['.bak', '.orig', '.old', '.rej', '~', '.swp', '.swo', '.tmp', '.save', '.rpmnew', '.rpmsave']

export function isStrayFileName(name: string): boolean {
  const lower = name.toLowerCase()
  if (STRAY_SUFFIXES.some((suffix) => lower.endsWith(suffix) && lower.length > suffix.length)) return true
  if (/\.dpkg-[^/]*$/.test(lower)) return true // .dpkg-old, .dpkg-dist, .dpkg-new ...
  if (name === '4913') return true // vim creates and deletes it to test whether it may write to the directory
  return name.length > 1 && name.startsWith('#') && name.endsWith('#') // Emacs auto-save
}
