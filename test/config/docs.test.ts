import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CONFIGURATION_DOC_PATH, renderConfigurationDoc } from '../../scripts/gen-config-docs.ts';
import { ENV_OVERRIDES } from '../../src/config/env-overrides.ts';
import { configSchema } from '../../src/config/schema.ts';

describe('docs/configuration.md', () => {
  const committed = readFileSync(CONFIGURATION_DOC_PATH, 'utf8');

  it('is what scripts/gen-config-docs.ts generates from the schema', () => {
    // If this fails after a schema change, regenerate: node scripts/gen-config-docs.ts
    assert.ok(
      committed === renderConfigurationDoc(),
      'docs/configuration.md is out of date with src/config/schema.ts — run: node scripts/gen-config-docs.ts',
    );
  });

  it('documents every top-level section and every environment override', () => {
    for (const key of Object.keys(configSchema.shape)) assert.ok(committed.includes(`### \`${key}\``), `section ${key}`);
    for (const override of ENV_OVERRIDES) assert.ok(committed.includes(`\`${override.variable}\``), override.variable);
  });
});
