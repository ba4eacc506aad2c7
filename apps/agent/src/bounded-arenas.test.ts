import { describe, expect, it } from 'vitest';
import { boundedArenasPlan, type ProcessView } from './bounded-arenas';

const base: ProcessView = {
  platform: 'linux',
  env: { PATH: '/usr/bin' },
  execPath: '/usr/bin/node',
  argv: ['/usr/bin/node', '/opt/weft/weft-agent.cjs', '--manifests', '/etc/weft'],
  execArgv: ['--max-old-space-size=512'],
  argv0: 'node',
  isSea: false,
};

describe('boundedArenasPlan', () => {
  it('re-runs a script with the same node flags, arguments and environment, plus the arena limit', () => {
    expect(boundedArenasPlan(base)).toEqual({
      path: '/usr/bin/node',
      argv: ['node', '--max-old-space-size=512', '/opt/weft/weft-agent.cjs', '--manifests', '/etc/weft'],
      env: ['PATH=/usr/bin', 'MALLOC_ARENA_MAX=2'],
    });
  });

  it('re-runs a single executable by the name it was invoked as, with the extra environment', () => {
    const sea: ProcessView = {
      ...base,
      execPath: '/opt/cni/bin/weft',
      argv: ['/opt/cni/bin/weft', 'weft-agent', '--node-name', 'n1'],
      execArgv: [],
      argv0: 'weft-agent',
      isSea: true,
    };
    expect(boundedArenasPlan(sea, { WEFT_PROGRAM: 'weft-agent' })).toEqual({
      path: '/opt/cni/bin/weft',
      argv: ['weft-agent', '--node-name', 'n1'],
      env: ['PATH=/usr/bin', 'WEFT_PROGRAM=weft-agent', 'MALLOC_ARENA_MAX=2'],
    });
  });

  it('leaves a MALLOC_ARENA_MAX the operator set alone (0 keeps glibc default), and non-Linux hosts', () => {
    expect(boundedArenasPlan({ ...base, env: { MALLOC_ARENA_MAX: '0' } })).toBeUndefined();
    expect(boundedArenasPlan({ ...base, env: { MALLOC_ARENA_MAX: '4' } })).toBeUndefined();
    expect(boundedArenasPlan({ ...base, platform: 'darwin' })).toBeUndefined();
  });
});
