import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { configSchema } from '../../src/config/schema.ts';
import {
  configKeyPaths,
  documentationFiles,
  headingAnchors,
  isConfigKeyPath,
  parseMarkdown,
  projectRoot,
  readProjectFile,
} from './markdown.ts';

/**
 * Keeps README.md and docs/*.md true of the tree: relative links (and their #anchors) resolve, repository paths
 * named in the text exist, and every configuration key written in backticks (`server.publicUrl`,
 * `routes[].timeouts.idleStreamMs`) is one the schema in src/config/schema.ts accepts.
 */

const files = documentationFiles();
const pages = new Map(files.map((file) => [file, parseMarkdown(readProjectFile(file))]));

/** `[text](target)` and `[text](target "title")`; images too. */
const LINK = /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
/** Repository paths in running text, not part of a URL or a longer path (`/opt/x/src/…` is not ours). */
const REPO_PATH = /(?<![\w./-])(?:src|docs|test|examples|scripts|bench)\/[\w./-]*/g;
/** A dotted key, optionally with list indexes (`routes[0].path`, `broker.downstream[].scopes`). */
const KEY_PATH = /^[a-z][A-Za-z0-9]*(?:\[[^\]]*\])?(?:\.[A-Za-z][A-Za-z0-9]*(?:\[[^\]]*\])?)+$/;
/** `store.ts`, `gatehouse.keys.json`: file names, not settings. */
const FILE_EXTENSION = /\.(?:ts|js|md|json|jsonl|ya?ml|db|pem|txt|css|html|sh)$/;

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

describe('documentation links and references', () => {
  it('covers README.md and the docs pages', () => {
    assert.ok(files.includes('README.md'));
    assert.ok(files.includes('docs/security.md') && files.includes('docs/deployment.md'), files.join(', '));
  });

  for (const file of files) {
    const { prose } = pages.get(file) ?? parseMarkdown('');

    it(`${file}: relative links and anchors resolve`, () => {
      const broken: string[] = [];
      for (const match of prose.matchAll(LINK)) {
        const target = match[1] ?? '';
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [pathPart = '', anchor] = target.split('#', 2);
        const targetFile = pathPart === '' ? file : normalize(join(dirname(file), decodeURIComponent(pathPart)));
        const where = `${file}:${lineOf(prose, match.index)} → ${target}`;
        if (relative(projectRoot, join(projectRoot, targetFile)).startsWith('..') || !existsSync(join(projectRoot, targetFile))) {
          broken.push(`${where} (no such file)`);
          continue;
        }
        if (anchor !== undefined && targetFile.endsWith('.md')) {
          const targetPage = pages.get(targetFile) ?? parseMarkdown(readProjectFile(targetFile));
          if (!headingAnchors(targetPage.prose).has(anchor)) broken.push(`${where} (no heading with that anchor)`);
        }
      }
      assert.deepEqual(broken, []);
    });

    it(`${file}: repository paths it names exist`, () => {
      const text = readProjectFile(file);
      const missing: string[] = [];
      for (const match of text.matchAll(REPO_PATH)) {
        const path = match[0].replace(/[.,:;]+$/, '');
        if (!existsSync(join(projectRoot, path))) missing.push(`${file}:${lineOf(text, match.index)} ${path}`);
      }
      assert.deepEqual(missing, []);
    });

    it(`${file}: configuration keys in backticks exist in the schema`, () => {
      const known = configKeyPaths();
      const sections = new Set(Object.keys(configSchema.shape));
      const unknown: string[] = [];
      for (const match of prose.matchAll(/`([^`\n]+)`/g)) {
        // `keys.source: file` and `dev.insecureCookies=true` name the key before the value.
        const candidate = (match[1] ?? '').trim().split(/\s*[:=]\s|\s*=|\s/)[0] ?? '';
        if (!KEY_PATH.test(candidate) || FILE_EXTENSION.test(candidate)) continue;
        const key = candidate.replace(/\[[^\]]*\]/g, '');
        if (!sections.has(key.split('.')[0] ?? '')) continue; // `route.path`, `entra.tenantId`: not a full key path
        if (!isConfigKeyPath(key, known)) unknown.push(`${file}:${lineOf(prose, match.index)} ${candidate}`);
      }
      assert.deepEqual(unknown, []);
    });
  }
});

describe('the helpers the documentation checks rely on', () => {
  it('derive key paths from the schema, through lists, records and union branches', () => {
    const known = configKeyPaths();
    for (const key of ['server.publicUrl', 'routes.timeouts.idleStreamMs', 'upstream.clientAuth.tokenFile', 'upstream.clientAuth.privateKeyFile', 'broker.downstream.scopes']) {
      assert.ok(isConfigKeyPath(key, known), key);
    }
    assert.ok(isConfigKeyPath('routes.tools.create_ticket.scopes', known), 'a record key matches any name');
    for (const key of ['server.publicURL', 'server.publicUrl.host', 'store.redisURL', 'routes.tools.create_ticket.groupz']) {
      assert.equal(isConfigKeyPath(key, known), false, key);
    }
  });

  it('give headings the anchors GitHub gives them', () => {
    const anchors = headingAnchors('# Plain — and why\n## 4c. Certificate (`private_key_jwt`)\n## Notes\n## Notes\n');
    assert.deepEqual([...anchors], ['plain--and-why', '4c-certificate-private_key_jwt', 'notes', 'notes-1']);
  });

  it('separate fenced blocks from prose, keeping their info strings', () => {
    const parsed = parseMarkdown('text `a.b`\n```yaml kubernetes\nkind: Pod\n```\n~~~\n```\n~~~\nafter');
    assert.deepEqual(
      parsed.blocks.map((block) => [block.info, block.body, block.line]),
      [['yaml kubernetes', 'kind: Pod', 2], ['', '```', 5]],
    );
    assert.equal(parsed.prose.split('\n').length, 8);
    assert.ok(parsed.prose.startsWith('text `a.b`') && parsed.prose.endsWith('after') && !parsed.prose.includes('kind'));
  });
});
