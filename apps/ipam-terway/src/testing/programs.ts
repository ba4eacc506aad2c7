/**
 * Names of the BPF programs on an interface's tc hook inside a netns, whichever way weft's datapath
 * attached them: clsact filters (`tc filter show`) or tcx links (kernels 6.6+; BPF_PROG_QUERY, names
 * from bpftool). For tests that check weft-cni attached from_container/to_container.
 */
import { execFileSync } from 'node:child_process';
import { listTcx, tcxSupported } from '@weft/bpf';

export function programsOn(netnsPath: string, ifname: string, hook: 'ingress' | 'egress'): string[] {
  const names = new Set<string>();
  const tc = execFileSync('nsenter', [`--net=${netnsPath}`, 'tc', 'filter', 'show', 'dev', ifname, hook], {
    encoding: 'utf8',
  });
  for (const m of tc.matchAll(/\b(from_container|to_container)\b/g)) names.add(m[1]!);
  if (tcxSupported()) {
    for (const p of listTcx(ifname, hook, { netns: netnsPath }).programs) {
      const info = JSON.parse(
        execFileSync('bpftool', ['prog', 'show', 'id', String(p.progId), '-j'], { encoding: 'utf8' }),
      ) as { name?: string };
      if (info.name) names.add(info.name);
    }
  }
  return [...names];
}
