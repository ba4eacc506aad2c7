import { afterEach, describe, expect, it } from 'vitest';
import { KubeApiEmulator } from '../emulator/kube-emulator';
import { TestEnv } from '../testing/env';
import { IP_RESOURCE } from './capacity';

let env: TestEnv | undefined;
let kube: KubeApiEmulator | undefined;
afterEach(async () => {
  await env?.dispose();
  await kube?.close();
  env = kube = undefined;
});

describe('node capacity for the scheduler', () => {
  it('publishes allocatable ENI addresses as weft.io/ip and lowers it when the vSwitches run dry', async () => {
    kube = await new KubeApiEmulator('we-token').start();
    kube.addNode('we-node-1');
    env = await TestEnv.create('we-cap', {
      emulator: {
        instances: [
          { id: 'i-weft0001', instanceType: 'ecs.g7.large', zoneId: 'cn-hangzhou-k', vSwitchId: 'vsw-we-a' },
        ],
      },
      daemon: { kubernetes: { server: kube.url, token: 'we-token', nodeName: 'we-node-1' } },
    });
    const node = () => kube!.nodes.get('we-node-1')!;
    // ecs.g7.large: 2 secondary ENIs × 6 addresses.
    expect(node().status.capacity[IP_RESOURCE]).toBe('12');
    expect(node().status.allocatable[IP_RESOURCE]).toBe('12');
    expect(kube.requests.at(-1)).toMatchObject({
      method: 'PATCH',
      path: '/api/v1/nodes/we-node-1/status',
      contentType: 'application/json-patch+json',
    });

    // Unchanged figure: no API call.
    const before = kube.requests.length;
    expect(await env.daemon!.capacity!.publish()).toBe(false);
    expect(kube.requests.length).toBe(before);

    await env.client.allocate({ containerId: 'c1', ifname: 'eth0', netns: '/proc/1/ns/net' });
    env.emu.model.setVSwitchCapacity('vsw-we-a', 0);
    env.emu.model.setVSwitchCapacity('vsw-we-b', 0);
    // Use up the ENI's one address... then the next ADD finds both vSwitches exhausted.
    await expect(
      env.client.allocate({ containerId: 'c2', ifname: 'eth0', netns: '/proc/1/ns/net' }),
    ).rejects.toMatchObject({ cniCode: 11 });
    const st = await env.client.status();
    expect(st.exhaustedVSwitches).toEqual(['vsw-we-a', 'vsw-we-b']);
    expect(await env.daemon!.capacity!.publish()).toBe(true);
    expect(node().status.allocatable[IP_RESOURCE]).toBe(String(st.allocated + st.idle));
    expect(Number(node().status.allocatable[IP_RESOURCE])).toBeLessThan(12);
  });

  it('is refused without the right token', async () => {
    kube = await new KubeApiEmulator('right').start();
    kube.addNode('we-node-2');
    env = await TestEnv.create('we-cap2', {
      daemon: { kubernetes: { server: kube.url, token: 'wrong', nodeName: 'we-node-2' } },
    });
    await expect(env.daemon!.capacity!.publish(true)).rejects.toThrow(/HTTP 401/);
    expect(kube.nodes.get('we-node-2')!.status.capacity[IP_RESOURCE]).toBeUndefined();
  });
});
