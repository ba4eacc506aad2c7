import { existsSync, unlinkSync } from 'node:fs';
import { native } from '@weft/native';
import { BpfMap } from './bpf-map';
import type { Codec } from './codec';

/** A loaded BPF program, or one opened from its pin. */
export class BpfProgram {
  constructor(
    readonly name: string,
    readonly fd: number,
    private readonly ownsFd: boolean,
  ) {}

  static openPinned(path: string): BpfProgram {
    return new BpfProgram(path.split('/').pop() ?? path, native().bpfObjGet(path), true);
  }

  /** Pins the program at `path`, replacing an older pin there. */
  pin(path: string): void {
    if (existsSync(path)) unlinkSync(path);
    native().bpfObjPin(this.fd, path);
  }

  info(): { id: number; name: string; type: number; tag: string } {
    return native().bpfProgInfo(this.fd);
  }

  close(): void {
    if (this.ownsFd) native().bpfClose(this.fd);
  }
}

export interface BpfObjectMapInfo {
  name: string;
  fd: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** Where libbpf pinned (or found) it, for LIBBPF_PIN_BY_NAME maps. */
  pinPath?: string;
}

/**
 * A BPF ELF object loaded into the kernel. Maps declared with LIBBPF_PIN_BY_NAME are pinned under
 * `pinRoot` or reused from there, so several objects (and restarts) share them.
 */
export class BpfObject {
  readonly programs: ReadonlyMap<string, BpfProgram>;
  readonly maps: ReadonlyMap<string, BpfObjectMapInfo>;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly handle: number,
    programs: BpfProgram[],
    maps: BpfObjectMapInfo[],
  ) {
    this.programs = new Map(programs.map((p) => [p.name, p]));
    this.maps = new Map(maps.map((m) => [m.name, m]));
  }

  static load(path: string, opts: { pinRoot?: string } = {}): BpfObject {
    const loaded = native().bpfObjectLoad(path, opts);
    return new BpfObject(
      path,
      loaded.handle,
      loaded.programs.map((p) => new BpfProgram(p.name, p.fd, false)),
      loaded.maps,
    );
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (!p)
      throw new Error(`${this.path} has no program ${name} (has ${[...this.programs.keys()].join(', ')})`);
    return p;
  }

  /** A typed view of one of the object's maps; valid until close(). */
  map<K, V>(name: string, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V> {
    const m = this.maps.get(name);
    if (!m) throw new Error(`${this.path} has no map ${name}`);
    return BpfMap.fromFd(m.fd, keyCodec, valueCodec);
  }

  /** Closes the object's fds. Pinned maps and programs, and attached programs, stay in the kernel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().bpfObjectClose(this.handle);
  }
}
