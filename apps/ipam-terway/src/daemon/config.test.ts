import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from './config';

describe('daemon config', () => {
  it("reads Terway's eni_conf keys where they mean the same thing", () => {
    const terway = JSON.stringify({
      version: '1',
      max_pool_size: 5,
      min_pool_size: 0,
      access_key: 'ak',
      access_secret: 'sk',
      vswitches: { 'cn-hangzhou-k': ['vsw-1', 'vsw-2'], 'cn-hangzhou-j': 'vsw-3' },
      service_cidr: '172.21.0.0/20',
      security_groups: ['sg-1', 'sg-2'],
      security_group: 'sg-1',
      eni_tags: { team: 'net' },
      ip_stack: 'dual',
      vswitch_selection_policy: 'random',
      max_eni: 3,
    });
    // As a ConfigMap's data, in YAML.
    const { config, ignored } = parseConfig(`eni_conf: '${terway}'\nsocketPath: /run/we/eni.sock\n`);
    expect(config).toMatchObject({
      maxPoolSize: 5,
      minPoolSize: 0,
      maxEni: 3,
      ecs: { accessKeyId: 'ak', accessKeySecret: 'sk' },
      vSwitches: { 'cn-hangzhou-k': ['vsw-1', 'vsw-2'], 'cn-hangzhou-j': ['vsw-3'] },
      securityGroupIds: ['sg-1', 'sg-2'],
      eniTags: { team: 'net' },
      ipStack: 'dual',
      vSwitchSelectionPolicy: 'random',
      socketPath: '/run/we/eni.sock',
    });
    expect(ignored.sort()).toEqual(['service_cidr', 'version']);
  });

  it('refuses unknown keys, bad values and inconsistent pool sizes', () => {
    expect(() => parseConfig('{"security_group":"sg","bogus":1}')).toThrow(ConfigError);
    expect(() => parseConfig('{"security_group":"sg","min_pool_size":-1}')).toThrow(/whole number/);
    expect(() => parseConfig('{"security_group":"sg","min_pool_size":9,"max_pool_size":2}')).toThrow(
      /min_pool_size/,
    );
    expect(() => parseConfig('{"security_group":"sg","ip_stack":"ipv6"}')).toThrow(/IPv6-only/);
    expect(() => parseConfig('{"min_pool_size":1}')).toThrow(/no security group/);
    expect(() => parseConfig('{"security_group":"sg","batchSize":20}')).toThrow(/at most 10/);
    expect(() => parseConfig('[1,2]')).toThrow(/map/);
  });
});
