// Lint: typescript-eslint with type information; layer boundaries (STYLE.md §1).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// src/common is off limits to src/raft except its one pure file, the seeded PRNG (no I/O, no clock).
const COMMON_EXCEPT_RANDOM = ['**/common/**', '!**/common/random.js'];

const layer = (from, forbidden) => ({
  files: [`src/${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      // An entry is one pattern, or a pattern with its exceptions (`!…`), which must share a group.
      patterns: forbidden.map((entry) => {
        const group = [entry].flat();
        const allowed = group.filter((pattern) => pattern.startsWith('!')).map((pattern) => pattern.slice(1));
        const except = allowed.length === 0 ? '' : ` (except ${allowed.join(', ')})`;
        return { group, message: `src/${from} must not import ${group[0]}${except}` };
      }),
    }],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/gen/**', 'coverage/**', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  layer('raft', ['**/gen/**', '@grpc/*', 'winston', '**/node/**', '**/manager/**', '**/client/**', '**/cli/**', COMMON_EXCEPT_RANDOM]),
  layer('manager', ['**/node/**', '**/client/**', '**/raft/**']),
  layer('node', ['**/manager/**', '**/client/**']),
  layer('client', ['**/node/**', '**/manager/**', '**/raft/**']),
  // The launcher sits below the CLI; the bench and chaos harnesses reach processes through it.
  layer('cluster', ['**/cli/**']),
  layer('bench', ['**/cli/**']),
  layer('chaos', ['**/cli/**']),
  {
    files: ['src/raft/**/*.ts'],
    ignores: ['src/raft/storage/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:*', 'fs', 'path', 'os', '**/gen/**', '@grpc/*', 'winston', '**/node/**', '**/manager/**', '**/client/**', '**/cli/**', ...COMMON_EXCEPT_RANDOM], message: 'the Raft core does no I/O' },
      ] }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'Date', 'performance'],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'inject a RandomSource' }, { object: 'Date', property: 'now' }],
    },
  },
  {
    // Operator scripts are plain Node ESM, outside the TypeScript project: lint them untyped.
    files: ['scripts/**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      ...tseslint.configs.disableTypeChecked.languageOptions,
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', performance: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly' },
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'it', property: 'only' }, { object: 'describe', property: 'only' }],
      '@typescript-eslint/no-unused-expressions': 'off',
    },
  },
);
