import type { Adapter } from 'oidc-provider';
import type { Clock } from '../../runtime/clock.ts';
import type { PersistedState, StoredRecord } from './persisted-state.ts';

/**
 * DEVELOPMENT ONLY — the local identity provider's storage: one process, in memory, kept across restarts only when
 * given a persisted state (persisted-state.ts; the demo gives one beside its SQLite store). Records expire on the
 * injected clock; user codes are not supported (no device flow here).
 */
export function memoryAdapterFactory(clock: Clock, persisted?: PersistedState): (name: string) => Adapter {
  const records = persisted?.records ?? new Map<string, StoredRecord>();
  const changed = () => persisted?.changed();
  const key = (model: string, id: string) => `${model}:${id}`;

  return (model) => {
    const live = (id: string) => {
      const record = records.get(key(model, id));
      if (record?.expiresAt !== undefined && record.expiresAt <= clock.now()) {
        records.delete(key(model, id));
        return undefined;
      }
      return record;
    };
    return {
      async upsert(id, payload, expiresIn) {
        records.set(key(model, id), { payload: structuredClone(payload), ...(expiresIn ? { expiresAt: clock.now() + expiresIn * 1000 } : {}) });
        changed();
      },
      async find(id) {
        const record = live(id);
        return record ? structuredClone(record.payload) : undefined;
      },
      async findByUid(uid) {
        for (const [id, record] of records) {
          if (id.startsWith(`${model}:`) && record.payload.uid === uid) return this.find(id.slice(model.length + 1));
        }
        return undefined;
      },
      async findByUserCode() {
        return undefined;
      },
      async consume(id) {
        const record = live(id);
        if (record) record.payload.consumed = Math.floor(clock.now() / 1000);
        changed();
      },
      async destroy(id) {
        records.delete(key(model, id));
        changed();
      },
      async revokeByGrantId(grantId) {
        for (const [id, record] of records) if (record.payload.grantId === grantId) records.delete(id);
        changed();
      },
    };
  };
}
