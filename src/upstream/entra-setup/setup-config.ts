import { unreadableFileReason } from '../../config/file-paths.ts';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../config/config-error.ts';
import { expandEnvReferences } from '../../config/env-references.ts';
import { parseYamlConfig } from '../../config/read-yaml.ts';
import { MICROSOFT_GRAPH_APP_ID } from './graph-types.ts';

/**
 * What `gatehouse entra setup` takes from the config file, and how it writes the result back. Only the few fields it
 * needs are read (a config without `upstream` is not valid yet, which is why setup is being run), and only the
 * `upstream` section is replaced: the rest of the file, comments included, stays as the operator wrote it.
 */
export interface SetupInputs {
  publicUrl?: string;
  /** Graph delegated permissions the configured downstreams ask for, plus the sign-in's OpenID scopes. */
  graphPermissions: string[];
  /** Ignored downstream audiences (not Graph): their permissions are the operator's to add. */
  otherAudiences: string[];
  appId?: string;
  tenantId?: string;
}

const GRAPH_HOSTS = new Set(['graph.microsoft.com', 'graph.microsoft.us', 'dod-graph.microsoft.us', 'microsoftgraph.chinacloudapi.cn']);
const SIGN_IN_PERMISSIONS = ['openid', 'profile', 'email', 'offline_access'];
const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const relevantConfig = z.object({
  server: z.object({ publicUrl: z.string().optional() }).passthrough().optional(),
  upstream: z
    .object({ type: z.string().optional(), clientId: z.string().optional(), entra: z.object({ tenantId: z.string().optional() }).passthrough().optional() })
    .passthrough()
    .optional(),
  broker: z.object({ downstream: z.array(z.object({ audience: z.string(), scopes: z.array(z.string()) }).passthrough()).default([]) }).passthrough().optional(),
});

export function readSetupInputs(file: string, env: NodeJS.ProcessEnv): SetupInputs {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // As every other command says it (config/file-paths.ts), not the bare error code (`ENOENT`).
    throw new ConfigError([`the configuration file "${file}" ${unreadableFileReason(error)}`]);
  }
  const { value, problems } = parseYamlConfig(text);
  if (problems.length > 0) throw new ConfigError(problems, file);
  const expanded = expandEnvReferences(value ?? {}, env);
  const parsed = relevantConfig.safeParse(expanded.value);
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`), file);
  const config = parsed.data;

  const permissions = [...SIGN_IN_PERMISSIONS];
  const otherAudiences: string[] = [];
  for (const downstream of config.broker?.downstream ?? []) {
    if (!isGraphAudience(downstream.audience)) {
      otherAudiences.push(downstream.audience);
      continue;
    }
    for (const scope of downstream.scopes) {
      const name = scope.slice(scope.lastIndexOf('/') + 1);
      // `.default` means "whatever is configured on the app": nothing to add for it.
      if (name !== '.default' && !permissions.some((known) => known.toLowerCase() === name.toLowerCase())) permissions.push(name);
    }
  }
  const upstream = config.upstream?.type === 'entra' ? config.upstream : undefined;
  const tenantId = upstream?.entra?.tenantId;
  return {
    ...(config.server?.publicUrl ? { publicUrl: config.server.publicUrl } : {}),
    graphPermissions: permissions,
    otherAudiences,
    ...(upstream?.clientId && TENANT_ID.test(upstream.clientId) ? { appId: upstream.clientId } : {}),
    ...(tenantId && TENANT_ID.test(tenantId) ? { tenantId } : {}),
  };
}

function isGraphAudience(audience: string): boolean {
  if (audience === MICROSOFT_GRAPH_APP_ID) return true;
  try {
    return GRAPH_HOSTS.has(new URL(audience).hostname);
  } catch {
    return false;
  }
}

/** Replaces (or adds) the `upstream` section, keeping the rest of the file and its mode. */
export function writeUpstreamSection(file: string, upstream: Record<string, unknown>): void {
  const document = parseDocument(readFileSync(file, 'utf8'));
  document.set('upstream', document.createNode(upstream));
  writeFileSync(file, document.toString({ lineWidth: 0 }), { mode: statSync(file).mode & 0o777 });
}

export { SIGN_IN_PERMISSIONS };
