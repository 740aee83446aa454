import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { generateKeySet, serializeKeySet } from '../../src/keys/key-set.ts';
import { parseMarkdown, readProjectFile } from './markdown.ts';

/**
 * Every Gatehouse configuration in docs/deployment.md must load with `loadConfig`, exactly as `gatehouse start`
 * would load it, so the page cannot drift from the schema and its cross-field rules.
 *
 * Convention on that page: a block fenced as ```yaml is a complete Gatehouse configuration; YAML that is something
 * else (Kubernetes objects) is fenced as ```yaml kubernetes and only has to parse as Kubernetes manifests.
 */

const page = 'docs/deployment.md';
const blocks = parseMarkdown(readProjectFile(page)).blocks.filter((block) => block.info.split(/\s+/)[0] === 'yaml');

/**
 * What the `${NAME}` references on the page stand for in a real deployment. A reference to anything else fails the
 * test with loadConfig's own "not set" error, so every variable the page asks for is listed here on purpose.
 */
const environment: NodeJS.ProcessEnv = {
  REDIS_URL: 'rediss://:redis-password@redis.internal:6380',
  METRICS_TOKEN: 'metrics-token-0123456789abcdef',
  GRAPH_SERVER_CLIENT_SECRET: 'graph-server-secret-0123456789',
};

const workDir = mkdtempSync(join(tmpdir(), 'gatehouse-docs-'));
after(() => rmSync(workDir, { recursive: true, force: true }));

describe(`${page} configuration snippets`, () => {
  it('has Gatehouse configurations to check, and only known kinds of YAML block', () => {
    assert.ok(blocks.some((block) => block.info === 'yaml'), 'no ```yaml block found');
    for (const block of blocks) {
      assert.ok(['yaml', 'yaml kubernetes'].includes(block.info), `${page}:${block.line}: unknown block kind "${block.info}"`);
    }
  });

  blocks.forEach((block, index) => {
    if (block.info === 'yaml kubernetes') {
      it(`the Kubernetes objects at line ${block.line} parse, each with apiVersion and kind`, () => {
        const documents = parseAllDocuments(block.body);
        assert.ok(Array.isArray(documents) && documents.length > 0);
        for (const document of documents) {
          assert.deepEqual(document.errors, [], `${page}:${block.line}`);
          const object = document.toJS() as Record<string, unknown>;
          assert.equal(typeof object.apiVersion, 'string', `${page}:${block.line}: apiVersion`);
          assert.equal(typeof object.kind, 'string', `${page}:${block.line}: kind`);
        }
      });
      return;
    }

    it(`the configuration at line ${block.line} loads as a production configuration without warnings`, () => {
      const dir = join(workDir, `block-${index}`);
      const file = join(dir, 'gatehouse.yaml');
      // A relative `keys.file` sits next to the config file, as `gatehouse init` writes it: provide a real key set.
      const raw = parseYaml(block.body) as { keys?: { source?: string; file?: string } } | null;
      mkdirSync(dir);
      writeFileSync(file, block.body);
      const keyFile = raw?.keys?.source === 'file' ? raw.keys.file : undefined;
      if (keyFile !== undefined && !isAbsolute(keyFile)) {
        mkdirSync(dirname(join(dir, keyFile)), { recursive: true });
        writeFileSync(join(dir, keyFile), serializeKeySet(generateKeySet({ now: 0, signingAlgorithm: 'ES256' })), { mode: 0o600 });
      }

      const loaded = loadConfig({ file, env: environment, cwd: dir });

      assert.equal(loaded.config.mode, 'production');
      assert.match(loaded.publicUrl, /^https:\/\//);
      assert.ok(loaded.config.upstream, 'an upstream identity provider');
      assert.ok(loaded.config.routes.length > 0, 'at least one route');
      // An absolute audit file path names a directory on the deployment host (`/var/log/gatehouse`, made by the unit's
      // LogsDirectory=), which this machine has not: that one warning is about here, not about the example.
      const hostPathWarning = (warning: string) => warning.startsWith('audit.output: the directory "/') && warning.includes('" does not exist');
      assert.deepEqual(loaded.warnings.filter((warning) => !hostPathWarning(warning)), [], `${page}:${block.line}: a production example should start without warnings`);
    });
  });
});
