import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

/**
 * The temporary file name {@link writeFileAtomic} uses for `target`: hidden (leading `.`), in the same
 * directory (so the rename cannot cross file systems), unique per write.
 */
export function tempFileName(target: string): string {
  return path.join(
    path.dirname(target),
    `${tempPrefix(target)}${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

function tempPrefix(target: string): string {
  return `.${path.basename(target)}.tmp-`;
}

/**
 * Replaces `target` with `content` so that a crash at any moment (even SIGKILL or a power cut) leaves
 * either the old content or the new one, never a mix or a truncated file: write a temporary file in
 * the same directory, fsync it, rename it over `target` (atomic on POSIX), then fsync the directory so
 * the rename itself is durable. A crash before the rename leaves a temporary file behind, which
 * {@link removeLeftoverTempFiles} deletes.
 */
export async function writeFileAtomic(target: string, content: string): Promise<void> {
  const temp = tempFileName(target);
  const handle = await open(temp, 'wx', 0o644);
  try {
    try {
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
  } catch (e) {
    await unlink(temp).catch(() => {});
    throw e;
  }
  await syncDirectory(path.dirname(target));
}

/** Deletes temporary files that an interrupted {@link writeFileAtomic} of `target` left; returns their names. */
export async function removeLeftoverTempFiles(target: string): Promise<string[]> {
  const dir = path.dirname(target);
  const prefix = tempPrefix(target);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    try {
      await unlink(path.join(dir, name));
      removed.push(name);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return removed;
}

async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (e) {
    // Some platforms (Windows) and file systems cannot open or fsync a directory; the rename is
    // still atomic there, only its durability across a power cut is up to the file system.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EPERM' && code !== 'EINVAL' && code !== 'EACCES') throw e;
  } finally {
    await handle?.close();
  }
}
