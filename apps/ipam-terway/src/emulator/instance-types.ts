import type { InstanceTypeLimits } from '../cloud/types';

/**
 * ENI limits of a few instance types, in the shape DescribeInstanceTypes returns them
 * (EniQuantity, EniPrivateIpAddressQuantity, EniIpv6AddressQuantity). The figures follow the
 * published pattern (bigger type, more ENIs and IPs) but are the emulator's, not a price list.
 */
export const EMULATED_INSTANCE_TYPES: Record<string, InstanceTypeLimits> = {
  'ecs.g7.large': { instanceType: 'ecs.g7.large', eniQuantity: 3, ipv4PerEni: 6, ipv6PerEni: 6 },
  'ecs.g7.xlarge': { instanceType: 'ecs.g7.xlarge', eniQuantity: 4, ipv4PerEni: 15, ipv6PerEni: 15 },
  'ecs.g7.2xlarge': { instanceType: 'ecs.g7.2xlarge', eniQuantity: 6, ipv4PerEni: 15, ipv6PerEni: 15 },
  'ecs.g7.4xlarge': { instanceType: 'ecs.g7.4xlarge', eniQuantity: 8, ipv4PerEni: 30, ipv6PerEni: 30 },
  'ecs.g7.8xlarge': { instanceType: 'ecs.g7.8xlarge', eniQuantity: 8, ipv4PerEni: 30, ipv6PerEni: 30 },
};
