import fs from 'node:fs';
import { promisify } from 'node:util';
import { buildPart10Header, writeSeal, type MetaInfo } from './part10.js';
import { encodeSeal, SealHasher, SEAL_BYTES, SEAL_CREATOR_UID } from './seal.js';
import { HEAD_BYTES } from './header.js';
import { DicomStatus, DimseError } from '../domain/status.js';

const fdatasync = promisify(fs.fdatasync);
const close = promisify(fs.close);
const open = promisify(fs.open);

/** Write a batch once this much is buffered. */
const FLUSH_BYTES = 256 * 1024;
/**
 * Up to here a data set is written synchronously (below). Past it, by the thread pool while the rest arrives: for a
 * large object that kept the peak RSS lower (a 1 GiB instance: 154-167 MiB against 177-183 MiB written synchronously
 * all the way, measured; the promises of the asynchronous writes make V8 collect the socket's spent buffers sooner).
 */
const SYNC_BYTES = 16 * 1024 * 1024;
/**
 * Above this much handed to the thread pool and not yet written, write synchronously so memory stays flat. A 1 GiB
 * instance, 6 alternating runs each: 8 MiB gave a peak RSS of 153-174 MiB (median 163) and 3.3-3.9 s; 2 MiB 154-172
 * MiB (median 156) and 2.7-3.3 s.
 */
const MAX_IN_FLIGHT = 2 * 1024 * 1024;

/** Where a C-STORE's data set goes (handed out by the spool pool). */
export interface PoolFile {
  path: string;
  /** The pool keeps its ready files open: the writer takes over this descriptor (and closes it). */
  fd?: number;
  /** Created just now because the pool was empty: its name is durable only after the pool directory's fsync. */
  fresh: boolean;
}

export interface SpooledFile {
  /** Absolute path of the flushed file (a pool file, or an import's `*.part`). */
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
 * Streams one data set into a spool pool file: the bytes as they come, written in 256 KiB batches while the rest still
 * arrives, hashed for the seal (seal.ts), then the Part 10 preamble and sealed meta in front, then one fdatasync off
 * the main thread.
 *
 * Into a ready pool file (its descriptor open: the usual case) the batches of the first SYNC_BYTES and the meta are
 * written synchronously: a write to the page cache, ~0.14 ms of main thread per 0.5 MB on this machine, less than a
 * round trip through the thread pool per batch. `finish` then starts the flush before it returns, so the caller's
 * header check runs while the disk flushes (measured: the check had run first and the flush was asked for only after
 * it, ~1 ms later). A file still being opened (the pool was empty), and the rest of a large object, get their batches
 * written by the thread pool.
 * A write error (ENOSPC) is kept and reported by `finish` as A700; the partial file is removed.
 */
export class SpoolWriter {
  private fd: number | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** File offset of the next batch: batches are written at their own position, so they may complete in any order. */
  private position = 0;
  private headParts: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer = Buffer.alloc(0);
  private datasetLength = 0;
  private error: Error | undefined;
  /** The open, started before the data set arrives; every batch waits for it. */
  private readonly opened: Promise<void>;
  /**
   * Batches handed to the thread pool (before the descriptor is open, or past SYNC_BYTES) and not yet done. Each is
   * written at its own offset, not after the one before.
   */
  private readonly batches = new Set<Promise<void>>();
  private inFlight = 0;
  private readonly metaLength: number;
  private readonly header: Buffer;
  private readonly hasher = new SealHasher();
  readonly tmpPath: string;

  /**
   * `file`: a pool file (empty, its name already durable), or a new name to create when the pool had none. The
   * data set is written after room left for the meta; the meta, with the seal filled in, is written last.
   */
  constructor(file: PoolFile, meta: MetaInfo) {
    this.tmpPath = file.path;
    this.header = buildPart10Header(meta, { creatorUid: SEAL_CREATOR_UID, bytes: SEAL_BYTES });
    this.metaLength = this.header.length;
    this.position = this.metaLength;
    this.headParts.push(this.header);
    this.headBytes = this.header.length;
    // Opened off the main thread while the data set is still on its way (a blocking open waits behind other fsyncs).
    this.opened = (
      file.fd !== undefined ? Promise.resolve(file.fd) : open(this.tmpPath, file.fresh ? 'wx' : 'r+')
    ).then(
      (fd) => {
        this.fd = fd;
      },
      (err: unknown) => this.fail(err),
    );
  }

  write(chunk: Buffer): void {
    if (this.error) return;
    this.datasetLength += chunk.length;
    this.hasher.update(chunk);
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
    if (this.error || this.pending.length === 0) return;
    const chunks = this.pending;
    const bytes = this.pendingBytes;
    const position = this.position;
    this.pending = [];
    this.pendingBytes = 0;
    this.position += bytes;
    if (this.fd !== undefined && (position < SYNC_BYTES || this.inFlight + bytes > MAX_IN_FLIGHT)) {
      try {
        writeAllSync(this.fd, chunks, bytes, position);
      } catch (err) {
        this.fail(err);
      }
      return;
    }
    this.inFlight += bytes;
    const batch: Promise<void> = this.opened
      .then(() => (this.error || this.fd === undefined ? undefined : writeAll(this.fd, chunks, bytes, position)))
      .catch((err: unknown) => this.fail(err))
      .finally(() => {
        this.inFlight -= bytes;
        this.batches.delete(batch);
      });
    this.batches.add(batch);
  }

  private fail(err: unknown): void {
    this.error ??= err as Error;
  }

  /**
   * Writes the rest, then the sealed meta, then one fdatasync: the only flush before Success. Resolves with what the
   * parser needs, or rejects with a DIMSE error.
   */
  async finish(): Promise<SpooledFile> {
    this.flush();
    writeSeal(this.header, encodeSeal(this.hasher.finish()));
    let flushed: Promise<void> | undefined;
    if (this.fd !== undefined && this.batches.size === 0) {
      // Everything is written: the meta too, and the flush starts now, before this returns to the caller.
      try {
        if (!this.error) {
          writeAllSync(this.fd, [this.header], this.header.length, 0);
          flushed = fdatasync(this.fd);
        }
      } catch (err) {
        this.fail(err);
      }
    } else {
      // The sealed meta goes out beside the last batches still being written.
      const sealed = this.opened.then(() =>
        this.error || this.fd === undefined ? undefined : writeAll(this.fd, [this.header], this.header.length, 0),
      );
      const [, meta] = await Promise.allSettled([this.settled(), sealed]);
      if (meta.status === 'rejected') this.fail(meta.reason);
    }
    const fd = this.fd;
    this.fd = undefined;
    try {
      if (this.error) throw this.error;
      await (flushed ?? fdatasync(fd!));
    } catch (err) {
      if (fd !== undefined) await close(fd).catch(() => undefined);
      // Removed before the failure is answered: nothing partial is left once the sender has its status.
      await fs.promises.rm(this.tmpPath, { force: true }).catch(() => undefined);
      throw storageError(err);
    }
    // Durable once flushed: the close need not hold up the answer (a file may be renamed while open).
    fs.close(fd!, () => undefined);
    return this.received();
  }

  /** The open and every batch handed out so far are done (failures are kept in `error`). */
  private async settled(): Promise<void> {
    await this.opened;
    await Promise.all([...this.batches]);
  }

  /** What arrived, from memory: complete once `finish` has been called, before the file is durable. */
  received(): SpooledFile {
    if (this.headParts.length > 1) this.headParts = [Buffer.concat(this.headParts)];
    return {
      tmpPath: this.tmpPath,
      metaLength: this.metaLength,
      datasetLength: this.datasetLength,
      head: this.headParts[0]!,
      tail: this.tail,
    };
  }

  abort(): void {
    this.pending = [];
    this.error ??= new Error('aborted');
    // Close only after the open and any batch still in the thread pool are done with the descriptor.
    void this.settled().finally(() => {
      const fd = this.fd;
      this.fd = undefined;
      if (fd !== undefined) fs.close(fd, () => undefined);
      this.removeTmp();
    });
  }

  private removeTmp(): void {
    fs.rm(this.tmpPath, { force: true }, () => undefined);
  }
}

const writev = promisify(fs.writev);

async function writeAll(fd: number, chunks: Buffer[], bytes: number, position: number): Promise<void> {
  let done = 0;
  while (done < bytes) {
    const n = (await writev(fd, chunks, position + done)).bytesWritten;
    done += n;
    if (done < bytes) chunks = skipBytes(chunks, n);
  }
}

function writeAllSync(fd: number, chunks: Buffer[], bytes: number, position: number): void {
  let done = 0;
  while (done < bytes) {
    const n = fs.writevSync(fd, chunks, position + done);
    done += n;
    if (done < bytes) chunks = skipBytes(chunks, n);
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
  private handle: Promise<fs.promises.FileHandle> | undefined;

  /**
   * `keepOpen`: hold the directory open between syncs (the spool: one fsync per image, and an open and a close around
   * each were two more trips through the thread pool before Success); `close` then releases it.
   */
  constructor(
    private readonly dir: string,
    private readonly keepOpen = false,
  ) {}

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    if (handle) await (await handle.catch(() => undefined))?.close();
  }

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
    if (this.keepOpen) {
      const opening = (this.handle ??= fs.promises.open(this.dir, 'r'));
      try {
        await (await opening).sync();
      } catch (err) {
        if (this.handle === opening) await this.close();
        throw err;
      }
      return;
    }
    const fh = await fs.promises.open(this.dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
