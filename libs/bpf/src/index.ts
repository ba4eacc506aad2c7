export {
  AddressError,
  decodeAddress,
  encodeAddress,
  parseCidr,
  type MapAddress,
  type ParsedCidr,
} from './address';
export { BPF_MAP_TYPE, BPF_UPDATE, BpfMap, BpfMapLayoutError, type BpfMapInfo } from './bpf-map';
export { BpfObject, BpfProgram, type BpfObjectMapInfo } from './bpf-object';
export {
  defineStruct,
  rawCodec,
  u32Codec,
  type Codec,
  type FieldKind,
  type StructCodec,
  type StructField,
  type StructOf,
} from './codec';
export {
  enumName,
  MIRRORED_ENUMS,
  WEFT_AF,
  WEFT_CFG_F,
  WEFT_CT_F,
  WEFT_CT_STATUS,
  WEFT_DIRECTION,
  WEFT_DROP_REASON,
  WEFT_EP_F,
  WEFT_EVENT_TYPE,
  WEFT_POLICY_EXACT_BITS,
  WEFT_POLICY_FULL_BITS,
  WEFT_VERDICT,
} from './enums';
export { RingBuffer } from './ring-buffer';
export {
  ctEntry,
  ctKey,
  endpointInfo,
  endpointKey,
  ipcacheKey,
  ipcacheValue,
  policyKey,
  policyValue,
  STRUCT_MIRRORS,
  weftConfig,
  weftEvent,
  type CtEntry,
  type CtKey,
  type EndpointInfo,
  type EndpointKey,
  type IpcacheKey,
  type IpcacheValue,
  type PolicyKey,
  type PolicyValue,
  type WeftConfig,
  type WeftEvent,
} from './structs';
export {
  attachTc,
  detachTc,
  queryTc,
  WEFT_TC_HANDLE,
  WEFT_TC_PRIORITY,
  type TcAttachment,
  type TcDirection,
  type TcOptions,
} from './tc';
