/**
 * A SIGHUP that reached `gatehouse start` before the gateway could handle one. SIGHUP's default action ends the
 * process, and loading the command's modules takes about a second before `startGateway` runs: `bin/gatehouse.js`
 * takes the signal from its first line and leaves a note under this global key (plain JavaScript cannot import
 * this module), which `startGateway` reads — and then removes the listener — once its own listener is in place.
 */
export const STARTING_HANGUP_KEY = Symbol.for('gatehouse.startingHangup');

interface StartingHangup {
  received: boolean;
  listener: () => void;
}

/** Whether the command line's early listener took a SIGHUP; removes that listener from the process either way. */
export function takeStartingHangup(): boolean {
  const holder = globalThis as Record<symbol, unknown>;
  const note = holder[STARTING_HANGUP_KEY] as StartingHangup | undefined;
  if (note === undefined) return false;
  delete holder[STARTING_HANGUP_KEY];
  process.off('SIGHUP', note.listener);
  return note.received;
}
