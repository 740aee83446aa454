import type { AuthInfo } from '@modelcontextprotocol/server';
import type { CallerIdentity } from './caller-identity.ts';
import type { CapabilityDeps } from './capabilities.ts';
import { TokenSourceError } from './graph-token-source.ts';
import { CALLER_KEY } from './mcp-tools.ts';

/**
 * A tool that needs Microsoft Graph gets its Graph token *before* the MCP SDK runs it, so that a token the gateway
 * refuses because the user must step up (Conditional Access MFA, consent) is answered at the HTTP level — `401` with
 * `WWW-Authenticate: Bearer error="insufficient_claims"`, as Graph itself answers under continuous access evaluation —
 * which the gateway turns into a challenge that makes the MCP client re-authorize. Inside the tool it could only be a
 * tool error the user has to read. The token is cached, so the tool's own request for it is not a second exchange.
 */
const GRAPH_TOOLS = new Set(['get_graph_user_details']);

const isGraphToolCall = (message: unknown): boolean => {
  if (typeof message !== 'object' || message === null) return false;
  const { method, params } = message as { method?: unknown; params?: { name?: unknown } };
  return method === 'tools/call' && typeof params?.name === 'string' && GRAPH_TOOLS.has(params.name);
};

export async function graphStepUpResponse(deps: CapabilityDeps, body: unknown, authInfo: AuthInfo): Promise<Response | undefined> {
  const messages = Array.isArray(body) ? body : [body];
  if (!messages.some(isGraphToolCall)) return undefined;
  const caller = authInfo.extra?.[CALLER_KEY] as CallerIdentity | undefined;
  if (caller === undefined) return undefined;
  try {
    await deps.tokenSource.tokenFor(caller);
    return undefined;
  } catch (error) {
    // Anything else (the gateway is down, …) is the tool's to report as a tool error.
    if (!(error instanceof TokenSourceError) || !error.reauthorize) return undefined;
    return Response.json(
      { error: 'insufficient_claims', error_description: 'Microsoft Graph needs the user to sign in again.' },
      { status: 401, headers: { 'www-authenticate': 'Bearer error="insufficient_claims", error_description="Microsoft Graph needs the user to sign in again"' } },
    );
  }
}
