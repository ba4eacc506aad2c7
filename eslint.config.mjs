import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/build/**', '.nx/**', 'conformance/**/*.go'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Deep imports across libs are forbidden: each lib exposes one index.ts.
      'no-restricted-imports': ['error', { patterns: ['@weft/*/*'] }],
    },
  },
  // Build scripts, benchmarks and test helpers written as plain Node modules.
  { files: ['**/*.mjs', '**/*.cjs'], languageOptions: { globals: globals.node } },
);
