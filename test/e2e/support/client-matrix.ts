import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The foreign npm clients proven against Gatehouse: one row per client, the single source both for what its test
 * runs and asserts (each registration listed is run, the revision is asserted exactly, a refresh is proven when
 * claimed, the installed package version must equal the row's) and for the table in docs/tested-clients.md, which
 * tested-clients-doc.test.ts checks is exactly `renderClientMatrix()`. A claim here without a test behind it fails.
 *
 * Regenerate the page's table: `node test/e2e/support/client-matrix.ts`.
 */
export type Registration = 'DCR' | 'CIMD';

export interface ClientMatrixRow {
  key: string;
  client: string;
  /** The npm package the test runs; `installedAs` is its npm alias (older SDK releases beside the current one). */
  package: { name: string; version: string; installedAs?: string };
  transport: string;
  registrations: readonly Registration[];
  /** The protocol revision the test asserts was negotiated through the gateway. */
  revision: string;
  /** The test proves a silent refresh (new access token, rotated refresh token, no browser). */
  refresh: boolean;
  notes: string;
  proof: string;
}

export const CLIENT_MATRIX: readonly ClientMatrixRow[] = [
  {
    key: 'mcp-remote',
    client: '`mcp-remote`, spawned over stdio as desktop hosts run it',
    package: { name: 'mcp-remote', version: '0.15.1' },
    transport: 'stdio → Streamable HTTP with sessions',
    registrations: ['DCR', 'CIMD'],
    revision: '2025-11-25',
    refresh: true,
    notes: 'opens the browser through `BROWSER` (xdg-open); its own loopback callback on a port the test picks; `--client-metadata-url` for CIMD',
    proof: 'test/e2e/desktop-clients.test.ts',
  },
  {
    key: 'inspector-oauth',
    client: 'MCP Inspector CLI doing its own OAuth',
    package: { name: '@modelcontextprotocol/inspector', version: '2.12.0' },
    transport: 'Streamable HTTP',
    registrations: ['DCR', 'CIMD'],
    revision: '2025-11-25',
    refresh: true,
    notes: '`--callback-url` on a port the test picks, `--client-metadata-url` for CIMD; tokens kept in its file secret store between runs, the second run refreshes',
    proof: 'test/e2e/desktop-clients.test.ts',
  },
  {
    key: 'ai-sdk',
    client: 'Vercel AI SDK MCP client (`createMCPClient`)',
    package: { name: '@ai-sdk/mcp', version: '2.0.99' },
    transport: 'Streamable HTTP',
    registrations: ['DCR'],
    revision: '2026-07-28',
    refresh: true,
    notes: 'its own `authProvider` (an OAuth client provider) and `auth()`: OAuth is built in, not only headers',
    proof: 'test/e2e/npm-sdk-clients.test.ts',
  },
  {
    key: 'sdk-2025-06-18',
    client: 'MCP TypeScript SDK v1, an older release',
    package: { name: '@modelcontextprotocol/sdk', version: '1.22.0', installedAs: 'mcp-sdk-2025-06-18' },
    transport: 'Streamable HTTP with sessions',
    registrations: ['DCR'],
    revision: '2025-06-18',
    refresh: true,
    notes: 'sends `resource` and the challenge\'s `scope`',
    proof: 'test/e2e/npm-sdk-clients.test.ts',
  },
  {
    key: 'sdk-2025-03-26',
    client: 'MCP TypeScript SDK v1, an older release',
    package: { name: '@modelcontextprotocol/sdk', version: '1.11.5', installedAs: 'mcp-sdk-2025-03-26' },
    transport: 'Streamable HTTP with sessions',
    registrations: ['DCR'],
    revision: '2025-03-26',
    refresh: true,
    notes: 'predates protected resource metadata; its authorization request carries neither `resource` nor `scope`, and the flow still ends in a token the gateway accepts',
    proof: 'test/e2e/npm-sdk-clients.test.ts',
  },
];

export function clientRow(key: string): ClientMatrixRow {
  const row = CLIENT_MATRIX.find((candidate) => candidate.key === key);
  if (!row) throw new Error(`no client matrix row ${key}`);
  return row;
}

const root = resolve(import.meta.dirname, '..', '..', '..');

/** The version npm installed, read from the package itself (an alias resolves to its own folder). */
export function installedVersion(row: ClientMatrixRow): string {
  const manifest = JSON.parse(readFileSync(join(root, 'node_modules', row.package.installedAs ?? row.package.name, 'package.json'), 'utf8')) as { version: string };
  return manifest.version;
}

export const MATRIX_BEGIN = '<!-- client-matrix:begin (generated from test/e2e/support/client-matrix.ts) -->';
export const MATRIX_END = '<!-- client-matrix:end -->';

export function renderClientMatrix(): string {
  const lines = [
    '| client | package | transport | registration | protocol revision (asserted) | refresh | notes | proven by |',
    '|---|---|---|---|---|---|---|---|',
    ...CLIENT_MATRIX.map((row) =>
      [
        row.client,
        `\`${row.package.name}\` ${row.package.version}${row.package.installedAs ? ` (as \`${row.package.installedAs}\`)` : ''}`,
        row.transport,
        row.registrations.join(', '),
        row.revision,
        row.refresh ? 'silent, rotated, no browser' : 'not proven',
        row.notes,
        `\`${row.proof}\``,
      ].join(' | '),
    ).map((line) => `| ${line} |`),
  ];
  return `${MATRIX_BEGIN}\n${lines.join('\n')}\n${MATRIX_END}`;
}

export const testedClientsPage = join(root, 'docs', 'tested-clients.md');

if (import.meta.main) {
  const page = readFileSync(testedClientsPage, 'utf8');
  const [before, rest] = page.split(MATRIX_BEGIN);
  const after = rest?.split(MATRIX_END)[1];
  if (before === undefined || after === undefined) throw new Error(`docs/tested-clients.md has no ${MATRIX_BEGIN} … ${MATRIX_END} section`);
  writeFileSync(testedClientsPage, `${before}${renderClientMatrix()}${after}`);
}
