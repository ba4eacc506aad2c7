/**
 * The SCTP rows of the network-policy e2e where this host's kernel has no SCTP: one boot of the
 * test VM (Debian's kernel under qemu, scripts/vm/run-in-vm.sh via @weft/testkit) runs
 * netpol.e2e.privileged.test.ts inside, limited to the cases with SCTP checks (servers on 80 and 81
 * over SCTP as well as TCP and UDP, a real weft-agent, real SCTP associations through the BPF
 * datapath), and every one of them must PASS there (a skip inside is a failure here).
 *
 * Costs a few minutes under software emulation; opt out with WEFT_SKIP_VM=1. Skips, saying why,
 * when the host kernel has SCTP (the cases then run directly) or the VM cannot run here.
 */
import { logVmVitest, privileged, requireVm, runVitestInVm, vmTestsOf } from '@weft/testkit';
import { describe, expect, it } from 'vitest';
import { sctpSupport } from './testing/pod-network';

const FILE = 'apps/agent/src/netpol.e2e.privileged.test.ts';
const SUITE = 'network policy end to end (real agent, real traffic)';
/** The cases of FILE that probe SCTP. */
const CASES = [
  'allows everything with no policy',
  'default-deny ingress isolates the namespace for ingress only',
  'any port on one protocol',
  'SCTP',
];
const VM_TIMEOUT_MS = 25 * 60_000;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('network policy e2e, SCTP rows, in the test VM', () => {
  it(
    'passes the SCTP cases with real SCTP associations on a kernel with SCTP (Debian 6.1 under qemu)',
    async (ctx) => {
      privileged(ctx);
      if (sctpSupport().ok) {
        console.log('SKIPPED: this kernel has SCTP: the SCTP rows run directly in netpol.e2e, not in the VM');
        ctx.skip();
      }
      requireVm(ctx);
      const r = await runVitestInVm([FILE], {
        testNamePattern: CASES.map(escape).join('|'), // no other case has these words in its name
        timeoutMs: VM_TIMEOUT_MS,
      });
      logVmVitest('netpol e2e (SCTP cases)', r);
      const tests = vmTestsOf(r);
      for (const name of CASES) {
        const t = tests.find((x) => x.fullName === `${SUITE} > ${name}`);
        expect(t, `"${name}" ran in the VM`).toBeDefined();
        expect(t!.status, `${t!.fullName}: ${t!.failureMessages.join('\n')}`).toBe('passed');
      }
      expect(tests.filter((t) => t.status === 'failed').map((t) => t.fullName)).toEqual([]);
      expect(r.timedOut).toBe(false);
    },
    VM_TIMEOUT_MS + 120_000,
  );
});
