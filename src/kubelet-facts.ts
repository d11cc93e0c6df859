// What the kubelet and kubeadm do by themselves, which this service relies on,
// written once. src/config.ts takes its defaults from here; the agents and
// services that need a fact import it from here.

/** The kubelet's healthz port (its healthzPort setting), served on the node's 127.0.0.1. */
export const KUBELET_HEALTHZ_PORT = 10248

/** kubeadm's staticPodPath, and the kubelet's when its config names none. */
export const KUBEADM_STATIC_POD_PATH = '/etc/kubernetes/manifests'

/** Where kubeadm puts the kubelet's config file (KubeletConfiguration, staticPodPath in it). */
export const KUBEADM_KUBELET_CONFIG_PATH = '/var/lib/kubelet/config.yaml'

/**
 * Where a pod came from (`file` for a static pod): an annotation the kubelet
 * sets on the mirror pod it posts, and copies onto the pod's sandbox in the
 * container runtime.
 */
export const CONFIG_SOURCE_ANNOTATION = 'kubernetes.io/config.source'

/**
 * Where the kubelet keeps container logs (its podLogsDir setting, default
 * /var/log/pods): `<namespace>_<pod>_<uid>/<container>/<attempt>.log`
 * (pkg/kubelet/kuberuntime/helpers.go in k8s.io/kubernetes).
 */
export const KUBELET_POD_LOGS_DIR = '/var/log/pods'
