import type { FastifyReply } from 'fastify';
import type { AdminDeps } from './admin-deps.ts';
import type { ConsoleSession } from './console-session.ts';
import type { ConsoleSection, ConsoleView } from './pages/layout.ts';
import { pendingToolChanges } from './tools.ts';

/**
 * What every admin page's shell shows besides its own content: who is signed in, and how many tool definitions wait
 * for review — read from the store on each page, so an admin on any replica sees a change another replica saw.
 */
export async function adminView(admin: AdminDeps, title: string, section: ConsoleSection, session: ConsoleSession, notice?: string): Promise<ConsoleView> {
  return {
    title,
    section,
    session,
    isAdmin: true,
    pendingTools: (await pendingToolChanges(admin)).length,
    ...(notice === undefined ? {} : { notice }),
  };
}

/** A console page: never cached (it shows who is signed in and live state). */
export const sendConsolePage = (reply: FastifyReply, body: string): FastifyReply =>
  reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(body);
