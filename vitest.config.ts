import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // conformance/ runs the libcni harness, podman and cnitool suites (conformance/run.sh) as tests.
    include: ['libs/**/*.test.ts', 'apps/**/*.test.ts', 'conformance/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Privileged tests touch host-wide state (sysctls, /var/lib/cni); keep file-level
    // parallelism modest on a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ['default'],
  },
});
