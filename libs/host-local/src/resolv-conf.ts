import { readFileSync } from 'node:fs';
import type { CniDns } from '@weft/cni';

/**
 * The DNS part of a result from a resolv.conf: nameserver lines, the last domain, search and
 * options lists. Comments (# or ;) and lines without a value are skipped, as the reference does.
 */
export function parseResolvConf(text: string): CniDns {
  const dns: CniDns = {};
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const [keyword, ...values] = line.split(/\s+/);
    if (values.length === 0) continue;
    switch (keyword) {
      case 'nameserver':
        (dns.nameservers ??= []).push(values[0]!);
        break;
      case 'domain':
        dns.domain = values[0]!;
        break;
      case 'search':
        (dns.search ??= []).push(...values);
        break;
      case 'options':
        (dns.options ??= []).push(...values);
        break;
    }
  }
  return dns;
}

export function readResolvConf(path: string): CniDns {
  return parseResolvConf(readFileSync(path, 'utf8'));
}
