import { closeSync, openSync, readSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildInfo } from '../build-info';
import { isSingleExecutable } from '../runtime';
import { DEFAULT_CONFLIST_NAME, DEFAULT_POD_SUBNET } from './conflist';
import {
  DEFAULT_BIN_DIR,
  DEFAULT_CONF_DIR,
  install,
  InstallError,
  LINK_NAMES,
  uninstall,
  type ChangeReport,
} from './install';

const INSTALL_HELP = `usage: weft install [options]

Copies this executable to the CNI bin dir as "weft", links ${LINK_NAMES.join(', ')} to it, and
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
`;

const UNINSTALL_HELP = `usage: weft uninstall [--bin-dir DIR]

Removes what "weft install" recorded in DIR/.weft-install.json (default DIR ${DEFAULT_BIN_DIR}):
files still exactly as installed, then the directories it created if empty. Nothing else.
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
    return err.code === 'io' ? 1 : 2;
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
        // Reserved: rewriting an existing conflist to chain weft after it is a later issue.
        'chain-after': { type: 'string' },
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
  if (values['chain-after'] !== undefined) {
    process.stderr.write('weft install: --chain-after is not available in this build\n');
    return 2;
  }
  const source = values.from ?? defaultSource();
  if (!source)
    return usageError(
      'run install from the single executable (dist/bin/weft) or give --from FILE',
      INSTALL_HELP,
    );
  try {
    printReport(
      'installed',
      install({
        source,
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
