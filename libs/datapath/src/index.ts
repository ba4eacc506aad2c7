export {
  FIRST_LOCAL_IDENTITY,
  IPPROTO,
  RESERVED_IDENTITY,
  type EndpointPolicy,
  type IpcacheEntry,
  type PolicyEntry,
  type PolicyVerdict,
  type TrafficDirection,
} from './policy-types';
