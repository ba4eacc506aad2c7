export {
  Datapath,
  DatapathError,
  DEFAULT_PIN_ROOT,
  DEFAULT_STATE_DIR,
  type DatapathOptions,
  type EndpointRecord,
  type EndpointSpec,
  type PolicyCounter,
} from './datapath';
export { DatapathEvents, toDatapathEvent, type DatapathEvent, type DropReason } from './events';
export { findBpfObjectDir, INSTALLED_OBJECT_DIR } from './object-dir';
export {
  compilePeerEntries,
  compilePolicy,
  portBlocks,
  PolicyError,
  type CompiledByIdentity,
  type CompiledPolicyEntry,
} from './policy-compile';
export {
  FIRST_LOCAL_IDENTITY,
  IPPROTO,
  RESERVED_IDENTITY,
  type EndpointPolicy,
  type IpcacheEntry,
  type PeerPolicyChange,
  type PolicyEntry,
  type PolicyVerdict,
  type TrafficDirection,
} from './policy-types';
