/**
 * Work weft-cni leaves on disk when the agent is down: one JSON file per attachment in the queue
 * dir, written atomically (tmp + rename), so a crash never leaves half a file. The agent replays
 * and removes them on start. A later entry for the same attachment replaces an earlier one
 * (a DEL after a degraded ADD supersedes the registration).
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { attachmentId, DEFAULT_AGENT_QUEUE_DIR, type AttachmentRef, type QueuedWork } from './types';

function fileName(ref: AttachmentRef): string {
  // Container ids are [A-Za-z0-9_.-], ifnames have no '/'; still, keep the name filesystem-safe.
  return `${encodeURIComponent(attachmentId(ref))}.json`;
}

export function queueWork(work: QueuedWork, dir = DEFAULT_AGENT_QUEUE_DIR): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ref = work.kind === 'delete' ? work : work.registration;
  const file = join(dir, fileName(ref));
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(work, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}

/** Queued work, oldest first; unreadable files are returned as errors so the caller can log them. */
export function readQueue(dir = DEFAULT_AGENT_QUEUE_DIR): { file: string; work?: QueuedWork; error?: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out = names.map((n) => {
    const file = join(dir, n);
    try {
      return { file, work: JSON.parse(readFileSync(file, 'utf8')) as QueuedWork };
    } catch (err) {
      return { file, error: (err as Error).message };
    }
  });
  const at = (w?: QueuedWork) => w?.queuedAt ?? '';
  return out.sort((a, b) => at(a.work).localeCompare(at(b.work)));
}

export function dequeue(ref: AttachmentRef, dir = DEFAULT_AGENT_QUEUE_DIR): void {
  rmSync(join(dir, fileName(ref)), { force: true });
}

export function queuedFor(ref: AttachmentRef, dir = DEFAULT_AGENT_QUEUE_DIR): QueuedWork | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, fileName(ref)), 'utf8')) as QueuedWork;
  } catch {
    return undefined;
  }
}
