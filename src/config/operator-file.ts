import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';

/**
 * Files the operator names (the config file, key and certificate files, a workload token file) are read whole, some
 * of them again while serving (a reload, a token file refreshed). A path that is a FIFO blocked the reading thread
 * until someone wrote to it — with the config file, the event loop: a reload froze the gateway — and `/dev/zero` or a
 * huge file grew memory without end. Only a regular file is read, opened without blocking, up to a bound far above
 * any real one; and its text must be UTF-8 (a Latin-1 file was silently read as U+FFFD, so `café` never matched).
 */
export const OPERATOR_FILE_LIMIT_BYTES = 1024 * 1024;

export type OperatorFileProblem = 'GH_NOT_REGULAR_FILE' | 'GH_FILE_TOO_LARGE' | 'GH_FILE_NOT_UTF8';

export class OperatorFileError extends Error {
  readonly code: OperatorFileProblem;
  constructor(code: OperatorFileProblem, message: string) {
    super(message);
    this.name = 'OperatorFileError';
    this.code = code;
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

export function readOperatorFileSync(path: string, maxBytes = OPERATOR_FILE_LIMIT_BYTES): string {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const stat = fstatSync(fd);
    checkRegular(stat.isFile(), stat.size, maxBytes);
    let buffer: Buffer = Buffer.allocUnsafe(initialSize(stat.size, maxBytes));
    let length = 0;
    for (;;) {
      if (length === buffer.length) buffer = grown(buffer, maxBytes);
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > maxBytes) throw tooLarge(maxBytes);
    }
    return utf8(buffer.subarray(0, length));
  } finally {
    closeSync(fd);
  }
}

export async function readOperatorFile(path: string, maxBytes = OPERATOR_FILE_LIMIT_BYTES): Promise<string> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    const stat = await handle.stat();
    checkRegular(stat.isFile(), stat.size, maxBytes);
    let buffer: Buffer = Buffer.allocUnsafe(initialSize(stat.size, maxBytes));
    let length = 0;
    for (;;) {
      if (length === buffer.length) buffer = grown(buffer, maxBytes);
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw tooLarge(maxBytes);
    }
    return utf8(buffer.subarray(0, length));
  } finally {
    await handle.close();
  }
}

function checkRegular(isFile: boolean, size: number, maxBytes: number): void {
  if (!isFile) throw new OperatorFileError('GH_NOT_REGULAR_FILE', 'not a regular file');
  // The size a regular file says it has; the read below still stops at the bound if it grows meanwhile.
  if (size > maxBytes) throw tooLarge(maxBytes);
}

/**
 * Room for the file as its size says, plus a byte to notice it grew (a token file rewritten while read), not the
 * whole bound: a workload token file is read on every new assertion.
 */
const initialSize = (size: number, maxBytes: number) => Math.min(size, maxBytes) + 1;

/** A larger buffer holding what was read, up to one byte over the bound (which the reader then refuses). */
function grown(buffer: Buffer, maxBytes: number): Buffer {
  const larger = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
  buffer.copy(larger);
  return larger;
}

const tooLarge = (maxBytes: number) => new OperatorFileError('GH_FILE_TOO_LARGE', `larger than ${maxBytes} bytes`);

function utf8(bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new OperatorFileError('GH_FILE_NOT_UTF8', 'not UTF-8 text');
  }
}
