// Lint: typescript-eslint with type information; layer boundaries (STYLE.md §1).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (from, forbidden) => ({
  files: [`src/${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: forbidden.map((group) => ({ group: [group], message: `src/${from} must not import ${group}` })),
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
  layer('raft', ['**/gen/**', '@grpc/*', 'winston', '**/node/**', '**/manager/**', '**/client/**', '**/cli/**', '**/common/**']),
  layer('manager', ['**/node/**', '**/client/**', '**/raft/**']),
  layer('node', ['**/manager/**', '**/client/**']),
  layer('client', ['**/node/**', '**/manager/**', '**/raft/**']),
  {
    files: ['src/raft/**/*.ts'],
    ignores: ['src/raft/storage/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['node:*', 'fs', 'path', 'os', '**/gen/**', '@grpc/*', 'winston', '**/node/**', '**/manager/**', '**/client/**', '**/cli/**', '**/common/**'], message: 'the Raft core does no I/O' },
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
