import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';

/**
 * The Helm chart in deploy/helm/gatehouse. Its default `config` must be a Gatehouse config that loads, and every value
 * must be documented. Rendering needs `helm` (not packaged for this machine's Debian, and no JavaScript renderer of
 * Helm's Go templates is maintained): where `helm` is on PATH the templates are rendered for several value sets and,
 * with `kubeconform` on PATH, validated strictly against the Kubernetes schemas; elsewhere those tests skip and say so.
 */
const chart = resolve(import.meta.dirname, '..', '..', 'deploy', 'helm', 'gatehouse');
const valuesText = readFileSync(join(chart, 'values.yaml'), 'utf8');
const values = parse(valuesText) as { config: Record<string, unknown> } & Record<string, unknown>;
const dir = mkdtempSync(join(tmpdir(), 'gatehouse-chart-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const onPath = (tool: string): boolean => spawnSync(tool, ['version'], { encoding: 'utf8' }).status === 0;
const helmMissing = onPath('helm') ? false : 'helm is not installed here (no Debian package); the chart is not rendered';

describe('helm chart values', () => {
  it('the default config is a valid production Gatehouse config', () => {
    const file = join(dir, 'gatehouse.yaml');
    writeFileSync(file, stringify(values.config));
    const loaded = loadConfig({ file, env: { REDIS_URL: 'redis://redis:6379', AZURE_FEDERATED_TOKEN_FILE: join(dir, 'token') }, cwd: dir });
    assert.equal(loaded.config.mode, 'production');
    assert.equal(loaded.config.store.type, 'redis', 'replicas need the shared store');
  });

  it('documents every top-level value with a comment above it', () => {
    const lines = valuesText.split('\n');
    const undocumented = lines
      .map((line, index) => ({ line, previous: lines[index - 1] ?? '' }))
      .filter(({ line }) => /^[A-Za-z]\w*:/.test(line))
      .filter(({ line, previous }) => !previous.startsWith('#') && !/^[A-Za-z]\w*:\s*$/.test(line))
      .map(({ line }) => line);
    assert.deepEqual(undocumented, []);
  });

  it('leaves time for the drain: terminationGracePeriodSeconds > preStop sleep + shutdownGraceMs', () => {
    const grace = (values.config.server as { shutdownGraceMs: number }).shutdownGraceMs / 1000;
    assert.ok(Number(values.terminationGracePeriodSeconds) > Number(values.preStopSleepSeconds) + grace);
  });
});

const valueSets: Record<string, string[]> = {
  defaults: [],
  'created secret, no ingress, no workload identity': ['--set', 'secret.create=true', '--set', 'secret.data.REDIS_URL=redis://r:6379', '--set', 'ingress.enabled=false', '--set', 'workloadIdentity.enabled=false'],
  'one replica without PDB': ['--set', 'replicaCount=1', '--set', 'podDisruptionBudget.enabled=false', '--set', 'secret.existingSecret=gatehouse-env'],
};

describe('helm template', { skip: helmMissing }, () => {
  for (const [name, args] of Object.entries(valueSets)) {
    it(`renders valid manifests: ${name}`, () => {
      const rendered = spawnSync('helm', ['template', 'gatehouse', chart, '--namespace', 'gatehouse', ...args], { encoding: 'utf8' });
      assert.equal(rendered.status, 0, rendered.stderr);
      const objects = parseAllDocuments(rendered.stdout).map((document) => document.toJS() as { kind: string; spec?: Record<string, unknown> } | null).filter((object) => object !== null);
      const kinds = objects.map((object) => object.kind);
      for (const kind of ['ConfigMap', 'Deployment', 'Service']) assert.ok(kinds.includes(kind), kind);
      const deployment = objects.find((object) => object.kind === 'Deployment');
      const template = deployment?.spec?.template as { spec: { containers: { lifecycle: unknown; readinessProbe: unknown }[] } } | undefined;
      const container = template?.spec.containers[0];
      assert.ok(container?.lifecycle && container.readinessProbe, 'preStop and the readiness probe are set');
      if (onPath('kubeconform')) {
        const checked = spawnSync('kubeconform', ['-strict', '-summary', '-'], { input: rendered.stdout, encoding: 'utf8' });
        assert.equal(checked.status, 0, checked.stdout + checked.stderr);
      }
    });
  }
});
