import { closeSync, lstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { seaFileGroup } from '@weft/native';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildInfo } from '../build-info';
import { isSingleExecutable } from '../runtime';
import { DEFAULT_CONFLIST_NAME, DEFAULT_POD_SUBNET } from './conflist';
import { DEFAULT_AGENT_SOCKET } from '@weft/agent-api';
import { CHAINING_MODES, type ChainingMode } from './chain';
import {
  DEFAULT_BIN_DIR,
  DEFAULT_CONF_DIR,
  install,
  installChained,
  InstallError,
  LINK_NAMES,
  SHIM_NAME,
  uninstall,
  type ChangeReport,
} from './install';

const INSTALL_HELP = `usage: weft install [options]

Copies this executable to the CNI bin dir as "weft", and the small weft-cni front end (which runs
each request in weft-agent, or with "weft" when no agent answers) as "weft-cni"; links
${LINK_NAMES.filter((n) => n !== SHIM_NAME).join(', ')} to weft, and
writes an example ${DEFAULT_CONFLIST_NAME} (weft-cni veth + weft-host-local + portmap) when the conf
dir holds no other network. Idempotent; "weft uninstall" removes exactly what it added.

options:
  --bin-dir DIR      CNI plugin directory (default ${DEFAULT_BIN_DIR})
  --conf-dir DIR     CNI network config directory (default ${DEFAULT_CONF_DIR})
  --conflist NAME    name of the example conflist (default ${DEFAULT_CONFLIST_NAME})
  --subnet CIDR      pod range of the example conflist (default ${DEFAULT_POD_SUBNET})
  --no-conflist      leave network configs alone
  --force            replace files of the same names that weft did not install
  --from FILE        install FILE instead of the running executable

chaining weft after another CNI (no example conflist is written then):
  --chain-after NET  put weft-cni into network NET's conflist ("*": the network the runtime
                     uses, i.e. the first file by name), right after its interface plugin
                     (flannel, terway, bridge, ptp, ...) and before portmap, bandwidth, tuning,
                     firewall, sbr. A .conf becomes a .conflist. The file as it was is kept as
                     <file>.weft-backup; "weft uninstall" restores it. Running it again changes
                     nothing. Refuses, changing nothing, if NET is not found, its file is
                     malformed, or cilium-cni is chained there (see --replace).
  --chaining-mode M  ${CHAINING_MODES.join(' | ')} (default: terway after terway, else generic-veth)
  --replace TYPE     remove plugin TYPE from the list, weft taking its place (e.g. cilium-cni);
                     may be repeated
  --require-agent    rewrite the conflist only once weft-agent answers /v1/healthz
  --agent-socket P   the agent's socket (default ${DEFAULT_AGENT_SOCKET}; written into weft's
                     entry when not the default)
  --wait SECONDS     how long --require-agent waits for the agent (default 30)
  --degraded         write "degraded": true into weft's entry (pods start while the agent is down)
`;

const UNINSTALL_HELP = `usage: weft uninstall [--bin-dir DIR]

Removes what "weft install" recorded in DIR/.weft-install.json (default DIR ${DEFAULT_BIN_DIR}):
files still exactly as installed, then the directories it created if empty. Nothing else.
A conflist rewritten by --chain-after is restored from its .weft-backup when it is still as weft
wrote it; otherwise (or without a backup) weft-cni is taken out of it and the rest left alone.
`;

function usageError(message: string, help: string): number {
  process.stderr.write(`weft: ${message}\n\n${help}`);
  return 2;
}

function isElf(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    try {
      readSync(fd, head, 0, 4, 0);
    } finally {
      closeSync(fd);
    }
    return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } catch {
    return false;
  }
}

/** The running single executable; under `node dist/bin/weft.cjs`, the one built beside it. */
/** The weft-cni shim that goes with `source`: carried inside the executable, or built beside it. */
function shimFor(source: string): string | undefined {
  if (isSingleExecutable() && source === process.execPath) {
    const dir = seaFileGroup('shim');
    if (dir) return join(dir, SHIM_NAME);
  }
  const beside = join(dirname(source), SHIM_NAME);
  return isElf(beside) && !lstatSync(beside).isSymbolicLink() ? beside : undefined;
}

function defaultSource(): string | undefined {
  if (isSingleExecutable()) return process.execPath;
  const script = process.argv[1];
  if (!script) return undefined;
  const beside = join(dirname(realpathSync(script)), 'weft');
  return isElf(beside) ? beside : undefined;
}

function printReport(verb: string, r: ChangeReport): void {
  for (const p of r.changed) process.stdout.write(`${verb} ${p}\n`);
  for (const p of r.unchanged) process.stdout.write(`unchanged ${p}\n`);
  for (const n of r.notes) process.stdout.write(`note: ${n}\n`);
}

function failure(err: unknown): number {
  if (err instanceof InstallError) {
    process.stderr.write(`weft: ${err.message}\n`);
    return err.code === 'io' || err.code === 'not-ready' ? 1 : 2;
  }
  throw err;
}

export async function runInstall(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        'bin-dir': { type: 'string' },
        'conf-dir': { type: 'string' },
        conflist: { type: 'string' },
        subnet: { type: 'string' },
        'no-conflist': { type: 'boolean' },
        force: { type: 'boolean' },
        from: { type: 'string' },
        'chain-after': { type: 'string' },
        'chaining-mode': { type: 'string' },
        replace: { type: 'string', multiple: true },
        'require-agent': { type: 'boolean' },
        'agent-socket': { type: 'string' },
        wait: { type: 'string' },
        degraded: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return usageError((err as Error).message, INSTALL_HELP);
  }
  if (values.help) {
    process.stdout.write(INSTALL_HELP);
    return 0;
  }
  const chainAfter = values['chain-after'];
  if (chainAfter === undefined) {
    for (const o of ['chaining-mode', 'replace', 'require-agent', 'agent-socket', 'wait', 'degraded'] as const)
      if (values[o] !== undefined) return usageError(`--${o} goes with --chain-after`, INSTALL_HELP);
  }
  const wait = values.wait === undefined ? 30 : Number(values.wait);
  if (!Number.isFinite(wait) || wait < 0 || wait > 3600)
    return usageError(`--wait must be a number of seconds (0..3600), got "${values.wait}"`, INSTALL_HELP);
  const mode = values['chaining-mode'];
  if (mode !== undefined && !(CHAINING_MODES as readonly string[]).includes(mode))
    return usageError(`--chaining-mode must be one of ${CHAINING_MODES.join(', ')}, got "${mode}"`, INSTALL_HELP);
  const source = values.from ?? defaultSource();
  if (!source)
    return usageError(
      'run install from the single executable (dist/bin/weft) or give --from FILE',
      INSTALL_HELP,
    );
  if (chainAfter !== undefined) {
    const agentSocket = values['agent-socket'];
    try {
      const r = await installChained({
        source,
        shim: shimFor(source),
        binDir: values['bin-dir'],
        confDir: values['conf-dir'],
        force: values.force,
        version: buildInfo.version,
        chainAfter,
        chainingMode: mode as ChainingMode | undefined,
        replace: values.replace,
        requireAgent: values['require-agent'],
        agentSocket,
        waitSeconds: wait,
        weftKeys: {
          ...(agentSocket && agentSocket !== DEFAULT_AGENT_SOCKET ? { agentSocket } : {}),
          ...(values.degraded ? { degraded: true } : {}),
        },
      });
      printReport('installed', r);
      process.stdout.write(
        r.chain.action === 'unchanged'
          ? `unchanged: weft-cni is already chained in ${r.chain.file} (network ${r.chain.network})\n`
          : `chained: weft-cni in ${r.chain.file} (network ${r.chain.network})${r.chain.action === 'adopted' ? ', recorded for uninstall' : ''}\n`,
      );
      return 0;
    } catch (err) {
      return failure(err);
    }
  }
  try {
    printReport(
      'installed',
      install({
        source,
        shim: shimFor(source),
        binDir: values['bin-dir'],
        confDir: values['conf-dir'],
        conflistName: values.conflist,
        subnet: values.subnet,
        writeConflist: !values['no-conflist'],
        force: values.force,
        version: buildInfo.version,
      }),
    );
    return 0;
  } catch (err) {
    return failure(err);
  }
}

export async function runUninstall(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { 'bin-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    return usageError((err as Error).message, UNINSTALL_HELP);
  }
  if (values.help) {
    process.stdout.write(UNINSTALL_HELP);
    return 0;
  }
  try {
    printReport('removed', uninstall({ binDir: values['bin-dir'] }));
    return 0;
  } catch (err) {
    return failure(err);
  }
}
