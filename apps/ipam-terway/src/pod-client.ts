/**
 * The light entry of @weft/ipam-terway for weft-cni (`@weft/ipam-terway/pod-client`): the ENI
 * daemon's client and the pod side of exclusive ENIs, without the cloud SDK, the YAML parser or
 * the emulator. weft-cni is exec'd per pod and its bundle is compiled at every start, so its ENI
 * and IPvlan modes import this file rather than the package index (which re-exports all of it).
 */
export { EniDaemonClient, DEFAULT_ENI_SOCKET, type AttachmentRef } from './daemon/api';
export type { AllocateRequest, AllocationResult, AddressResult, PoolStatus } from './daemon/pool';
export { EniIpamError, CNI_CODES } from './errors';
export {
  moveEniIntoPod,
  moveEniBack,
  findEniLink,
  isEniCandidate,
  netnsPathOf,
  travelName,
  type ExclusiveEniConfig,
  type NetnsLike,
} from './exclusive/eni-netns';
