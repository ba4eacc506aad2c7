/** What the ENI pool needs from the cloud, independent of the SDK. */

export type EniStatus = 'Available' | 'Attaching' | 'InUse' | 'Detaching' | 'Deleting' | 'Creating';

export interface CloudEni {
  id: string;
  mac: string;
  status: EniStatus | string;
  type: 'Primary' | 'Secondary' | string;
  vSwitchId: string;
  zoneId: string;
  instanceId: string;
  primaryIp: string;
  /** Secondary IPv4 addresses (the primary one excluded). */
  secondaryIps: string[];
  ipv6: string[];
  securityGroupIds: string[];
  tags: Record<string, string>;
}

export interface CreateEniRequest {
  vSwitchId: string;
  securityGroupIds: string[];
  tags: Record<string, string>;
  secondaryIpCount: number;
  ipv6Count: number;
  description: string;
  /** Idempotency token: retrying the same create never makes a second ENI. */
  clientToken: string;
}

export interface DescribeFilter {
  instanceId?: string;
  eniIds?: string[];
  tags?: Record<string, string>;
  status?: string;
}

export interface InstanceTypeLimits {
  instanceType: string;
  /** ENIs the instance can have, the primary one included. */
  eniQuantity: number;
  /** IPv4 addresses per ENI, the primary one included. */
  ipv4PerEni: number;
  ipv6PerEni: number;
}

/** The ECS operations the daemon uses; `EcsCloud` implements it over the real SDK. */
export interface EniCloud {
  createEni(req: CreateEniRequest): Promise<CloudEni>;
  attachEni(eniId: string, instanceId: string): Promise<void>;
  detachEni(eniId: string, instanceId: string): Promise<void>;
  deleteEni(eniId: string): Promise<void>;
  /** One call per page (100 ENIs a page); filtered on the server side. */
  describeEnis(filter: DescribeFilter): Promise<CloudEni[]>;
  assignIpv4(eniId: string, count: number, clientToken: string): Promise<string[]>;
  unassignIpv4(eniId: string, ips: string[]): Promise<void>;
  assignIpv6(eniId: string, count: number, clientToken: string): Promise<string[]>;
  unassignIpv6(eniId: string, ips: string[]): Promise<void>;
  describeInstanceType(instanceType: string): Promise<InstanceTypeLimits>;
}

/** The ECS API names, as the limiter and the metrics know them. */
export const ECS_ACTIONS = [
  'CreateNetworkInterface',
  'AttachNetworkInterface',
  'DetachNetworkInterface',
  'DeleteNetworkInterface',
  'DescribeNetworkInterfaces',
  'AssignPrivateIpAddresses',
  'UnassignPrivateIpAddresses',
  'AssignIpv6Addresses',
  'UnassignIpv6Addresses',
  'DescribeInstanceTypes',
] as const;
export type EcsAction = (typeof ECS_ACTIONS)[number];

/** Per-minute limits as Terway sets them by default. */
export const DEFAULT_RATE_LIMITS: Record<EcsAction, number> = {
  CreateNetworkInterface: 500,
  AttachNetworkInterface: 500,
  DetachNetworkInterface: 500,
  DeleteNetworkInterface: 500,
  DescribeNetworkInterfaces: 800,
  AssignPrivateIpAddresses: 400,
  UnassignPrivateIpAddresses: 400,
  AssignIpv6Addresses: 400,
  UnassignIpv6Addresses: 400,
  DescribeInstanceTypes: 800,
};
