import { CniError, CNI_ERR_INCOMPATIBLE_VERSION } from './errors';

/** Every CNI spec version this library reads and writes, oldest first. 0.1.0/0.2.0 are refused. */
export const CNI_SPEC_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof CNI_SPEC_VERSIONS)[number];
/** The newest version we implement; used when nothing else says which version to speak. */
export const CNI_LATEST_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(version: unknown): version is CniVersion {
  return typeof version === 'string' && (CNI_SPEC_VERSIONS as readonly string[]).includes(version);
}

function parts(version: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!m) throw new CniError(CNI_ERR_INCOMPATIBLE_VERSION, `invalid CNI version "${version}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/** Semver-style comparison of two x.y.z versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function versionAtLeast(version: string, minimum: string): boolean {
  return compareVersions(version, minimum) >= 0;
}

/** Throws error 1 unless `version` is one we support. */
export function assertSupportedVersion(version: unknown, what = 'cniVersion'): CniVersion {
  if (isSupportedVersion(version)) return version;
  throw new CniError(
    CNI_ERR_INCOMPATIBLE_VERSION,
    `incompatible CNI version: ${what} ${JSON.stringify(version)} is not supported`,
    `supported versions: ${CNI_SPEC_VERSIONS.join(', ')}`,
  );
}

/**
 * The highest version present in both lists (spec 1.1.0 `cniVersions`: pick the highest that
 * both sides support). Returns undefined when there is none; malformed entries are skipped.
 */
export function highestCommonVersion(
  offered: readonly string[],
  supported: readonly string[] = CNI_SPEC_VERSIONS,
): string | undefined {
  let best: string | undefined;
  for (const v of offered) {
    if (!supported.includes(v) || !/^\d+\.\d+\.\d+$/.test(v)) continue;
    if (best === undefined || compareVersions(v, best) > 0) best = v;
  }
  return best;
}
