// Benchmark helper (not a test): attaches two pods with an ingress policy of N entries on pod A,
// or tears everything down. Bundled and run by policy-bench.sh.
import { Datapath, IPPROTO, type PolicyEntry } from '@weft/datapath';

interface Pod {
  hostIf: string;
  ipv4: string;
}
const [mode = '', json = '{}'] = process.argv.slice(2);
const cfg = JSON.parse(json) as {
  pinRoot: string;
  stateDir: string;
  objectDir: string;
  routerNetns: string;
  a: Pod;
  b: Pod;
  entries: number;
};

if (mode === 'destroy') {
  Datapath.destroy({ pinRoot: cfg.pinRoot, stateDir: cfg.stateDir });
} else {
  const ID_A = 1001;
  const ID_B = 1002;
  const dp = Datapath.open({ pinRoot: cfg.pinRoot, stateDir: cfg.stateDir, objectDir: cfg.objectDir });
  // entries - 1 rules for other identities, then the one that lets B in (TCP, any port).
  const entries: PolicyEntry[] = [];
  for (let i = 0; i < cfg.entries - 1; i++) {
    entries.push({
      identity: 10_000 + i,
      protocol: IPPROTO.TCP,
      portLow: 80,
      portHigh: 80,
      direction: 'ingress',
      verdict: 'allow',
    });
  }
  entries.push({
    identity: ID_B,
    protocol: IPPROTO.TCP,
    portLow: 0,
    portHigh: 0,
    direction: 'ingress',
    verdict: 'allow',
  });
  const attach = (endpointId: number, identity: number, pod: Pod, withPolicy: boolean) =>
    dp.attachEndpoint({
      endpointId,
      identity,
      ips: [pod.ipv4],
      ifname: pod.hostIf,
      hostNetns: cfg.routerNetns,
      policy: withPolicy ? { ingressEnforced: true, egressEnforced: false, entries } : undefined,
    });
  attach(1, ID_A, cfg.a, true);
  attach(2, ID_B, cfg.b, false);
  dp.close();
}
