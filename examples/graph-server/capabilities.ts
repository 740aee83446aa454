import { z } from 'zod';
import type { CallerIdentity } from './caller-identity.ts';
import { GraphError, type GraphClient } from './graph-client.ts';
import { TokenSourceError, type GraphTokenSource } from './graph-token-source.ts';

/**
 * What this server can do, defined once and served both as MCP tools and as plain HTTP endpoints (the original
 * Functions app's `/hello`, `/echo`, `/me`, `/status`, `/tools`). Every schema is zod, so inputs are validated and the
 * MCP `outputSchema` and `/tools` listing come from the same definition.
 */
export const SERVICE_NAME = 'gatehouse-graph-server';
export const SERVICE_VERSION = '0.1.0';

export const userContextSchema = z.object({
  subject: z.string().describe('Gatehouse subject of the signed-in user'),
  name: z.string().optional(),
  email: z.string().optional(),
  tenantId: z.string().optional(),
  groups: z.array(z.string()),
  scopes: z.array(z.string()).describe('Scopes the MCP client was granted at the gateway'),
  clientId: z.string().optional().describe('The MCP client acting for the user'),
});

export const graphProfileSchema = z
  .object({
    id: z.string().optional(),
    displayName: z.string().nullable().optional(),
    givenName: z.string().nullable().optional(),
    surname: z.string().nullable().optional(),
    mail: z.string().nullable().optional(),
    userPrincipalName: z.string().nullable().optional(),
    jobTitle: z.string().nullable().optional(),
  })
  .loose();

export const capabilitySchemas = {
  get_graph_user_details: {
    description: 'The signed-in user\'s Microsoft Graph profile (GET /v1.0/me), fetched as that user.',
    input: z.object({}),
    output: graphProfileSchema,
  },
  hello: {
    description: 'Greets the signed-in user, or the given name.',
    input: z.object({ name: z.string().max(200).optional().describe('Who to greet instead of the signed-in user') }),
    output: z.object({ message: z.string() }),
  },
  echo: {
    description: 'Returns its input unchanged.',
    input: z.object({ message: z.string().max(100_000) }),
    output: z.object({ message: z.string() }),
  },
  status: {
    description: 'Service health, authentication state and the user context from the gateway\'s identity assertion.',
    input: z.object({}),
    output: z.object({
      status: z.literal('ok'),
      service: z.string(),
      version: z.string(),
      authenticated: z.boolean(),
      tokenSource: z.enum(['broker', 'obo']),
      user: userContextSchema,
    }),
  },
  me: {
    description: 'The user context the gateway asserted for this request (no Graph call).',
    input: z.object({}),
    output: userContextSchema,
  },
} as const;

export type CapabilityName = keyof typeof capabilitySchemas;

/** A capability failed in a way the user should read (Graph throttled, re-consent needed…). */
export class CapabilityError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'CapabilityError';
    this.status = status;
  }
}

export interface CapabilityDeps {
  graph: GraphClient;
  tokenSource: GraphTokenSource;
  tokenSourceKind: 'broker' | 'obo';
}

export function userContext(caller: CallerIdentity): z.infer<typeof userContextSchema> {
  // Built field by field: the caller's credential must never end up in a result.
  return {
    subject: caller.subject,
    ...(caller.name !== undefined ? { name: caller.name } : {}),
    ...(caller.email !== undefined ? { email: caller.email } : {}),
    ...(caller.tenantId !== undefined ? { tenantId: caller.tenantId } : {}),
    groups: caller.groups,
    scopes: caller.scopes,
    ...(caller.clientId !== undefined ? { clientId: caller.clientId } : {}),
  };
}

export async function graphUserDetails(deps: CapabilityDeps, caller: CallerIdentity): Promise<z.infer<typeof graphProfileSchema>> {
  try {
    const token = await deps.tokenSource.tokenFor(caller);
    const profile = await deps.graph.getMe(token);
    return graphProfileSchema.parse(profile);
  } catch (error) {
    if (error instanceof TokenSourceError) throw new CapabilityError(error.message, error.reauthorize ? 401 : 503);
    if (error instanceof GraphError) throw new CapabilityError(error.message, error.status >= 500 ? 502 : error.status);
    throw new CapabilityError('Microsoft Graph returned something unexpected.', 502);
  }
}

export function hello(caller: CallerIdentity, name: string | undefined): { message: string } {
  return { message: `Hello, ${name ?? caller.name ?? caller.email ?? caller.subject}!` };
}

export function status(deps: CapabilityDeps, caller: CallerIdentity) {
  return {
    status: 'ok' as const,
    service: SERVICE_NAME,
    version: SERVICE_VERSION,
    authenticated: true,
    tokenSource: deps.tokenSourceKind,
    user: userContext(caller),
  };
}

/** `GET /tools`: the MCP tool list, with JSON Schemas, for clients that only speak plain HTTP. */
export function toolList() {
  return Object.entries(capabilitySchemas).map(([name, schema]) => ({
    name,
    description: schema.description,
    inputSchema: z.toJSONSchema(schema.input),
    outputSchema: z.toJSONSchema(schema.output),
  }));
}
