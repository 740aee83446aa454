import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { demoBanner, type DemoBannerInput } from '../../src/demo/demo-banner.ts';

const input: DemoBannerInput = {
  publicUrl: 'http://localhost:8080',
  mcpPath: '/mcp',
  serverName: 'gatehouse-mcp',
  legacySse: false,
  identityProviderUrl: 'http://localhost:8081',
  directoryApiUrl: 'http://127.0.0.1:8083',
  graphServerUrl: 'http://127.0.0.1:8082',
  users: [
    { username: 'adele', password: 'pw-1', name: 'Adele Vance', email: 'adele@gatehouse.test', groups: [] },
    { username: 'alex', password: 'pw-2', name: 'Alex Wilber', email: 'alex@gatehouse.test', groups: ['admins'] },
  ],
  adminGroups: ['admins'],
  metrics: { url: 'http://localhost:8080/metrics', access: 'loopback only in the demo' },
};

describe('the demo banner', () => {
  it('prints the MCP URL, the users with their passwords, the admins and ready-to-paste client settings', () => {
    const lines = demoBanner(input);
    assert.ok(lines.includes('MCP server URL (paste it into your MCP client):  http://localhost:8080/mcp'));
    assert.ok(lines.some((line) => /^ {2}alex {3}password pw-2 {3}Alex Wilber <alex@gatehouse\.test>$/.test(line)));
    assert.ok(lines.includes('Admin console:                http://localhost:8080/admin   (admins: alex)'));
    assert.ok(lines.includes('  {"servers":{"gatehouse-mcp":{"type":"http","url":"http://localhost:8080/mcp"}}}'));
  });

  it('names where /metrics is really served and who may read it (its own port, a token)', () => {
    const lines = demoBanner({ ...input, metrics: { url: 'http://127.0.0.1:9464/metrics', access: 'Authorization: Bearer admin.metricsToken' } });
    assert.ok(lines.includes('Metrics:                      http://127.0.0.1:9464/metrics (Authorization: Bearer admin.metricsToken)'), lines.join('\n'));
  });
});
