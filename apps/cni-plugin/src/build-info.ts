/** What was built: filled in by bundle.mjs (esbuild `define`); "dev" when run from sources. */
export interface BuildInfo {
  version: string;
  commit: string;
  builtAt: string;
}

declare const __WEFT_BUILD__: BuildInfo | undefined;

export const buildInfo: BuildInfo =
  typeof __WEFT_BUILD__ !== 'undefined'
    ? __WEFT_BUILD__
    : { version: 'dev', commit: 'unknown', builtAt: 'unknown' };
