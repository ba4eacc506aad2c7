// What a veth-mode CNI ADD does to the kernel, timed step by step in two scratch namespaces
// ("node" and "pod"). Not a test: run `node libs/netlink/bench/run.mjs`.
import { Netns, createNamedNetns, deleteNamedNetns } from '@weft/netns';
import { openRtnl } from '@weft/netlink';

// run.mjs puts `globalThis.__benchT0 = performance.now()` in the bundle's banner.
const tImport = performance.now() - (globalThis as { __benchT0?: number }).__benchT0!;

async function main(): Promise<void> {
  const iterations = Number(process.argv[2] ?? 20);
  const node = `wnbn${process.pid % 10000}`;
  const pod = `wnbp${process.pid % 10000}`;
  createNamedNetns(node).close();
  const rows: Record<string, number>[] = [];
  try {
    for (let i = 0; i < iterations; i++) {
      createNamedNetns(pod).close();
      const nodeNs = Netns.open(`/var/run/netns/${node}`);
      const row: Record<string, number> = {};
      let last = performance.now();
      const lap = (name: string) => {
        const now = performance.now();
        row[name] = now - last;
        last = now;
      };
      const podNs = Netns.open(`/var/run/netns/${pod}`);
      lap('open pod netns');
      const nodeRtnl = openRtnl(nodeNs);
      const podRtnl = openRtnl(podNs);
      lap('2 rtnl sockets (runSync)');
      await nodeRtnl.createVeth({ name: 'wnbh0', peerName: 'eth0', peerNetns: podNs, mtu: 1500 });
      lap('veth, peer in pod');
      const host = await nodeRtnl.getLink('wnbh0');
      await nodeRtnl.setUp(host.index);
      lap('get+up host side');
      await podRtnl.addAddress('eth0', '10.99.0.5/32');
      lap('pod: IPv4 address');
      await podRtnl.addAddress('eth0', 'fd00:99::5/128', { nodad: true });
      lap('pod: IPv6 address');
      await podRtnl.setUp('eth0');
      lap('pod: eth0 up');
      await podRtnl.addRoute({ dst: 'default', gateway: '169.254.1.1', dev: 'eth0', onlink: true });
      await podRtnl.addRoute({ dst: 'default', gateway: 'fe80::1', dev: 'eth0', onlink: true });
      await podRtnl.replaceNeighbour({ dev: 'eth0', address: '169.254.1.1', lladdr: host.mac! });
      lap('pod: 2 routes + neigh');
      await nodeRtnl.addRoute({ dst: '10.99.0.5/32', dev: host.index });
      lap('node: route to pod');
      podNs.writeSysctl('net.ipv4.conf.eth0.rp_filter', 0);
      lap('pod: 1 sysctl');
      row['ADD total'] = Object.values(row).reduce((a, b) => a + b, 0);
      last = performance.now();
      // DEL: deleting the host end removes the pair (netns teardown alone is asynchronous).
      await nodeRtnl.deleteLink('wnbh0');
      lap('DEL: delete veth');
      nodeRtnl.close();
      podRtnl.close();
      podNs.close();
      nodeNs.close();
      rows.push(row);
      deleteNamedNetns(pod);
    }
  } finally {
    deleteNamedNetns(pod);
    deleteNamedNetns(node);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(
    `module load (bundled @weft/netns + @weft/netlink, netlink package lazy): ${tImport.toFixed(2)} ms`,
  );
  console.log(
    `${'step'.padEnd(28)} ${'first'.padStart(8)} ${'median'.padStart(8)}   (ms, ${iterations} iterations)`,
  );
  for (const key of Object.keys(rows[0]!)) {
    console.log(
      `${key.padEnd(28)} ${rows[0]![key]!.toFixed(2).padStart(8)} ${median(rows.map((r) => r[key]!))
        .toFixed(2)
        .padStart(8)}`,
    );
  }
}

void main();
