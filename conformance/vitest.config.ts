import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The root vitest config only collects libs/ and apps/; this one runs the conformance
// suite's test: `npx vitest run --config conformance/vitest.config.ts`.
export default defineConfig({
  root: fileURLToPath(new URL('..', import.meta.url)),
  test: {
    include: ['conformance/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 300_000,
    reporters: ['default'],
  },
});
