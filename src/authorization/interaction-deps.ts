import type { FastifyReply, FastifyRequest } from 'fastify';
import type Provider from 'oidc-provider';
import type { InteractionDetails, InteractionResult } from 'oidc-provider';
import { z } from 'zod';
import type { GatehouseContext } from '../context/gatehouse-context.ts';
import { ProtocolError } from '../errors/protocol-error.ts';
import { StoreUnavailableError } from '../store/store.ts';
import type { CompletedSignIn, UpstreamClient } from '../upstream/types.ts';
import type { BrowserCookies } from './browser-cookies.ts';
import type { ProtectedResources } from './protected-resources.ts';
import { presentAsPublicRequest } from './provider-mount.ts';

/** What the interaction, consent and callback routes share. */
export interface InteractionDeps {
  ctx: GatehouseContext;
  provider: Provider;
  upstream: UpstreamClient;
  resources: ProtectedResources;
  cookies: BrowserCookies;
  /** Ids of clients from configuration (shown as "configured by your administrator"). */
  configuredClients: Set<string>;
  /** Finishes sign-ins the admin console started (`console:` interaction ids); see AuthorizationServerDeps. */
  consoleSignIn: ConsoleSignIn | undefined;
}

/** Takes over a validated console sign-in at `/callback` and answers the browser (sets its session, redirects). */
export type ConsoleSignIn = (completed: CompletedSignIn, request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

const uidParams = z.object({ uid: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) });

/** The `:uid` of an interaction route; anything that cannot be an oidc-provider uid is a 404 page. */
export function parseInteractionUid(request: FastifyRequest): string {
  const parsed = uidParams.safeParse(request.params);
  if (!parsed.success) throw new ProtocolError('not_found', 'No such sign-in request.');
  return parsed.data.uid;
}

/**
 * The provider's record of this interaction, found through its own cookie: a URL uid alone is not enough, so another
 * browser that learns the uid cannot continue someone else's authorization request.
 */
export async function loadInteraction(deps: InteractionDeps, request: FastifyRequest, reply: FastifyReply, uid: string): Promise<InteractionDetails> {
  presentAsPublicRequest(request, new URL(deps.ctx.publicUrl));
  let details: InteractionDetails;
  try {
    details = await deps.provider.interactionDetails(request.raw, reply.raw);
  } catch (cause) {
    // A store outage is a 503 (the request is still good once the store is back), not "expired": told to start
    // again, the user abandoned a sign-in that would have completed on a reload.
    if (cause instanceof StoreUnavailableError) throw cause;
    throw new ProtocolError('invalid_request', 'This sign-in request has expired or belongs to another browser.', { cause });
  }
  if (details.uid !== uid) throw new ProtocolError('invalid_request', 'This sign-in request belongs to another browser.');
  return details;
}

/**
 * Hands the result to the provider, then redirects the browser back through the authorization endpoint to the client
 * (with `iss`, RFC 9207) — including for `access_denied`. The provider saves the result first and this reply
 * redirects: a store failing on the save reaches the error handler (a 503 page with Retry-After). With the reply
 * hijacked for the provider to write, the failure came after the hijack and the browser got no answer at all.
 */
export async function finishInteraction(
  deps: InteractionDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  result: InteractionResult,
): Promise<FastifyReply> {
  presentAsPublicRequest(request, new URL(deps.ctx.publicUrl));
  let returnTo: string;
  try {
    returnTo = await deps.provider.interactionResult(request.raw, reply.raw, result, { mergeWithLastSubmission: false });
  } catch (cause) {
    // Gone since it was loaded (expired, finished in another tab): the page loadInteraction shows for it.
    if (cause instanceof Error && cause.name === 'SessionNotFound') throw new ProtocolError('invalid_request', 'This sign-in request has expired or belongs to another browser.', { cause });
    throw cause;
  }
  return reply.redirect(returnTo, 303);
}
