import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The Redis store's multi-key changes, each a Lua script so Redis runs it atomically: a record, its index sets and
 * its namespace's list set never disagree, whatever other replicas do at the same moment. Index keys are built inside
 * the scripts from a prefix, so the store targets standalone Redis (or Sentinel), not Redis Cluster.
 *
 * Record values are envelopes `{"v": value, "i": {index: value}, "e": expiresAtMs}`; the scripts read `i` to drop a
 * record's old index memberships.
 */

/** Lua helper: removes `key` from every index set named in the envelope `old`. */
const dropIndexes = `
local function dropIndexes(old, indexPrefix, key)
  local ok, envelope = pcall(cjson.decode, old)
  if ok and type(envelope) == 'table' and type(envelope.i) == 'table' then
    for name, value in pairs(envelope.i) do
      redis.call('SREM', indexPrefix .. name .. '=' .. value, key)
    end
  end
end
`;

/**
 * KEYS: record, list set. ARGV: index prefix, key, envelope, ttl ms (0 = none), mode (`set` | `nx`), then index
 * name/value pairs. Returns 1 when written, 0 when mode `nx` found a live record.
 */
export const setRecordScript = `${dropIndexes}
local old = redis.call('GET', KEYS[1])
if ARGV[5] == 'nx' and old then return 0 end
if old then dropIndexes(old, ARGV[1], ARGV[2]) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl) else redis.call('SET', KEYS[1], ARGV[3]) end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('SADD', ARGV[1] .. ARGV[i] .. '=' .. ARGV[i + 1], ARGV[2])
end
return 1
`;

/**
 * KEYS: record. ARGV: index prefix, key, the envelope as read, the envelope with the new indexes, then the new index
 * name/value pairs. Replaces the envelope only if it is still the one read (keeping its TTL) and adds the index
 * memberships; returns 1, or 0 when the record changed or went in between. The new envelope is built by the caller:
 * re-encoding it here with cjson would turn an empty array in the value into an object.
 */
export const addIndexesScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[4], 'KEEPTTL')
for i = 5, #ARGV, 2 do
  redis.call('SADD', ARGV[1] .. ARGV[i] .. '=' .. ARGV[i + 1], ARGV[2])
end
return 1
`;

/** KEYS: record, list set. ARGV: index prefix, key. GETDEL makes the read and the removal one step. */
export const takeRecordScript = `${dropIndexes}
local old = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if not old then return false end
dropIndexes(old, ARGV[1], ARGV[2])
return old
`;

/** KEYS: index set, list set. ARGV: index prefix, record prefix. Returns how many live records went. */
export const deleteByIndexScript = `${dropIndexes}
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local old = redis.call('GETDEL', ARGV[2] .. key)
  redis.call('ZREM', KEYS[2], key)
  if old then
    removed = removed + 1
    dropIndexes(old, ARGV[1], key)
  end
end
redis.call('DEL', KEYS[1])
return removed
`;

/**
 * KEYS: a list set or index set. ARGV: record prefix, kind (`zset` | `set`), member keys. Removes the members whose
 * record is gone (expired) and returns how many. Checking EXISTS inside the script means a record re-created a
 * moment ago keeps its membership.
 */
export const dropStaleMembersScript = `
local removed = 0
for i = 3, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then
    if ARGV[2] == 'zset' then
      removed = removed + redis.call('ZREM', KEYS[1], ARGV[i])
    else
      removed = removed + redis.call('SREM', KEYS[1], ARGV[i])
    end
  end
end
return removed
`;

/** KEYS: counter. ARGV: by, ttl ms. The TTL is set only when the counter has none, i.e. when it was just created. */
export const incrementScript = `
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
`;

/** KEYS: lock. ARGV: holder token. Compare-and-delete, so a holder whose lock expired cannot free the next one's. */
export const releaseLockScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** Runs a script by its SHA-1 and sends the body only when Redis does not have it cached (first use, restart). */
export async function runScript(
  redis: Redis,
  script: string,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(shaOf(script), keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

/**
 * Runs one script many times in one MULTI (one round trip, applied together). A Redis that lost its script cache
 * (restart) answers NOSCRIPT for every call: the script is loaded and the batch sent again, which is safe because
 * the batch's scripts are idempotent writes.
 */
export async function runScriptBatch(
  redis: Redis,
  script: string,
  calls: readonly { keys: readonly string[]; args: readonly (string | number)[] }[],
): Promise<void> {
  const send = async () => {
    const transaction = redis.multi();
    for (const { keys, args } of calls) transaction.evalsha(shaOf(script), keys.length, ...keys, ...args);
    return (await transaction.exec()) ?? [];
  };
  let results = await send();
  if (results.some(([error]) => error?.message.startsWith('NOSCRIPT'))) {
    await redis.script('LOAD', script);
    results = await send();
  }
  const failed = results.find(([error]) => error !== null)?.[0];
  if (failed) throw failed;
}

/** SHA-1 of each script body; a pure cache of constants, computed once. */
const scriptShas = new Map<string, string>();
function shaOf(script: string): string {
  let sha = scriptShas.get(script);
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex');
    scriptShas.set(script, sha);
  }
  return sha;
}
