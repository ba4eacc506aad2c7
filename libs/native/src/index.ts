import { loadAddon, seaFileGroup } from './load-addon';
import type { WeftNative } from './weft-native';

export type { NativeError, WeftNative } from './weft-native';
export { loadAddon, seaFileGroup };

/** The weft addon, loaded on first use (so commands that never touch the kernel never dlopen it). */
export function native(): WeftNative {
  return loadAddon<WeftNative>('weft_native');
}

export function isNativeError(err: unknown): err is import('./weft-native').NativeError {
  return err instanceof Error && typeof (err as { errno?: unknown }).errno === 'number' && typeof (err as { code?: unknown }).code === 'string';
}
