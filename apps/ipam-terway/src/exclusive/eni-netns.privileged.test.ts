/**
 * The pod side of exclusive ENIs over rtnetlink, on real namespaces: an "ENI" is a veth end with a
 * known MAC in a "node" namespace (its peer in a "vpc" one, with the gateway), moved into a pod and
 * back. weft-cni's mode eni drives the same functions (eni-e2e.privileged.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { privileged, requireCommands, ScratchNetns } from '@weft/testkit';
import { Netns } from '@weft/netns';
import { afterAll, describe, expect, it } from 'vitest';
import { findEniLink, moveEniBack, moveEniIntoPod, travelName } from './eni-netns';

const MAC = '02:00:5e:10:20:30';
const made: ScratchNetns[] = [];

function ns(prefix: string): ScratchNetns {
  const n = new ScratchNetns(prefix);
  made.push(n);
  return n;
}

function links(n: ScratchNetns): Array<{ ifname: string; address: string; flags: string[] }> {
  return JSON.parse(execFileSync('ip', ['-n', n.name, '-j', 'link', 'show'], { encoding: 'utf8' }));
}

/** node: ethX (MAC) <-> vpc: wvpc0 10.44.0.1/24 */
function eniBed(name = 'eth7'): { node: ScratchNetns; vpc: ScratchNetns } {
  const node = ns('wenn');
  const vpc = ns('wenv');
  node.exec(
    'ip',
    'link',
    'add',
    name,
    'address',
    MAC,
    'type',
    'veth',
    'peer',
    'name',
    'wvpc0',
    'netns',
    vpc.name,
  );
  vpc.exec('ip', 'addr', 'add', '10.44.0.1/24', 'dev', 'wvpc0');
  vpc.exec('ip', 'link', 'set', 'wvpc0', 'up');
  return { node, vpc };
}

const CONFIG = { mac: MAC, ifname: 'eth0', address: '10.44.0.7', prefixLength: 24, gateway: '10.44.0.1' };

afterAll(() => {
  for (const n of made) n.remove();
});

describe('exclusive ENI: moveEniIntoPod / moveEniBack over netlink', () => {
  it('moves the ENI into the pod, configures it, and is idempotent; back to the node under its name, down', async (ctx) => {
    privileged(ctx);
    requireCommands(ctx, 'ip', 'ping');
    const { node } = eniBed();
    const pod = ns('wenp');
    // The node given by name (the daemon's nodeNetns), the pod by path.
    expect(await moveEniIntoPod(node.name, pod.path, CONFIG)).toBe('eth7');
    expect(links(node).some((l) => l.address === MAC)).toBe(false);
    const inPod = links(pod).find((l) => l.address === MAC)!;
    expect(inPod.ifname).toBe('eth0');
    expect(inPod.flags).toContain('UP');
    expect(pod.exec('ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0')).toContain('10.44.0.7/24');
    expect(pod.exec('ip', 'route', 'show', 'default')).toMatch(/default via 10\.44\.0\.1 dev eth0 .*onlink/);
    pod.exec('ping', '-c1', '-W2', '10.44.0.1');
    // Again (a repeated ADD), with another address and an MTU: reconfigured, nothing moved.
    expect(
      await moveEniIntoPod(node.name, pod.path, { ...CONFIG, address: '10.44.0.8', mtu: 1400 }),
    ).toBeUndefined();
    const addrs = pod.exec('ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0');
    expect(addrs).toContain('10.44.0.8/24');
    expect(addrs).not.toContain('10.44.0.7/24');
    expect(pod.exec('ip', '-o', 'link', 'show', 'eth0')).toContain('mtu 1400');

    // Back: the node's own "eth0" must not get in the way (the ENI travels under another name).
    node.exec('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wother0');
    expect(await moveEniBack(node.path, pod.path, MAC, 'eth7')).toBe(true);
    const back = links(node).find((l) => l.address === MAC)!;
    expect(back.ifname).toBe('eth7');
    expect(back.flags).not.toContain('UP');
    expect(links(pod).some((l) => l.address === MAC)).toBe(false);
    expect(
      execFileSync('ip', ['-n', node.name, '-4', '-o', 'addr', 'show', 'dev', 'eth7'], { encoding: 'utf8' }),
    ).toBe('');
    // Repeated DEL: it is on the node already.
    expect(await moveEniBack(node.path, pod.path, MAC, 'eth7')).toBe(true);
  });

  it('works with open Netns objects; a node name taken meanwhile leaves the travel name', async (ctx) => {
    privileged(ctx);
    const { node } = eniBed('eth8');
    const pod = ns('wenp');
    const nodeNs = Netns.open(node.path);
    const podNs = Netns.open(pod.path);
    try {
      expect((await findEniLink(nodeNs, MAC))?.name).toBe('eth8');
      expect(await moveEniIntoPod(nodeNs, podNs, CONFIG)).toBe('eth8');
      expect((await findEniLink(podNs, MAC))?.name).toBe('eth0');
      // A node name that someone took meanwhile: the ENI keeps its travel name rather than fail.
      node.exec('ip', 'link', 'add', 'eth8', 'type', 'veth', 'peer', 'name', 'wother1');
      expect(await moveEniBack(nodeNs, podNs, MAC, 'eth8')).toBe(true);
      expect((await findEniLink(nodeNs, MAC))?.name).toBe(travelName(MAC));
    } finally {
      nodeNs.close();
      podNs.close();
    }
  });

  it('refuses a pod whose interface name is taken; DEL after the pod netns is gone succeeds', async (ctx) => {
    privileged(ctx);
    const { node } = eniBed('eth9');
    const squatted = ns('wenp');
    squatted.exec('ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wsq0');
    await expect(moveEniIntoPod(node.name, squatted.path, CONFIG)).rejects.toThrow(
      /eth0 already exists in the pod/,
    );
    expect((await findEniLink(node.name, MAC))?.name).toBe('eth9'); // not moved
    expect(await findEniLink(squatted.path, MAC)).toBeUndefined();

    const pod = ns('wenp');
    await moveEniIntoPod(node.name, pod.path, CONFIG);
    const path = pod.path;
    pod.remove(); // a veth "ENI" dies with the netns (a real NIC would come back to the root netns)
    expect(await moveEniBack(node.name, path, MAC, 'eth9')).toBe(false);
    expect(await moveEniBack(node.name, '', MAC, 'eth9')).toBe(false);
    await expect(moveEniIntoPod(node.name, pod.path, CONFIG, 100)).rejects.toThrow();
  });
});
