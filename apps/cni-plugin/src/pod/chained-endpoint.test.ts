/** Which interface of a prevResult is the pod's, and which addresses are its (no root needed). */
import { describe, expect, it } from 'vitest';
import { CniError, type CniResult } from '@weft/cni';
import { prevPodInterface } from './chained-endpoint';

const NETNS = '/var/run/netns/pod1';
const bridgeResult: CniResult = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: '02:00:00:00:00:01' },
    { name: 'veth1234abcd', mac: '02:00:00:00:00:02' },
    { name: 'eth0', mac: '02:00:00:00:00:03', sandbox: NETNS },
  ],
  ips: [
    { address: '10.244.1.5/24', gateway: '10.244.1.1', interface: 2 },
    { address: 'fd00::5/64', gateway: 'fd00::1', interface: 2 },
  ],
};

function code(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof CniError ? err.code : -1;
  }
  return undefined;
}

describe('prevPodInterface', () => {
  it('takes the sandboxed interface named CNI_IFNAME and the addresses that point at it', () => {
    expect(prevPodInterface(bridgeResult, { netns: NETNS, ifname: 'eth0' })).toEqual({
      index: 2,
      iface: bridgeResult.interfaces![2],
      cidrs: ['10.244.1.5/24', 'fd00::5/64'],
      ips: ['10.244.1.5', 'fd00::5'],
    });
  });

  it('falls back to the one interface in CNI_NETNS when the name differs; never a host interface of that name', () => {
    expect(prevPodInterface(bridgeResult, { netns: NETNS, ifname: 'net1' }).index).toBe(2);
    const hostEth0: CniResult = { ...bridgeResult, interfaces: [{ name: 'eth0' }, { name: 'x', sandbox: '/other' }] };
    expect(code(() => prevPodInterface(hostEth0, { netns: NETNS, ifname: 'eth0' }))).toBe(7);
  });

  it('prefers the name in this netns when several pod interfaces exist (multi-interface pods)', () => {
    const two: CniResult = {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'net1', sandbox: NETNS }, { name: 'eth0', sandbox: NETNS }],
      ips: [{ address: '10.0.0.2/24', interface: 1 }, { address: '10.1.0.2/24', interface: 0 }],
    };
    expect(prevPodInterface(two, { netns: NETNS, ifname: 'eth0' }).ips).toEqual(['10.0.0.2']);
    expect(code(() => prevPodInterface(two, { netns: NETNS, ifname: 'eth9' }))).toBe(7); // two candidates: no guess
  });

  it('is error 7 when there is no pod interface or no address on it, saying what it saw', () => {
    expect(() => prevPodInterface({ cniVersion: '1.0.0' }, { netns: NETNS, ifname: 'eth0' })).toThrow(/no pod interface eth0/);
    const noIps = { ...bridgeResult, ips: [{ address: '10.244.1.5/24' }] };
    expect(() => prevPodInterface(noIps, { netns: NETNS, ifname: 'eth0' })).toThrow(/no IP address on the pod interface eth0/);
    expect(code(() => prevPodInterface(noIps, { netns: NETNS, ifname: 'eth0' }))).toBe(7);
  });
});
