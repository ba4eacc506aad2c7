import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '@weft/native';
import { Netns } from './netns';

/** Where `ip netns` keeps named namespaces; `ip netns exec <name>` sees ours and vice versa. */
export const NETNS_RUN_DIR = '/var/run/netns';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export function namedNetnsPath(name: string): string {
  if (!NAME.test(name))
    throw Object.assign(new Error(`invalid netns name ${JSON.stringify(name)}`), { code: 'EINVAL' });
  return join(NETNS_RUN_DIR, name);
}

/** Like `ip netns add <name>`, returning the new namespace opened. EEXIST if the name is taken. */
export function createNamedNetns(name: string): Netns {
  const path = namedNetnsPath(name);
  mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  native().createNetns(path);
  return Netns.open(path);
}

/** Like `ip netns del <name>`; a name that does not exist is not an error (returns false). */
export function deleteNamedNetns(name: string): boolean {
  try {
    native().deleteNetns(namedNetnsPath(name));
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return false;
    throw err;
  }
}
