/**
 * The whole surface of the weft native addon (libs/native/csrc). It only makes syscalls;
 * every error it throws is a NativeError.
 */
export interface NativeError extends Error {
  /** Negative errno, like Node's system errors. */
  errno: number;
  /** Symbolic errno name, e.g. "ENOENT". */
  code: string;
  syscall: string;
  path?: string;
}

export interface WeftNative {
  // --- netns (csrc/netns.cc) ---
  // --- bpf (csrc/bpf.cc) ---
  // --- fs (csrc/fs.cc): file locks etc. ---
}
