import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.sluice/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@confluentinc/*', 'pg', 'mysql2', 'mysql2/*', 'ioredis', '@duckdb/*', '*/kafka/*', '../kafka/*'],
              message: 'core knows nothing of Kafka, databases or DuckDB: put this in an adapter.' },
          ],
        },
      ],
    },
  },
);
