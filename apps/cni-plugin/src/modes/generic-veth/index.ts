/**
 * `"chainingMode": "generic-veth"`: weft-cni after any plugin that gives the pod a veth whose
 * peer is in the host namespace (flannel, bridge, ptp, calico...), as Cilium's generic-veth
 * chaining. The datapath attaches to that host peer; the previous result is passed on unchanged.
 * See pod/chained-endpoint.ts and docs/chaining.md.
 */
import { chainedMode, resolveVeth, verifyVeth, type ChainedFlavour } from '../../pod/chained-endpoint';

export const genericVethFlavour: ChainedFlavour = {
  mode: 'generic-veth',
  resolve: (_ctx, _w, pod, podLink, links) => resolveVeth(pod, podLink, links),
  verify: verifyVeth,
};

export const genericVethMode = chainedMode(genericVethFlavour);
