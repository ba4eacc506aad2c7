/**
 * A sysctl key as a path under /proc/sys. Dotted keys ("net.ipv4.ip_forward") are converted like
 * sysctl(8) does; keys with '/' are taken as paths, which is how to name an interface with a dot
 * in it ("net/ipv4/conf/eth0.100/rp_filter").
 */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key.replace(/^\/proc\/sys\//, '') : key.replaceAll('.', '/');
  const segments = rel.split('/');
  const valid =
    rel.length > 0 &&
    rel.length <= 256 &&
    /^[A-Za-z0-9_.\-/]+$/.test(rel) &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..');
  if (!valid) throw Object.assign(new Error(`invalid sysctl key ${JSON.stringify(key)}`), { code: 'EINVAL' });
  return rel;
}
