import type { LocalUser } from './local-idp/users.ts';

/**
 * What `npm start` prints once the demo runs: everything a newcomer needs to connect a client within a minute — the
 * MCP URL, who to sign in as, where the admin and connected-apps pages are, and ready-to-paste client settings.
 */
export interface DemoBannerInput {
  publicUrl: string;
  /** Path of the route to connect clients to, e.g. `/mcp`. */
  mcpPath: string;
  /** The server's name in client settings: the start page's for the same route (`gatehouse-mcp`). */
  serverName: string;
  /** That route serves the older HTTP+SSE transport too (its `transports`). */
  legacySse: boolean;
  identityProviderUrl: string;
  directoryApiUrl: string;
  graphServerUrl: string | undefined;
  users: readonly Pick<LocalUser, 'username' | 'password' | 'name' | 'email' | 'groups'>[];
  /** Groups whose members may use the admin console. */
  adminGroups: readonly string[];
  /** Where `/metrics` is served (the main port, or `admin.metricsPort`'s listener) and who may read it. */
  metrics: { url: string; access: string };
}

export function demoBanner(input: DemoBannerInput): string[] {
  const mcpUrl = input.publicUrl + input.mcpPath;
  const vscode = JSON.stringify({ servers: { [input.serverName]: { type: 'http', url: mcpUrl } } });
  const width = Math.max(...input.users.map((user) => user.username.length));
  const admins = input.users.filter((user) => user.groups.some((group) => input.adminGroups.includes(group))).map((user) => user.username);
  return [
    '',
    `MCP server URL (paste it into your MCP client):  ${mcpUrl}`,
    ...(mcpUrl.includes('//localhost:')
      ? [`  exactly so: tokens are for this address (a client given ${mcpUrl.replace('//localhost:', '//127.0.0.1:')} refuses its metadata)`]
      : []),
    ...(input.legacySse ? [`  clients of the older HTTP+SSE transport (2024-11-05): ${mcpUrl.replace(/\/$/, '')}/sse`] : []),
    '',
    'Test users (sign in on the local identity provider; passwords are new on every start):',
    ...input.users.map((user) => `  ${user.username.padEnd(width)}  password ${user.password}   ${user.name} <${user.email}>`),
    '',
    `Connected apps (every user):  ${input.publicUrl}/account`,
    `Admin console:                ${input.publicUrl}/admin${admins.length > 0 ? `   (admins: ${admins.join(', ')})` : ''}`,
    `Metrics:                      ${input.metrics.url} (${input.metrics.access})`,
    '',
    'VS Code — .vscode/mcp.json:',
    `  ${vscode}`,
    'MCP Inspector:',
    `  npx @modelcontextprotocol/inspector   (then choose "Streamable HTTP" and enter ${mcpUrl})`,
    '',
    'DEVELOPMENT ONLY components (never started in production mode):',
    `  local identity provider  ${input.identityProviderUrl}`,
    `  demo directory API       ${input.directoryApiUrl}   (answers GET /v1.0/me like Microsoft Graph)`,
    ...(input.graphServerUrl ? [`  sample Graph MCP server  ${input.graphServerUrl}   (accepts only the gateway's signed identity)`] : []),
    '',
    'Stop with Ctrl-C.',
  ];
}
