/**
 * The IPvlan end-to-end tests where this host's kernel cannot run them: one boot of the test VM
 * (Debian's kernel under qemu, scripts/vm/run-in-vm.sh via @weft/testkit) runs
 *   - apps/cni-plugin/src/modes/ipvlan/ipvlan.privileged.test.ts (weft-cni mode ipvlan: l2, l3, l3s,
 *     CHECK/DEL/GC/STATUS, the node-side link), and
 *   - the ipvlan + weft-eni test of apps/ipam-terway/src/eni-e2e.privileged.test.ts,
 * and every one of them must PASS inside (a skip there is a failure here). Needs the shipped
 * binaries (dist/bin, see the README's build command) — the guest runs this very tree.
 *
 * Costs several minutes under software emulation; opt out with WEFT_SKIP_VM=1. Skips, saying why,
 * when the host kernel has ipvlan (the tests then run directly) or the VM cannot run here.
 */
import { existsSync } from 'node:fs';
import { logVmVitest, privileged, requireVm, runVitestInVm, vmTestsOf, type VmVitestResult } from '@weft/testkit';
import { describe, expect, it } from 'vitest';
import { kernelHasIpvlan, WEFT_CNI } from './ipvlan-testbed';

const FILES = [
  'apps/cni-plugin/src/modes/ipvlan/ipvlan.privileged.test.ts',
  'apps/ipam-terway/src/eni-e2e.privileged.test.ts',
];
/** Every test of the first file (its describe says "ipvlan mode") and the ipvlan one of the second. */
const PATTERN = 'ipvlan mode';
const MUST_PASS = [
  /weft-cni ipvlan mode > refuses a missing master/,
  /weft-cni ipvlan mode > l2: two pods reach each other/,
  /weft-cni ipvlan mode > l3: two pods reach each other/,
  /weft-cni ipvlan mode > l3s: a pod gets its \/32/,
  /weft-cni ipvlan mode > repeated ADD is safe/,
  /weft-cni ipvlan mode > without the node-side link/,
  /weft-eni with real links > shared ENI through weft-cni ipvlan mode/,
];
const VM_TIMEOUT_MS = 30 * 60_000;

describe('weft-cni ipvlan mode in the test VM', () => {
  it(
    'passes its IPvlan end-to-end tests on a kernel with ipvlan (Debian 6.1 under qemu)',
    async (ctx) => {
      privileged(ctx);
      if (kernelHasIpvlan()) {
        console.log('SKIPPED: this kernel has ipvlan: the IPvlan tests run directly, not in the VM');
        ctx.skip();
      }
      requireVm(ctx);
      if (!existsSync(WEFT_CNI))
        throw new Error(`${WEFT_CNI} is missing: build dist/bin first (the VM runs the shipped binary)`);
      const r: VmVitestResult = await runVitestInVm(FILES, {
        testNamePattern: PATTERN,
        timeoutMs: VM_TIMEOUT_MS,
      });
      logVmVitest('ipvlan e2e', r);
      const tests = vmTestsOf(r);
      for (const want of MUST_PASS) {
        const t = tests.find((x) => want.test(x.fullName));
        expect(t, `${want} ran in the VM`).toBeDefined();
        expect(t!.status, `${t!.fullName}: ${t!.failureMessages.join('\n')}`).toBe('passed');
      }
      expect(tests.filter((t) => t.status === 'failed').map((t) => t.fullName)).toEqual([]);
      // Every test passed: a non-zero exit after that is the guest's teardown, said but not fatal.
      if (r.code !== 0)
        console.log(`WARNING: the VM run exited ${r.code} after every test passed (runner/guest teardown)`);
      expect(r.timedOut).toBe(false);
    },
    VM_TIMEOUT_MS + 120_000,
  );
});
