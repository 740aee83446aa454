import type { Redis } from 'ioredis';
import { dropStaleMembersScript, runScript } from './redis-scripts.ts';

/**
 * Redis expires records by itself, but the list set of a namespace and the index sets still name them. This walks
 * those sets and drops members whose record is gone, so they cannot grow without bound. It returns how many list
 * members went, which is the number of expired records cleaned up (every record is in exactly one list set).
 */
export async function purgeStaleMembers(redis: Redis, prefix: string): Promise<number> {
  let expiredRecords = 0;
  for await (const listKey of scanKeys(redis, `${escapeGlob(prefix)}l:*`)) {
    const namespace = listKey.slice(`${prefix}l:`.length);
    expiredRecords += await dropStale(redis, listKey, `${prefix}r:${namespace}#`, 'zset');
  }
  for await (const indexKey of scanKeys(redis, `${escapeGlob(prefix)}i:*`)) {
    const rest = indexKey.slice(`${prefix}i:`.length);
    const namespace = rest.slice(0, rest.indexOf('#'));
    await dropStale(redis, indexKey, `${prefix}r:${namespace}#`, 'set');
  }
  return expiredRecords;
}

async function dropStale(redis: Redis, setKey: string, recordPrefix: string, kind: 'set' | 'zset'): Promise<number> {
  let removed = 0;
  let cursor = '0';
  do {
    let members: string[];
    if (kind === 'zset') {
      const [next, flat] = await redis.zscan(setKey, cursor, 'COUNT', 500);
      cursor = next;
      // ZSCAN returns member, score, member, score, …
      members = flat.filter((_, i) => i % 2 === 0);
    } else {
      [cursor, members] = await redis.sscan(setKey, cursor, 'COUNT', 500);
    }
    if (members.length > 0) {
      removed += Number(await runScript(redis, dropStaleMembersScript, [setKey], [recordPrefix, kind, ...members]));
    }
  } while (cursor !== '0');
  return removed;
}

async function* scanKeys(redis: Redis, pattern: string): AsyncGenerator<string> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    cursor = next;
    yield* keys;
  } while (cursor !== '0');
}

/** A key prefix is configuration, so it may contain glob characters that MATCH would otherwise interpret. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
