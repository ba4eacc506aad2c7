/**
 * `weft __selftest-native`: proves the executable can load and use both native addons wherever it
 * was copied (no node_modules, no repository next to it). Prints one JSON line and exits 0, or
 * says what failed on stderr and exits 1.
 */
import { readFileSync } from 'node:fs';
import { loadAddon } from '@weft/native';

/** The `.node` files this process has mapped: where the addons were really loaded from. */
function mappedAddons(): string[] {
  const files = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((line) => line.split(/\s+/)[5] ?? '')
    .filter((f) => f.endsWith('.node'));
  return [...new Set(files)];
}

export async function runSelftestNative(): Promise<number> {
  try {
    const weft = loadAddon<Record<string, unknown>>('weft_native');
    const functions = Object.keys(weft).filter((k) => typeof weft[k] === 'function');
    if (functions.length === 0) throw new Error('weft_native exports no functions');

    // Through the netlink package itself, so the bundle's rewrite of its binding is what runs.
    const { createRtNetlink } = await import('netlink');
    const socket = createRtNetlink();
    let links: string[];
    try {
      links = (await socket.getLinks()).map((l) => l.attrs.ifname ?? '?');
    } finally {
      socket.socket.close();
    }
    if (!links.includes('lo')) throw new Error(`netlink link dump has no "lo": ${links.join(', ')}`);

    const result = {
      weft_native: { functions: functions.length },
      netlink: { links: links.length },
      mapped: mappedAddons(),
    };
    process.stdout.write(JSON.stringify(result) + '\n');
    return 0;
  } catch (err) {
    process.stderr.write(`weft __selftest-native: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
