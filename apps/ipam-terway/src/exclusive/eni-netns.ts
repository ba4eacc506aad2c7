/**
 * Exclusive ENI mode, the pod side: the whole ENI link is moved into the pod's netns, renamed,
 * addressed from the ENI's metadata (primary address, vSwitch prefix and gateway) and given a
 * default route; on DEL it is moved back to the node under its old name. For `weft-cni`
 * (mode: eni) to call with what the daemon's exclusive allocation returns.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { sleep } from '../backoff';

const run = promisify(execFile);

export interface ExclusiveEniConfig {
  mac: string;
  ifname: string;
  address: string;
  prefixLength: number;
  gateway: string;
  ipv6?: { address: string; prefixLength: number; gateway: string };
  mtu?: number;
}

/** iproute2 names a netns by its name under /run/netns or by a PID; both forms are accepted here. */
export function netnsRef(path: string): string {
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(path);
  if (named) return named[1]!;
  const pid = /^\/proc\/(\d+)\/ns\/net$/.exec(path);
  if (pid) return pid[1]!;
  throw new Error(
    `netns ${path}: only /run/netns/<name> or /proc/<pid>/ns/net can be used for exclusive ENIs`,
  );
}

/** Runs iproute2 in a netns given by name (ip -n) or by PID (nsenter); undefined: our own. */
async function ip(netns: string | undefined, ...args: string[]): Promise<string> {
  if (netns !== undefined && /^\d+$/.test(netns)) {
    return (await run('nsenter', [`--net=/proc/${netns}/ns/net`, 'ip', ...args], { encoding: 'utf8' }))
      .stdout;
  }
  return (await run('ip', [...(netns === undefined ? [] : ['-n', netns]), ...args], { encoding: 'utf8' }))
    .stdout;
}

async function linkByMac(netns: string | undefined, mac: string): Promise<string | undefined> {
  const links = JSON.parse(await ip(netns, '-j', 'link', 'show')) as Array<{
    ifname: string;
    address?: string;
  }>;
  return links.find((l) => l.address?.toLowerCase() === mac.toLowerCase())?.ifname;
}

/**
 * Moves the ENI with `c.mac` from the node (a named netns, or the daemon's own when undefined)
 * into the pod and configures it. Returns the link's name on the node, for moving it back.
 * Idempotent: an ENI already in the pod is (re)configured.
 */
export async function moveEniIntoPod(
  nodeNetns: string | undefined,
  podNetnsPath: string,
  c: ExclusiveEniConfig,
): Promise<string> {
  const pod = netnsRef(podNetnsPath);
  let nodeName = await linkByMac(nodeNetns, c.mac);
  // A hot-plugged NIC may show up a moment after the cloud reports the ENI InUse.
  for (let wait = 20; !nodeName && wait < 5_000; wait *= 2) {
    if (await linkByMac(pod, c.mac)) break;
    await sleep(wait);
    nodeName = await linkByMac(nodeNetns, c.mac);
  }
  if (nodeName) {
    await ip(nodeNetns, 'link', 'set', nodeName, 'down');
    await ip(nodeNetns, 'link', 'set', nodeName, 'netns', pod);
  } else {
    nodeName = await linkByMac(pod, c.mac);
    if (!nodeName) throw new Error(`no link with MAC ${c.mac} on the node or in ${podNetnsPath}`);
  }
  const inPod = (await linkByMac(pod, c.mac))!;
  if (inPod !== c.ifname) await ip(pod, 'link', 'set', inPod, 'name', c.ifname);
  if (c.mtu) await ip(pod, 'link', 'set', c.ifname, 'mtu', String(c.mtu));
  await ip(pod, 'addr', 'replace', `${c.address}/${c.prefixLength}`, 'dev', c.ifname);
  await ip(pod, 'link', 'set', c.ifname, 'up');
  await ip(pod, 'route', 'replace', 'default', 'via', c.gateway, 'dev', c.ifname, 'onlink');
  if (c.ipv6) {
    await ip(
      pod,
      '-6',
      'addr',
      'replace',
      `${c.ipv6.address}/${c.ipv6.prefixLength}`,
      'dev',
      c.ifname,
      'nodad',
    );
    await ip(pod, '-6', 'route', 'replace', 'default', 'via', c.ipv6.gateway, 'dev', c.ifname, 'onlink');
  }
  return nodeName;
}

/**
 * Moves the ENI back to the node under `nodeName`, addresses flushed. Succeeds when the pod or
 * the link is already gone (DEL is best-effort; a netns torn down returns its links to the root).
 */
export async function moveEniBack(
  nodeNetns: string | undefined,
  podNetnsPath: string,
  mac: string,
  nodeName: string,
): Promise<void> {
  let pod: string;
  try {
    pod = netnsRef(podNetnsPath);
  } catch {
    return;
  }
  const inPod = await linkByMac(pod, mac).catch(() => undefined);
  if (!inPod) return;
  await ip(pod, 'addr', 'flush', 'dev', inPod);
  await ip(pod, 'link', 'set', inPod, 'down');
  // A temporary name avoids a clash with a node link called like the pod's interface (eth0).
  const moved = `wx${mac.replace(/:/g, '').slice(-8)}`;
  await ip(pod, 'link', 'set', inPod, 'name', moved);
  await ip(pod, 'link', 'set', moved, 'netns', nodeNetns ?? '1');
  await ip(nodeNetns, 'link', 'set', moved, 'name', nodeName);
  await ip(nodeNetns, 'link', 'set', nodeName, 'up');
}
