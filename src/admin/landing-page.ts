import type { FastifyPluginAsync } from 'fastify';
import type { GatehouseConfig } from '../config/schema.ts';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { escapeHtml, renderPage } from '../web/html.ts';

/**
 * `/`: what this Gatehouse protects and how to connect a client to it — each route's public URL, its scopes, and
 * copy-paste configuration for VS Code, Claude Code, Cursor and the MCP Inspector. Only what clients can learn anyway
 * (the public URLs and scopes from the protected-resource metadata); never a backend address. Every value is escaped:
 * route paths and scope descriptions come from the configuration, and the page must not become an injection point.
 */
type Route = GatehouseConfig['routes'][number];

/** A name for the client configs: the route path as an identifier (`/mcp/graph` → `gatehouse-mcp-graph`). */
export function serverName(route: Pick<Route, 'path'>): string {
  const slug = route.path.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  return slug === '' ? 'gatehouse' : `gatehouse-${slug}`;
}

/** The snippets, as plain text (escaped where rendered). */
export function clientSnippets(route: Route, url: string): { client: string; where: string; text: string }[] {
  const name = serverName(route);
  return [
    { client: 'VS Code', where: '.vscode/mcp.json', text: JSON.stringify({ servers: { [name]: { type: 'http', url } } }, null, 2) },
    { client: 'Claude Code', where: 'terminal', text: `claude mcp add --transport http ${name} ${url}` },
    { client: 'Cursor', where: '~/.cursor/mcp.json', text: JSON.stringify({ mcpServers: { [name]: { url } } }, null, 2) },
    // The web UI takes the URL in its form (Streamable HTTP); the CLI form lists the tools after the browser sign-in.
    { client: 'MCP Inspector', where: 'terminal', text: `npx @modelcontextprotocol/inspector --cli ${url} --transport http --method tools/list` },
  ];
}

const code = (text: string) => `<code>${escapeHtml(text)}</code>`;

function routeSection(route: Route, publicUrl: string): string {
  const url = `${publicUrl}${route.path}`;
  const scopes = Object.entries(route.scopes)
    .map(([name, description]) => `<li><code class="scope">${escapeHtml(name)}</code> — ${escapeHtml(description)}</li>`)
    .join('');
  if (route.type === 'http') {
    return `<section class="route"><h2>${escapeHtml(route.path)} <span class="badge">REST API</span></h2>
<p class="url">${code(url)}</p><ul class="scopes">${scopes}</ul>
<p class="hint">OAuth-protected HTTP endpoints: a client discovers the sign-in from the <code>401</code> answer.</p></section>`;
  }
  const snippets = clientSnippets(route, url)
    .map((snippet) => `<h3>${escapeHtml(snippet.client)} <span class="hint">${escapeHtml(snippet.where)}</span></h3><pre tabindex="0"><code>${escapeHtml(snippet.text)}</code></pre>`)
    .join('\n');
  // Served where the route has the older transport; named here too, or its clients had only the docs to find it by.
  const legacy = route.transports.includes('sse')
    ? `\n<p class="hint">Clients of the older HTTP+SSE transport (protocol 2024-11-05): ${code(`${url.replace(/\/$/, '')}/sse`)}</p>`
    : '';
  return `<section class="route"><h2>${escapeHtml(route.path)} <span class="badge">MCP server</span></h2>
<p class="url">${code(url)}</p><ul class="scopes">${scopes}</ul>
${snippets}${legacy}</section>`;
}

export function renderLandingPage(config: GatehouseConfig, publicUrl: string): string {
  const routes = config.routes.map((route) => routeSection(route, publicUrl)).join('\n');
  const count = config.routes.length;
  const intro =
    count === 0
      ? '<p>No MCP servers are configured yet.</p>'
      : `<p>This gateway signs you in and protects ${count === 1 ? 'one server' : `${count} servers`}. Add a URL below to your MCP client; it opens a browser for you to sign in and approve access the first time.</p>`;
  return renderPage(
    'Connect a client',
    `<h1>Connect an MCP client</h1>
${intro}
${routes}
<p class="hint">Your connected apps: <a href="/account">/account</a>. Server metadata: ${code(`${publicUrl}/.well-known/oauth-authorization-server`)}.</p>`,
    { wide: true, branding: config.branding },
  );
}

/**
 * A shield, in the page's accent colour, at the address browsers ask for by themselves (no `<link rel=icon>`: the
 * consent page's CSP allows only https images, for client logos).
 */
export const FAVICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64"><path d="M32 4 8 12v18c0 15 10 26 24 30 14-4 24-15 24-30V12z" fill="#2454d6"/><path d="M22 32l7 7 14-15" fill="none" stroke="#fff" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/></svg>';

export function createLandingPlugin(ctx: GatehouseContext): FastifyPluginAsync {
  return async (app) => {
    // Rendered per request: a configuration reload (src/app/reload-config.ts) changes the scopes it lists.
    app.get('/', { config: { errorFormat: 'html' } }, async (_request, reply) =>
      reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(renderLandingPage(ctx.config, ctx.publicUrl)),
    );
    app.get('/favicon.ico', async (_request, reply) => reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(FAVICON_SVG));
  };
}
