import { readlinkSync, statfsSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parseCniArgs, type CniArgs, type ParseCniArgsOptions } from './cni-args';
import { CniError, CNI_ERR_INVALID_ENV, CNI_ERR_UNKNOWN_CONTAINER } from './errors';
import { short } from './result';

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

/** statfs f_type of nsfs, the filesystem of /proc/PID/ns/* and their bind mounts. */
export const NSFS_MAGIC = 0x6e736673;

/** The spec's pattern for a container ID. */
export const CONTAINER_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The CNI_* environment, validated for its command. Absent values are ''/[]. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  /** '' when not given, and on DEL when the namespace is already gone. */
  netns: string;
  ifname: string;
  args: CniArgs;
  /** CNI_PATH split on ':' (empty entries dropped). */
  path: string[];
}

export type EnvSource = Record<string, string | undefined>;

function envError(msg: string): never {
  throw new CniError(CNI_ERR_INVALID_ENV, msg);
}

/**
 * Linux interface-name rules (dev_valid_name) plus ASCII-only: 1-15 bytes, not "." or "..",
 * no "/", ":" or whitespace.
 */
export function validateIfname(name: string, variable = 'CNI_IFNAME'): void {
  if (name === '') envError(`${variable} is empty`);
  if (!/^[\x21-\x7e]+$/.test(name))
    envError(`${variable} ${short(name)} must be printable ASCII without whitespace`);
  if (name.length > 15) envError(`${variable} ${short(name)} is longer than 15 bytes`);
  if (name === '.' || name === '..') envError(`${variable} ${short(name)} is not a valid interface name`);
  if (/[/:]/.test(name)) envError(`${variable} ${short(name)} must not contain "/" or ":"`);
}

export function validateContainerId(id: string): void {
  if (id === '') envError('CNI_CONTAINERID is empty');
  if (!CONTAINER_ID_PATTERN.test(id)) {
    envError(`CNI_CONTAINERID ${short(id)} must match ${CONTAINER_ID_PATTERN.source}`);
  }
}

/**
 * Checks that `path` names a network namespace: absolute, on nsfs and, when it reads as a
 * /proc namespace link ("net:[…]"), of the net type. A missing path is error 3 (nothing to clean
 * up for that container); anything else wrong is error 4.
 * Returns false (instead of throwing 3) when `allowMissing` and the path does not exist.
 */
export function checkNetnsPath(path: string, allowMissing = false): boolean {
  if (!isAbsolute(path)) envError(`CNI_NETNS ${short(path)} must be an absolute path`);
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (allowMissing) return false;
      throw new CniError(CNI_ERR_UNKNOWN_CONTAINER, `CNI_NETNS ${short(path)} does not exist`);
    }
    envError(`CNI_NETNS ${short(path)} cannot be inspected: ${code ?? (err as Error).message}`);
  }
  if (type !== NSFS_MAGIC) envError(`CNI_NETNS ${short(path)} is not a network namespace (not on nsfs)`);
  let link: string | undefined;
  try {
    link = readlinkSync(path);
  } catch {
    link = undefined; // a bind mount, the usual case: nsfs is all we can tell without an ioctl
  }
  const kind = link && /^([a-z_]+):\[\d+\]$/.exec(link)?.[1];
  if (kind && kind !== 'net')
    envError(`CNI_NETNS ${short(path)} is a ${kind} namespace, not a network namespace`);
  return true;
}

export interface ParseCniEnvOptions {
  /** Skip the nsfs check of CNI_NETNS (unit tests of handlers only). */
  skipNetnsCheck?: boolean;
  argsOptions?: ParseCniArgsOptions;
}

/**
 * Reads and validates the CNI_* variables for their command (what libcni's skel requires):
 * ADD/CHECK need CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_PATH; DEL the same except that
 * CNI_NETNS may be empty or gone; GC/STATUS only CNI_PATH (optional here); VERSION nothing.
 * Every failure is error 4 (3 for an ADD/CHECK netns that does not exist).
 */
export function parseCniEnv(env: EnvSource, options: ParseCniEnvOptions = {}): CniEnv {
  const raw = env.CNI_COMMAND;
  if (raw === undefined || raw === '') envError('CNI_COMMAND is not set');
  const command = raw as CniCommand;
  if (!CNI_COMMANDS.includes(command)) {
    envError(`unknown CNI_COMMAND ${short(raw)} (expected one of ${CNI_COMMANDS.join(', ')})`);
  }
  const empty: CniEnv = { command, containerId: '', netns: '', ifname: '', args: parseCniArgs(''), path: [] };
  if (command === 'VERSION') return empty;

  const path = (env.CNI_PATH ?? '').split(':').filter((p) => p !== '');
  if (command === 'GC' || command === 'STATUS') return { ...empty, path };

  const missing: string[] = [];
  const need = (name: string) => {
    const v = env[name] ?? '';
    if (v === '') missing.push(name);
    return v;
  };
  const containerId = need('CNI_CONTAINERID');
  const netns = command === 'DEL' ? (env.CNI_NETNS ?? '') : need('CNI_NETNS');
  const ifname = need('CNI_IFNAME');
  need('CNI_PATH');
  if (missing.length)
    envError(`required environment variables missing for ${command}: ${missing.join(', ')}`);

  validateContainerId(containerId);
  validateIfname(ifname);
  let netnsOut = netns;
  if (netns !== '' && !options.skipNetnsCheck) {
    // DEL must succeed when the namespace is already gone (spec: clean up what is left).
    const exists = checkNetnsPath(netns, command === 'DEL');
    if (!exists) netnsOut = '';
  }
  const args = parseCniArgs(env.CNI_ARGS, options.argsOptions);
  return { command, containerId, netns: netnsOut, ifname, args, path };
}
