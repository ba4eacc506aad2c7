export {
  Rtnl,
  openRtnl,
  type LinkRef,
  type VethOptions,
  type IpvlanOptions,
  type MacvlanOptions,
  type RtnlOptions,
} from './rtnl';
export { NetlinkError, isNotFound, isExists, isUnsupported } from './errors';
export type { Link, IpvlanMode, IpvlanFlag, MacvlanMode } from './link-codec';
export type {
  Address,
  AddressOptions,
  Route,
  RouteSpec,
  RouteScope,
  RouteType,
  RouteProtocol,
  Neighbour,
  NeighbourState,
  Rule,
  RuleSpec,
} from './ip-codec';
export { parseIp, formatIp, parsePrefix, parseMac, formatMac, type IpFamily } from './addr';
// Pure encoders, exported for tests and for callers that batch their own messages.
export {
  encodeVeth,
  encodeIpvlan,
  encodeMacvlan,
  encodeBridge,
  decodeLink,
  assertLinkName,
} from './link-codec';
