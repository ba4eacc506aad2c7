import { describe, expect, it } from 'vitest';
import { namedNetnsPath, sysctlPath } from './index';

describe('sysctlPath', () => {
  it('converts dotted keys like sysctl(8)', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('net/ipv4/ip_forward');
    expect(sysctlPath('net.ipv6.conf.all.disable_ipv6')).toBe('net/ipv6/conf/all/disable_ipv6');
  });
  it('takes slash keys as paths, so interface names may contain dots', () => {
    expect(sysctlPath('net/ipv4/conf/eth0.100/rp_filter')).toBe('net/ipv4/conf/eth0.100/rp_filter');
    expect(sysctlPath('/proc/sys/net/ipv4/ip_forward')).toBe('net/ipv4/ip_forward');
  });
  it('refuses keys that could leave /proc/sys', () => {
    for (const bad of [
      '',
      '../etc/passwd',
      'net/../../etc',
      'net//ipv4',
      'net/ipv4/ip_forward\0',
      'a b',
      '/etc/passwd',
    ]) {
      expect(() => sysctlPath(bad), bad).toThrow(/invalid sysctl key/);
    }
  });
});

describe('namedNetnsPath', () => {
  it('accepts names ip netns accepts and refuses paths', () => {
    expect(namedNetnsPath('wn-pod.1')).toBe('/var/run/netns/wn-pod.1');
    for (const bad of ['', '.', '..', 'a/b', '../x', 'x\n', 'a'.repeat(65)]) {
      expect(() => namedNetnsPath(bad), bad).toThrow(/invalid netns name/);
    }
  });
});
