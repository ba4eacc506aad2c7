export { Netns, NetnsError, isNetnsPath } from './netns';
export { NETNS_RUN_DIR, createNamedNetns, deleteNamedNetns, namedNetnsPath } from './named-netns';
export { sysctlPath } from './sysctl-path';
