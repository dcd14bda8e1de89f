import { execFile } from 'node:child_process';
import { closeSync, constants, createWriteStream, open, openSync, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BasaltError, ioError } from '../oci/errors.js';

/**
 * A named pipe a child program reads by path. Needed because Node gives children socketpairs
 * as piped stdin, and ostree (libarchive) cannot open `/dev/stdin` when it is a socket.
 *
 * Opening a FIFO blocks until the other side opens it, so: the child opens the path for
 * reading; basalt opens it for writing (in the thread pool) and starts writing once both are
 * there. If the child dies before opening, `unblock()` opens a read end itself so basalt's
 * pending open returns instead of waiting forever. Being the only writer, basalt sees EPIPE if
 * the child exits early, and closing its descriptor is the child's end of file. Descriptors
 * are closed synchronously here, never by the stream: a late asynchronous close could hit a
 * descriptor number already reused.
 */
export interface Fifo {
  path: string;
  /** Resolves once the reader has opened the pipe. */
  openWriter(): Promise<WriteStream>;
  /** Ends the data (the reader sees end of file); call after the stream has finished. */
  closeWriter(): void;
  /** Lets a pending openWriter() return when the reader will never come. */
  unblock(): void;
  remove(): Promise<void>;
}

export async function createFifo(dir: string): Promise<Fifo> {
  const path = join(dir, `basalt-${process.pid}-${randomBytes(6).toString('hex')}.fifo`);
  await new Promise<void>((resolve, reject) =>
    execFile('mkfifo', ['-m', '600', path], (err, _o, stderr) => (err ? reject(new BasaltError('tool', `mkfifo ${path} failed: ${stderr.trim() || err.message}`)) : resolve())),
  );
  let writeFd: number | undefined;
  let opening = false;
  let unblockFd: number | undefined;
  const closeWriter = (): void => {
    if (writeFd !== undefined) closeSync(writeFd);
    writeFd = undefined;
  };
  return {
    path,
    openWriter: () =>
      new Promise((resolve, reject) => {
        opening = true;
        open(path, constants.O_WRONLY, (err, fd) => {
          opening = false;
          if (unblockFd !== undefined) closeSync(unblockFd);
          unblockFd = undefined;
          if (err) return reject(ioError(`opening ${path}`, err));
          writeFd = fd;
          resolve(createWriteStream('', { fd, autoClose: false, emitClose: false, highWaterMark: 1 << 20 }));
        });
      }),
    closeWriter,
    unblock: () => {
      if (opening && unblockFd === undefined) unblockFd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    },
    remove: async () => {
      closeWriter();
      await rm(path, { force: true });
    },
  };
}
