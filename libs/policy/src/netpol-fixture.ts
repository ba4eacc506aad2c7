import type { PolicyVerdict } from '@weft/datapath';
import type { PolicyEngine } from './engine';
import { evaluate, IpcacheLpm } from './evaluate';
import { protocolNumber } from './compile';
import type { ContainerPort, L4Protocol, Namespace, Pod } from './model';

/**
 * The cluster of the upstream Kubernetes network-policy e2e suite: namespaces x, y, z, each with
 * pods a, b, c (label `pod=<name>`, namespace label `ns=<name>`), every pod serving ports 80 and
 * 81 on TCP, UDP and SCTP with container ports named `serve-<port>-<proto>`. Shared by the unit
 * tests here and the real-traffic suite.
 */
export interface NetpolFixtureOptions {
  namespaces?: string[];
  pods?: string[];
  ports?: number[];
  protocols?: L4Protocol[];
  /** Pod address; default 10.42.<namespace index + 1>.<pod index + 10>. */
  address?: (nsIndex: number, podIndex: number) => string;
  nodeName?: string;
}

export interface NetpolFixture {
  namespaces: Namespace[];
  pods: Pod[];
  /** `namespace/name` of every pod, in order. */
  podKeys: string[];
  ip(key: string): string;
}

export function netpolPortName(port: number, protocol: L4Protocol): string {
  return `serve-${port}-${protocol.toLowerCase()}`;
}

export function buildNetpolFixture(options: NetpolFixtureOptions = {}): NetpolFixture {
  const nsNames = options.namespaces ?? ['x', 'y', 'z'];
  const podNames = options.pods ?? ['a', 'b', 'c'];
  const ports = options.ports ?? [80, 81];
  const protocols = options.protocols ?? ['TCP', 'UDP', 'SCTP'];
  const address = options.address ?? ((n, p) => `10.42.${n + 1}.${p + 10}`);
  const containerPorts: ContainerPort[] = [];
  for (const port of ports) {
    for (const protocol of protocols)
      containerPorts.push({ name: netpolPortName(port, protocol), containerPort: port, protocol });
  }
  const namespaces = nsNames.map((name) => ({ name, labels: { ns: name } }));
  const pods: Pod[] = [];
  const ips = new Map<string, string>();
  nsNames.forEach((ns, n) =>
    podNames.forEach((name, p) => {
      const ip = address(n, p);
      ips.set(`${ns}/${name}`, ip);
      pods.push({
        namespace: ns,
        name,
        labels: { pod: name },
        ips: [ip],
        ports: containerPorts.map((c) => ({ ...c })),
        ...(options.nodeName !== undefined && { nodeName: options.nodeName }),
      });
    }),
  );
  return {
    namespaces,
    pods,
    podKeys: pods.map((p) => `${p.namespace}/${p.name}`),
    ip: (key) => {
      const ip = ips.get(key);
      if (ip === undefined) throw new RangeError(`no fixture pod ${key}`);
      return ip;
    },
  };
}

/** Loads the fixture's namespaces and pods into an engine in one transaction. */
export function loadNetpolFixture(engine: PolicyEngine, fixture: NetpolFixture): void {
  engine.transaction((w) => {
    fixture.namespaces.forEach((ns) => w.upsertNamespace(ns));
    fixture.pods.forEach((pod) => w.upsertPod(pod));
  });
}

/** `from→to` pod keys to verdict, for every ordered pair (self included, as upstream does). */
export type ReachabilityMatrix = Map<string, PolicyVerdict>;

export interface Reachability {
  /** From `engine.trace` (policies evaluated directly). */
  byTrace: ReachabilityMatrix;
  /** From the computed entries + ipcache, evaluated as the datapath will. */
  byEntries: ReachabilityMatrix;
  /** Pairs where the two disagree (should be empty). */
  disagreements: string[];
}

export function reachability(
  engine: PolicyEngine,
  fixture: NetpolFixture,
  port: number,
  protocol: L4Protocol,
): Reachability {
  const byTrace: ReachabilityMatrix = new Map();
  const byEntries: ReachabilityMatrix = new Map();
  const disagreements: string[] = [];
  const lpm = new IpcacheLpm(engine.ipcache());
  const endpoints = engine.endpointPoliciesByIp();
  for (const from of fixture.podKeys) {
    for (const to of fixture.podKeys) {
      const pair = `${from}→${to}`;
      const t = engine.trace(from, to, port, protocol).verdict;
      const e = evaluate(
        endpoints,
        lpm,
        fixture.ip(from),
        fixture.ip(to),
        protocolNumber(protocol),
        port,
      ).verdict;
      byTrace.set(pair, t);
      byEntries.set(pair, e);
      if (t !== e) disagreements.push(`${pair}: trace ${t}, entries ${e}`);
    }
  }
  return { byTrace, byEntries, disagreements };
}

/**
 * Expected matrix helper in the spirit of upstream's `Reachability.Expect*`: start from
 * everything `initial`, then apply `(from, to) => verdict | undefined` overrides.
 */
export function expectMatrix(
  fixture: NetpolFixture,
  initial: PolicyVerdict,
  override: (from: string, to: string) => PolicyVerdict | undefined = () => undefined,
): ReachabilityMatrix {
  const out: ReachabilityMatrix = new Map();
  for (const from of fixture.podKeys)
    for (const to of fixture.podKeys) out.set(`${from}→${to}`, override(from, to) ?? initial);
  return out;
}

/** Upstream-style truth table (rows: from, columns: to; `.` allowed, `X` denied). */
export function formatMatrix(fixture: NetpolFixture, matrix: ReachabilityMatrix): string {
  const header = ['     ', ...fixture.podKeys.map((k) => k.padEnd(5))].join(' ');
  const rows = fixture.podKeys.map((from) =>
    [
      from.padEnd(5),
      ...fixture.podKeys.map((to) => (matrix.get(`${from}→${to}`) === 'allow' ? '.' : 'X').padEnd(5)),
    ].join(' '),
  );
  return [header, ...rows].join('\n');
}
