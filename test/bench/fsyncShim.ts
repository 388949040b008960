/**
 * The "storescp + fsync" receiver of `npm run bench`: a tiny LD_PRELOAD library, compiled here with the system C
 * compiler into test-output/, that fsyncs every regular file opened for writing when it is closed (close() and
 * fclose()). DCMTK storescp saves each received instance with fclose() before it answers the C-STORE, so with the shim
 * storescp answers only once the file's data is on disk: the durable floor for a C implementation.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

const SOURCE = `
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static void flush_if_written(int fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || (flags & O_ACCMODE) == O_RDONLY) return;
  fsync(fd);
}

int close(int fd) {
  static int (*real_close)(int);
  if (!real_close) real_close = (int (*)(int))dlsym(RTLD_NEXT, "close");
  flush_if_written(fd);
  return real_close(fd);
}

int fclose(FILE *f) {
  static int (*real_fclose)(FILE *);
  if (!real_fclose) real_fclose = (int (*)(FILE *))dlsym(RTLD_NEXT, "fclose");
  if (f) {
    fflush(f);
    flush_if_written(fileno(f));
  }
  return real_fclose(f);
}
`;

/** Compiles the shim (once per run) into `outDir` and returns the path of the shared object. */
export function buildFsyncShim(outDir: string): string {
  fs.mkdirSync(outDir, { recursive: true });
  const src = path.join(outDir, 'fsync-on-close.c');
  const lib = path.join(outDir, 'fsync-on-close.so');
  fs.writeFileSync(src, SOURCE);
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-O2', '-o', lib, src, '-ldl'], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc could not build the fsync shim (${cc.status}): ${cc.stderr}`);
  return lib;
}

/** The environment that preloads the shim (DCMTK's TCP_NODELAY=1 and the rest of `base` kept). */
export function shimEnv(lib: string, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...base, LD_PRELOAD: base.LD_PRELOAD ? `${lib}:${base.LD_PRELOAD}` : lib };
}
