// kube-apiserver.yaml and etcd.yaml of one control-plane node of a cluster:
// kubeadm's own output (test/manifest/fixtures.ts, taken from kubeadm's
// cmd/kubeadm/app/phases/controlplane/manifests.go and etcd/local.go as
// serialised by sigs.k8s.io/yaml) with what differs per node filled in per
// node: the advertise address (flags, probe hosts, annotations), etcd's
// --name, peer URLs and --initial-cluster. Each file also carries a comment an
// operator added by hand, which a patch must keep.

import { etcdYaml as KUBEADM_ETCD, kubeApiserverYaml as KUBEADM_APISERVER } from '../manifest/fixtures.ts'

export interface ControlPlaneNode {
  /** The node's name, which etcd's --name is too. */
  name: string
  /** Its advertise address. */
  ip: string
}

/** The address and member name kubeadm's fixture was written for. */
const FIXTURE_IP = '192.168.56.10'
const FIXTURE_MEMBER = 'cp-1'

export function kubeApiserverYaml(node: ControlPlaneNode): string {
  return KUBEADM_APISERVER.replaceAll(FIXTURE_IP, node.ip).replace(
    '    - --advertise-address=',
    `    # ${node.name}: the advertise address moved to the storage NIC (CHG-1234)\n    - --advertise-address=`,
  )
}

/** etcd.yaml of a member of the cluster `members` form (each member's own --name and URLs). */
export function etcdYaml(node: ControlPlaneNode, members: ControlPlaneNode[]): string {
  const initialCluster = members.map((m) => `${m.name}=https://${m.ip}:2380`).join(',')
  return KUBEADM_ETCD.replace(`    - --initial-cluster=${FIXTURE_MEMBER}=https://${FIXTURE_IP}:2380\n`, `    - --initial-cluster=${initialCluster}\n`)
    .replace(`    - --name=${FIXTURE_MEMBER}\n`, `    - --name=${node.name} # member name: must match --initial-cluster\n`)
    .replaceAll(FIXTURE_IP, node.ip)
}
