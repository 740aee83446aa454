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
    const text = new BoundedRead(stat.isFile(), stat.size, maxBytes);
    while (text.took(readSync(fd, ...text.room(), null)));
    return text.decoded();
  } finally {
    closeSync(fd);
  }
}

export async function readOperatorFile(path: string, maxBytes = OPERATOR_FILE_LIMIT_BYTES): Promise<string> {
  const handle = await open(path, OPEN_FLAGS);
  try {
    const stat = await handle.stat();
    const text = new BoundedRead(stat.isFile(), stat.size, maxBytes);
    while (text.took((await handle.read(...text.room(), null)).bytesRead));
    return text.decoded();
  } finally {
    await handle.close();
  }
}

/**
 * What both readers share: the checks before reading, and the bytes read so far. The buffer starts at the size the
 * file says it has, plus a byte to notice it grew (a token file rewritten while read), not at the whole bound — a
 * workload token file is read on every new assertion — and grows up to one byte over the bound, which is refused.
 */
class BoundedRead {
  private buffer: Buffer;
  private length = 0;
  private readonly maxBytes: number;

  constructor(isFile: boolean, size: number, maxBytes: number) {
    if (!isFile) throw new OperatorFileError('GH_NOT_REGULAR_FILE', 'not a regular file');
    if (size > maxBytes) throw tooLarge(maxBytes);
    this.maxBytes = maxBytes;
    this.buffer = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
  }

  /** Where the next read goes (buffer, offset, length), the buffer grown first when it is full. */
  room(): [Buffer, number, number] {
    if (this.length === this.buffer.length) {
      const larger = Buffer.allocUnsafe(Math.min(this.buffer.length * 2, this.maxBytes + 1));
      this.buffer.copy(larger);
      this.buffer = larger;
    }
    return [this.buffer, this.length, this.buffer.length - this.length];
  }

  /** Counts `bytes` just read; false at the end of the file. */
  took(bytes: number): boolean {
    this.length += bytes;
    if (this.length > this.maxBytes) throw tooLarge(this.maxBytes);
    return bytes > 0;
  }

  decoded(): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.buffer.subarray(0, this.length));
    } catch {
      throw new OperatorFileError('GH_FILE_NOT_UTF8', 'not UTF-8 text');
    }
  }
}

const tooLarge = (maxBytes: number) => new OperatorFileError('GH_FILE_TOO_LARGE', `larger than ${maxBytes} bytes`);
