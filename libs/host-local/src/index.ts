export {
  allocate,
  release,
  check,
  gc,
  status,
  usage,
  HOST_LOCAL_ERR_NO_ADDRESS,
  HOST_LOCAL_ERR_REQUESTED_ADDRESS,
  HOST_LOCAL_ERR_NOT_RECORDED,
  type Attachment,
  type CheckAttachment,
  type HostLocalOptions,
  type RangeSetUsage,
} from './host-local';
export { loadConfig, DEFAULT_DATA_DIR, type HostLocalConfig, type IpamArgs } from './config';
export { IpRange, RangeSet, type RangeConf } from './range';
export { parseIp, formatIp, type Ip, type IpFamily } from './ip';
export { parseResolvConf } from './resolv-conf';
