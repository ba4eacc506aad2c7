export { runWeftEni } from './main';
export { CloudApiError, EniIpamError, CNI_CODES, IP_NOT_ENOUGH, isRetryableCloudCode } from './errors';
export { TokenBucket, type TokenBucketOptions } from './limiter';
export { withBackoff, backoffDelay, jitter, DEFAULT_BACKOFF, type BackoffOptions } from './backoff';
export { EcsCloud, toCloudError, type EcsCloudOptions, type ApiStats } from './cloud/ecs-cloud';
export {
  MetadataClient,
  DEFAULT_METADATA_ENDPOINT,
  type InstanceIdentity,
  type EniMetadata,
} from './cloud/metadata';
export {
  DEFAULT_RATE_LIMITS,
  ECS_ACTIONS,
  type EcsAction,
  type EniCloud,
  type CloudEni,
  type CreateEniRequest,
  type DescribeFilter,
  type InstanceTypeLimits,
} from './cloud/types';
export {
  parseConfig,
  loadConfigFile,
  defaultConfig,
  ConfigError,
  DEFAULT_SOCKET,
  DEFAULT_STATE_DIR,
  type EniDaemonConfig,
  type LoadedConfig,
} from './daemon/config';
export { EniDaemon, type EniDaemonOverrides } from './daemon/daemon';
export {
  EniPool,
  TAG_INSTANCE,
  TAG_MANAGED,
  type AllocateRequest,
  type AllocationResult,
  type AddressResult,
  type PoolStatus,
} from './daemon/pool';
export { EniDaemonClient, serveEniApi, type AttachmentRef } from './daemon/api';
export { CapacityPublisher, IP_RESOURCE, type KubeTarget } from './daemon/capacity';
export {
  NetlinkHostNetwork,
  IpRouteHostNetwork,
  RecordingHostNetwork,
  POD_RULE_PRIORITY,
  type HostNetwork,
  type EniRouting,
  type EniLinkInfo,
} from './daemon/host-network';
export { type PoolState, type Allocation } from './daemon/store';
export {
  EcsEmulator,
  type EcsEmulatorOptions,
  type FaultRule,
  type FaultKind,
  type CallRecord,
} from './emulator/ecs-emulator';
export { CloudModel, EmulatedApiError, type NodeHooks, type EmulatedEni } from './emulator/cloud-model';
export { VethNodeLinks } from './emulator/node-links';
export { eniIpamHandlers, runEniIpamPlugin, toCniResult } from './plugin/eni-ipam-plugin';
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
export { DEFAULT_ENI_SOCKET } from './pod-client';
export { KubeApiEmulator, type KubeNode } from './emulator/kube-emulator';
