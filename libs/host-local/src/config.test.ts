import { describe, expect, it } from 'vitest';
import { CniError } from '@weft/cni';
import { loadConfig } from './config';
import { formatIp } from './ip';

const net = (ipam: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  cniVersion: '1.0.0',
  name: 'whnet',
  type: 'bridge',
  ipam: { type: 'weft-host-local', ...ipam },
  ...extra,
});

function cniError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CniError);
    return err as CniError;
  }
  throw new Error('expected a CniError');
}

describe('loadConfig', () => {
  it('reads ranges, routes, dataDir and resolvConf', () => {
    const c = loadConfig(
      net({
        ranges: [
          [
            {
              subnet: '10.10.0.0/16',
              rangeStart: '10.10.1.20',
              rangeEnd: '10.10.3.50',
              gateway: '10.10.0.254',
            },
            { subnet: '172.16.5.0/24' },
          ],
          [{ subnet: '3ffe:ffff:0:01ff::/64' }],
        ],
        routes: [
          { dst: '0.0.0.0/0' },
          { dst: '192.168.0.0/16', gw: '10.10.5.1' },
          { dst: '3ffe:ffff:0:01ff::1/64' },
        ],
        dataDir: '/run/wh-state',
        resolvConf: '/etc/resolv.conf',
      }),
    );
    expect(c.network).toBe('whnet');
    expect(c.dataDir).toBe('/run/wh-state');
    expect(c.resolvConf).toBe('/etc/resolv.conf');
    expect(c.rangeSets.map((s) => s.toString())).toEqual([
      '10.10.1.20-10.10.3.50,172.16.5.1-172.16.5.254',
      '3ffe:ffff:0:1ff::1-3ffe:ffff:0:1ff:ffff:ffff:ffff:ffff',
    ]);
    expect(c.routes).toEqual([
      { dst: '0.0.0.0/0' },
      { dst: '192.168.0.0/16', gw: '10.10.5.1' },
      { dst: '3ffe:ffff:0:1ff::1/64' },
    ]);
  });

  it('defaults dataDir to /var/lib/cni/networks', () => {
    expect(loadConfig(net({ ranges: [[{ subnet: '10.0.0.0/24' }]] })).dataDir).toBe('/var/lib/cni/networks');
  });

  it('puts the legacy single range first, and runtimeConfig.ipRanges before it', () => {
    const c = loadConfig(
      net(
        { subnet: '10.1.0.0/24', rangeStart: '10.1.0.100', ranges: [[{ subnet: '10.2.0.0/24' }]] },
        { runtimeConfig: { ipRanges: [[{ subnet: '10.3.0.0/24' }]] } },
      ),
    );
    expect(c.rangeSets.map((s) => s.toString())).toEqual([
      '10.3.0.1-10.3.0.254',
      '10.1.0.100-10.1.0.254',
      '10.2.0.1-10.2.0.254',
    ]);
  });

  it('collects requested addresses from CNI_ARGS IP=, args.cni.ips and runtimeConfig.ips, in that order', () => {
    const c = loadConfig(
      net(
        { ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]] },
        { args: { cni: { ips: ['fd00::5'] } }, runtimeConfig: { ips: ['10.0.0.9/24'] } },
      ),
      'IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.7',
    );
    expect(c.requestedIps.map(formatIp)).toEqual(['10.0.0.7', 'fd00::5', '10.0.0.9']);
  });

  it.each([
    [{ name: 'whnet', cniVersion: '1.0.0' }, 7, "IPAM config missing 'ipam' key"],
    [net({}), 7, 'no IP ranges specified'],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/33' }]] }),
      7,
      'invalid range set 0: invalid CIDR address: 10.0.0.0/33',
    ],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.1.0.0/24', rangeStart: '10.2.0.1' }]] }),
      7,
      'invalid range set 1: RangeStart 10.2.0.1 not in network 10.1.0.0/24',
    ],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/16' }], [{ subnet: '10.0.1.0/24' }]] }),
      7,
      'range set 0 overlaps with 1',
    ],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/24', bogus: 1 }]] }),
      2,
      'invalid range set 0: unsupported field "bogus"',
    ],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/24' }]], routes: [{ dst: 'default' }] }),
      7,
      'invalid ipam.routes[0].dst "default"',
    ],
    [
      { ...net({ ranges: [[{ subnet: '10.0.0.0/24' }]] }), name: '../etc' },
      7,
      'invalid network name "../etc"',
    ],
    [
      net({ ranges: [[{ subnet: '10.0.0.0/24' }]] }, { runtimeConfig: { ips: ['nope'] } }),
      7,
      'cannot understand ip',
    ],
  ])('refuses %j with code %i', (conf, code, message) => {
    const err = cniError(() => loadConfig(conf));
    expect(err.code).toBe(code);
    expect(err.msg).toContain(message);
  });

  it('refuses a bad IP= in CNI_ARGS with code 4 (environment)', () => {
    const err = cniError(() => loadConfig(net({ ranges: [[{ subnet: '10.0.0.0/24' }]] }), 'IP=10.0.0.300'));
    expect(err.code).toBe(4);
  });
});
