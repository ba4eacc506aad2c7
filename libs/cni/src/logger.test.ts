import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from './logger';

const dir = mkdtempSync(join(tmpdir(), 'wc-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createLogger', () => {
  it('is silent by default', () => {
    const lines: string[] = [];
    const log = createLogger('t', { env: {}, sink: (l) => lines.push(l) });
    log.error('nobody hears this');
    expect(log.level).toBe('silent');
    expect(lines).toEqual([]);
  });

  it('writes JSON lines at or above WEFT_LOG_LEVEL', () => {
    const lines: string[] = [];
    const log = createLogger('weft-cni', { env: { WEFT_LOG_LEVEL: 'info' }, sink: (l) => lines.push(l) });
    log.debug('hidden');
    log.info('hello', { containerId: 'c1' });
    log.child('ipam', { ifname: 'eth0' }).warn('careful');
    const parsed = lines.map((l) => JSON.parse(l));
    expect(parsed).toHaveLength(2);
    expect(parsed[0]).toMatchObject({ level: 'info', name: 'weft-cni', msg: 'hello', containerId: 'c1' });
    expect(parsed[1]).toMatchObject({ level: 'warn', name: 'weft-cni.ipam', msg: 'careful', ifname: 'eth0' });
  });

  it('appends to WEFT_LOG_FILE, or to a logFile configured later (info by default then)', () => {
    const envFile = join(dir, 'env.log');
    createLogger('a', { env: { WEFT_LOG_FILE: envFile, WEFT_LOG_LEVEL: 'debug' } }).debug('one');
    expect(JSON.parse(readFileSync(envFile, 'utf8').trim())).toMatchObject({ msg: 'one', level: 'debug' });

    const confFile = join(dir, 'conf.log');
    const log = createLogger('b', { env: {} });
    log.info('before');
    log.configure({ file: confFile });
    log.debug('still hidden');
    log.info('after');
    expect(
      readFileSync(confFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).msg),
    ).toEqual(['after']);
  });

  it('never throws when the destination is unwritable', () => {
    const log = createLogger('c', {
      env: { WEFT_LOG_LEVEL: 'info', WEFT_LOG_FILE: '/nonexistent-dir/wc/x.log' },
    });
    expect(() => log.error('lost')).not.toThrow();
  });
});
