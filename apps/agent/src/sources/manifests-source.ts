/**
 * `--manifests DIR`: a directory of YAML/JSON files is the cluster. The dir is watched (inotify
 * via fs.watch, debounced, plus a periodic rescan in case an event is missed); each scan re-reads
 * only files whose inode/size/mtime changed and hands the agent the difference as upserts and
 * deletes. A file that does not parse is logged and its previous objects are kept, so a
 * half-saved edit never drops the policies it held. An object defined in two files: the first
 * file by name wins (with a warning).
 */
import { readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AgentConfigError } from '../errors';
import { objectKey, parseManifestText, type SourceObject } from './manifest-objects';
import type { PolicySource, SourceChange, SourceSink } from './source';

const MANIFEST_FILE = /^[^.].*\.(ya?ml|json)$/i;
const MAX_FILE_BYTES = 16 << 20;

export interface ManifestsSourceOptions {
  dir: string;
  logger: Logger;
  /** Quiet time after a change event before rescanning (editors write in several steps). */
  debounceMs?: number;
  /** Safety-net rescan period (0: none). */
  rescanMs?: number;
}

interface FileState {
  signature: string;
  objects: Map<string, SourceObject>;
  error?: string;
}

interface Effective {
  object: SourceObject;
  json: string;
  file: string;
}

export class ManifestsSource implements PolicySource {
  readonly kind = 'manifests' as const;
  readonly description: string;
  private readonly files = new Map<string, FileState>();
  private current = new Map<string, Effective>();
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private interval?: NodeJS.Timeout;
  private sink?: SourceSink;
  private stopped = false;
  private readonly debounceMs: number;
  private readonly rescanMs: number;
  /** Scans that produced changes (tests and status). */
  scans = 0;

  constructor(private readonly options: ManifestsSourceOptions) {
    this.description = `manifests dir ${options.dir}`;
    this.debounceMs = options.debounceMs ?? 100;
    this.rescanMs = options.rescanMs ?? 5000;
  }

  async start(sink: SourceSink): Promise<void> {
    let isDir = false;
    try {
      isDir = statSync(this.options.dir).isDirectory();
    } catch {
      /* reported below */
    }
    if (!isDir) throw new AgentConfigError(`--manifests: ${this.options.dir} is not a directory`);
    this.sink = sink;
    this.watcher = watch(this.options.dir, { persistent: false }, () => this.schedule());
    this.watcher.on('error', (err) => {
      this.options.logger.error(
        { err, dir: this.options.dir },
        'manifests dir watch failed; rescanning periodically',
      );
      this.watcher?.close();
      this.watcher = undefined;
    });
    this.scan();
    sink.synced();
    if (this.rescanMs > 0) {
      this.interval = setInterval(() => this.scan(), this.rescanMs);
      this.interval.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearTimeout(this.timer);
    clearInterval(this.interval);
  }

  /** Rescans now (also what the watcher triggers after the debounce). */
  scan(): void {
    if (this.stopped || !this.sink) return;
    const log = this.options.logger;
    let names: string[];
    try {
      names = readdirSync(this.options.dir)
        .filter((n) => MANIFEST_FILE.test(n))
        .sort();
    } catch (err) {
      log.error({ err, dir: this.options.dir }, 'cannot read the manifests dir; keeping what was loaded');
      return;
    }
    const seen = new Set<string>();
    for (const name of names) {
      const file = join(this.options.dir, name);
      let signature: string;
      try {
        const st = statSync(file);
        if (!st.isFile()) continue;
        signature = `${st.ino}:${st.size}:${st.mtimeMs}`;
        seen.add(name);
        if (this.files.get(name)?.signature === signature) continue;
        if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while scanning
        this.fileFailed(name, 'stat', (err as Error).message);
        continue;
      }
      try {
        const objects = new Map<string, SourceObject>();
        for (const o of parseManifestText(readFileSync(file, 'utf8'), name)) {
          const key = objectKey(o);
          if (objects.has(key)) throw new Error(`${key} is defined twice`);
          objects.set(key, o);
        }
        this.files.set(name, { signature, objects });
        log.debug({ file: name, objects: objects.size }, 'manifest file loaded');
      } catch (err) {
        this.fileFailed(name, signature, (err as Error).message);
      }
    }
    for (const name of [...this.files.keys()]) {
      if (!seen.has(name)) {
        this.files.delete(name);
        log.info({ file: name }, 'manifest file removed');
      }
    }
    const changes = this.diff();
    if (changes.length > 0) {
      this.scans++;
      log.info({ changes: changes.length }, 'manifests changed');
      this.sink.apply(changes);
    }
  }

  private fileFailed(name: string, signature: string, message: string): void {
    const prev = this.files.get(name);
    // Logged once per version of the file; its previous objects stay in force.
    this.files.set(name, { signature, objects: prev?.objects ?? new Map(), error: message });
    this.options.logger.error(
      { file: name, kept: prev?.objects.size ?? 0, error: message },
      'manifest file is invalid; keeping its previous objects',
    );
  }

  /** Errors of the files that currently fail to load (status, tests). */
  fileErrors(): { file: string; error: string }[] {
    return [...this.files]
      .filter(([, s]) => s.error !== undefined)
      .map(([file, s]) => ({ file, error: s.error! }));
  }

  private diff(): SourceChange[] {
    const next = new Map<string, Effective>();
    for (const [file, state] of [...this.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const [key, object] of state.objects) {
        const have = next.get(key);
        if (have) {
          if (this.current.get(key)?.file !== file)
            this.options.logger.warn({ object: key, file, winner: have.file }, 'object defined in two files');
          continue;
        }
        next.set(key, { object, json: JSON.stringify(object), file });
      }
    }
    const changes: SourceChange[] = [];
    for (const [key, prev] of this.current) {
      if (next.has(key)) continue;
      const o = prev.object;
      if (o.kind === 'Namespace') changes.push({ op: 'delete', kind: 'Namespace', name: o.namespace.name });
      else if (o.kind === 'Pod')
        changes.push({ op: 'delete', kind: 'Pod', namespace: o.pod.namespace, name: o.pod.name });
      else changes.push({ op: 'delete', kind: 'Policy', key });
    }
    for (const [key, eff] of next) {
      if (this.current.get(key)?.json === eff.json) continue;
      changes.push({ op: 'upsert', ...eff.object } as SourceChange);
    }
    this.current = next;
    return changes;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.scan(), this.debounceMs);
  }
}
