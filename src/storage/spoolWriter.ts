import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildPart10Header, type MetaInfo } from './part10.js';
import { HEAD_BYTES } from './header.js';
import { DicomStatus, DimseError } from '../domain/status.js';

const fsync = promisify(fs.fsync);
const close = promisify(fs.close);

/** Flush to the kernel once this much is buffered: big enough to be few syscalls, small enough to stay flat in RSS. */
const FLUSH_BYTES = 1 << 20;

let counter = 0;

export interface SpooledFile {
  /** Absolute path of the fsynced temporary file (`*.part`). */
  tmpPath: string;
  /** Length of preamble + file meta in front of the data set. */
  metaLength: number;
  /** Data set bytes received. */
  datasetLength: number;
  /** The whole file's first bytes (meta + start of the data set), for the header parser. */
  head: Buffer;
  /** The last bytes of the data set (for the Pixel Data completeness check). */
  tail: Buffer;
}

/**
 * Streams one data set into `<dir>/<name>.<n>.part`: the Part 10 preamble and meta first, then the bytes as they come,
 * flushed synchronously in 1 MiB batches (one thread-pool trip per batch would leave the main thread idle between
 * PDUs), then fsynced off the main thread. A write error (ENOSPC) is kept and reported by `finish` as A700; the
 * partial file is removed.
 */
export class SpoolWriter {
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private headParts: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  private datasetLength = 0;
  private error: Error | undefined;
  private readonly metaLength: number;
  readonly tmpPath: string;

  constructor(dir: string, name: string, meta: MetaInfo) {
    this.tmpPath = path.join(dir, `${name}.${process.pid}-${++counter}.part`);
    const header = buildPart10Header(meta);
    this.metaLength = header.length;
    this.headParts.push(header);
    this.headBytes = header.length;
    this.pending.push(header);
    this.pendingBytes = header.length;
    try {
      this.fd = fs.openSync(this.tmpPath, 'wx');
    } catch (err) {
      this.error = err as Error;
    }
  }

  write(chunk: Buffer): void {
    if (this.error) return;
    this.datasetLength += chunk.length;
    if (this.headBytes < HEAD_BYTES) {
      const take = chunk.subarray(0, HEAD_BYTES - this.headBytes);
      this.headParts.push(take);
      this.headBytes += take.length;
    }
    this.tail =
      chunk.length >= 16 ? chunk.subarray(chunk.length - 16) : Buffer.concat([this.tail, chunk]).subarray(-16);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (this.error || this.fd === undefined || this.pending.length === 0) return;
    try {
      let chunks = this.pending;
      let remaining = this.pendingBytes;
      while (remaining > 0) {
        const n = fs.writevSync(this.fd, chunks);
        remaining -= n;
        if (remaining > 0) chunks = skipBytes(chunks, n);
      }
    } catch (err) {
      this.error = err as Error;
    }
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Flushes, fsyncs and closes; resolves with what the parser needs, or rejects with a DIMSE error. */
  async finish(): Promise<SpooledFile> {
    this.flush();
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (this.error) throw this.error;
      await fsync(fd!);
    } catch (err) {
      if (fd !== undefined) await close(fd).catch(() => undefined);
      this.removeTmp();
      throw storageError(err);
    }
    await close(fd!);
    return {
      tmpPath: this.tmpPath,
      metaLength: this.metaLength,
      datasetLength: this.datasetLength,
      head: Buffer.concat(this.headParts),
      tail: this.tail,
    };
  }

  abort(): void {
    this.pending = [];
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.fd = undefined;
    }
    this.removeTmp();
  }

  private removeTmp(): void {
    fs.rm(this.tmpPath, { force: true }, () => undefined);
  }
}

function skipBytes(chunks: Buffer[], n: number): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    if (n >= c.length) {
      n -= c.length;
      continue;
    }
    out.push(n > 0 ? c.subarray(n) : c);
    n = 0;
  }
  return out;
}

export function storageError(err: unknown): DimseError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') {
    return new DimseError(DicomStatus.OutOfResources, `out of disk space (${code})`);
  }
  if (err instanceof DimseError) return err;
  return new DimseError(DicomStatus.OutOfResources, `cannot write the spool file: ${(err as Error).message}`);
}

/**
 * fsyncs a directory so that a rename into it survives a crash. Concurrent callers share one fsync: a caller that
 * arrives while one is running waits for the next, which covers every rename made before it started.
 */
export class DirSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly dir: string) {}

  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run().finally(() => (this.running = undefined));
      return this.running;
    }
    if (!this.next) {
      const after = this.running.catch(() => undefined);
      this.next = after.then(() => {
        this.next = undefined;
        return this.sync();
      });
    }
    return this.next;
  }

  private async run(): Promise<void> {
    const fh = await fs.promises.open(this.dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
