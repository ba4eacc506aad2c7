#!/usr/bin/env node
// A test stand-in for flannel's CNI plugin (github.com/flannel-io/cni-plugin, flannel.go and
// flannel_linux.go), which Debian does not package. It does what that plugin does, step for step:
//
// ADD  reads the subnet file (`subnetFile`, default /run/flannel/subnet.env: FLANNEL_NETWORK,
//      FLANNEL_SUBNET, FLANNEL_IPV6_NETWORK, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ), builds
//      the delegate config from `delegate` (type bridge by default; name = the network's name;
//      ipMasq = !FLANNEL_IPMASQ unless set, since flannel masquerades itself when FLANNEL_IPMASQ is
//      true; mtu = FLANNEL_MTU unless set; isGateway true for bridge unless set; the conf's
//      cniVersion; runtimeConfig passed on; ipam = the conf's `ipam` (type host-local by default)
//      with ranges [[{subnet: FLANNEL_SUBNET}], [{subnet: FLANNEL_IPV6_SUBNET}]] and routes = the
//      ipam's routes + FLANNEL_NETWORK (+ FLANNEL_IPV6_NETWORK)), saves it as
//      <dataDir>/<containerID> (`dataDir`, default /var/lib/cni/flannel) and delegates ADD to the
//      delegate's type found in CNI_PATH, printing its result.
// DEL  reads the saved config (none: success, the spec says DEL ignores what is already gone),
//      delegates DEL with it and removes the file only when that succeeded.
// CHECK does nothing (flannel's cmdCheck is a TODO that returns nil).
// Errors are printed the way skel does: a delegate's error object as it is, anything else as code 999.
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const SUPPORTED = ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0'];
const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
const DEFAULT_DATA_DIR = '/var/lib/cni/flannel';

class PluginError extends Error {
  constructor(code, msg, details) {
    super(msg);
    this.code = code;
    this.details = details;
  }
}

/** A delegate's own error object, printed unchanged (skel does not wrap a types.Error). */
class DelegateError extends Error {
  constructor(json) {
    super(json.msg ?? 'delegate failed');
    this.json = json;
  }
}

function readStdin() {
  try {
    return readFileSync(0);
  } catch {
    return Buffer.alloc(0);
  }
}

/** Go's json.Marshal of a map: keys sorted, recursively. */
function sortedJson(v) {
  const sort = (x) => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object') {
      const o = {};
      for (const k of Object.keys(x).sort()) o[k] = sort(x[k]);
      return o;
    }
    return x;
  };
  return JSON.stringify(sort(v));
}

function parseCidr(s, key, file) {
  const m = /^([0-9a-fA-F.:]+)\/(\d{1,3})$/.exec(s);
  if (!m) throw new PluginError(999, `invalid CIDR address: ${s}`, `${key} in ${file}`);
  return masked(m[1], Number(m[2]));
}

/** net.ParseCIDR's network: the address with the host bits cleared. */
function masked(ip, prefix) {
  if (!ip.includes(':')) {
    const n = ip.split('.').map(Number);
    if (n.length !== 4 || n.some((x) => !(x >= 0 && x <= 255)) || prefix > 32)
      throw new PluginError(999, `invalid CIDR address: ${ip}/${prefix}`);
    const v = ((n[0] << 24) | (n[1] << 16) | (n[2] << 8) | n[3]) >>> 0;
    const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    const w = (v & m) >>> 0;
    return `${w >>> 24}.${(w >>> 16) & 255}.${(w >>> 8) & 255}.${w & 255}/${prefix}`;
  }
  if (prefix > 128) throw new PluginError(999, `invalid CIDR address: ${ip}/${prefix}`);
  const [head, tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  let bits = groups.map((g) => parseInt(g, 16).toString(2).padStart(16, '0')).join('');
  bits = bits.slice(0, prefix).padEnd(128, '0');
  const out = [];
  for (let i = 0; i < 8; i++) out.push(parseInt(bits.slice(i * 16, i * 16 + 16), 2).toString(16));
  // Compress the longest run of zero groups, as Go prints it.
  let best = [-1, 0];
  for (let i = 0; i < 8; ) {
    if (out[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && out[j] === '0') j++;
    if (j - i > best[1] && j - i > 1) best = [i, j - i];
    i = j;
  }
  const text =
    best[0] < 0 ? out.join(':') : `${out.slice(0, best[0]).join(':')}::${out.slice(best[0] + best[1]).join(':')}`;
  return `${text}/${prefix}`;
}

export function loadSubnetEnv(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PluginError(999, `open ${file}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  }
  const se = { nws: [], ip6Nws: [] };
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    const key = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1);
    switch (key) {
      case 'FLANNEL_NETWORK':
        se.nws = value.split(',').map((c) => parseCidr(c, key, file));
        break;
      case 'FLANNEL_SUBNET':
        se.sn = parseCidr(value, key, file);
        break;
      case 'FLANNEL_IPV6_NETWORK':
        se.ip6Nws = value.split(',').map((c) => parseCidr(c, key, file));
        break;
      case 'FLANNEL_IPV6_SUBNET':
        se.ip6Sn = parseCidr(value, key, file);
        break;
      case 'FLANNEL_MTU':
        if (!/^\d+$/.test(value)) throw new PluginError(999, `strconv.ParseUint: parsing "${value}": invalid syntax`);
        se.mtu = Number(value);
        break;
      case 'FLANNEL_IPMASQ':
        se.ipmasq = value === 'true';
        break;
    }
  }
  const missing = [];
  if (se.nws.length === 0 && se.ip6Nws.length === 0) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (!se.sn && !se.ip6Sn) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (se.mtu === undefined) missing.push('FLANNEL_MTU');
  if (se.ipmasq === undefined) missing.push('FLANNEL_IPMASQ');
  if (missing.length) throw new PluginError(999, `${file} is missing ${missing.join(', ')}`);
  return se;
}

function loadNetConf(bytes) {
  let n;
  try {
    n = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new PluginError(999, `failed to load netconf: ${err.message}`);
  }
  if (!n || typeof n !== 'object' || Array.isArray(n)) throw new PluginError(999, 'failed to load netconf: not an object');
  return { subnetFile: DEFAULT_SUBNET_FILE, dataDir: DEFAULT_DATA_DIR, ...n };
}

function checkVersion(n) {
  const v = n.cniVersion ?? '0.1.0';
  if (!SUPPORTED.includes(v))
    throw new PluginError(1, 'incompatible CNI versions', `config is "${v}", plugin supports ${JSON.stringify(SUPPORTED)}`);
}

export function delegateConf(n, se) {
  const d = n.delegate === undefined || n.delegate === null ? {} : { ...n.delegate };
  if ('type' in d && typeof d.type !== 'string')
    throw new PluginError(999, "'delegate' dictionary, if present, must have (string) 'type' field");
  if ('name' in d) throw new PluginError(999, "'delegate' dictionary must not have 'name' field, it'll be set by flannel");
  if ('ipam' in d) throw new PluginError(999, "'delegate' dictionary must not have 'ipam' field, it'll be set by flannel");
  if (n.runtimeConfig !== undefined && n.runtimeConfig !== null) d.runtimeConfig = n.runtimeConfig;
  d.name = n.name;
  if (!('type' in d)) d.type = 'bridge';
  if (!('ipMasq' in d)) d.ipMasq = !se.ipmasq; // flannel masquerades itself when FLANNEL_IPMASQ=true
  if (!('mtu' in d)) d.mtu = se.mtu;
  if (d.type === 'bridge' && !('isGateway' in d)) d.isGateway = true;
  if (n.cniVersion) d.cniVersion = n.cniVersion;
  const ipam = n.ipam && typeof n.ipam === 'object' ? { ...n.ipam } : {};
  if (!('type' in ipam)) ipam.type = 'host-local';
  const ranges = [];
  if (se.sn) ranges.push([{ subnet: se.sn }]);
  if (se.ip6Sn) ranges.push([{ subnet: se.ip6Sn }]);
  ipam.ranges = ranges;
  const routes = Array.isArray(ipam.routes) ? [...ipam.routes] : [];
  for (const nw of se.nws) routes.push({ dst: nw });
  for (const nw of se.ip6Nws) routes.push({ dst: nw });
  ipam.routes = routes;
  d.ipam = ipam;
  return d;
}

function findInPath(type) {
  if (!type || type.includes('/')) throw new PluginError(999, `invalid plugin name: ${type}`);
  for (const dir of (process.env.CNI_PATH ?? '').split(':').filter(Boolean)) {
    const p = join(dir, type);
    try {
      if (statSync(p).isFile()) {
        accessSync(p, constants.X_OK);
        return p;
      }
    } catch {
      /* keep looking */
    }
  }
  throw new PluginError(999, `failed to find plugin "${type}" in path [${process.env.CNI_PATH ?? ''}]`);
}

/** invoke.DelegateAdd/DelegateDel: the same environment with CNI_COMMAND set, the conf on stdin. */
function delegate(command, type, bytes) {
  const r = spawnSync(findInPath(type), [], {
    input: bytes,
    env: { ...process.env, CNI_COMMAND: command },
    stdio: ['pipe', 'pipe', 'inherit'],
    maxBuffer: 4 << 20,
  });
  if (r.error) throw new PluginError(999, `failed to delegate ${command.toLowerCase()}: ${r.error.message}`);
  const out = r.stdout.toString('utf8');
  if (r.status !== 0) {
    let json;
    try {
      json = JSON.parse(out);
    } catch {
      throw new PluginError(999, `netplugin failed: "${out.trim()}"`);
    }
    throw new DelegateError(json);
  }
  return out;
}

function cmdAdd(bytes) {
  const n = loadNetConf(bytes);
  checkVersion(n);
  const se = loadSubnetEnv(n.subnetFile);
  const conf = delegateConf(n, se);
  const confBytes = sortedJson(conf);
  mkdirSync(n.dataDir, { recursive: true, mode: 0o700 });
  writeFileSync(join(n.dataDir, process.env.CNI_CONTAINERID ?? ''), confBytes, { mode: 0o600 });
  const out = delegate('ADD', conf.type, confBytes);
  process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
}

function cmdDel(bytes) {
  const n = loadNetConf(bytes);
  checkVersion(n);
  const path = join(n.dataDir, process.env.CNI_CONTAINERID ?? '');
  let saved;
  try {
    saved = readFileSync(path);
  } catch (err) {
    if (err.code === 'ENOENT') return; // per spec: what is already gone is not an error
    throw new PluginError(999, err.message);
  }
  let type;
  try {
    type = JSON.parse(saved.toString('utf8')).type;
  } catch (err) {
    throw new PluginError(999, `failed to parse netconf: ${err.message}`);
  }
  delegate('DEL', type, saved);
  rmSync(path, { force: true }); // only after the delegate succeeded
}

function main() {
  const command = process.env.CNI_COMMAND;
  const stdin = readStdin();
  let version = '1.0.0';
  try {
    version = JSON.parse(stdin.toString('utf8')).cniVersion ?? version;
  } catch {
    /* VERSION needs no input */
  }
  try {
    switch (command) {
      case 'VERSION':
        process.stdout.write(`${JSON.stringify({ cniVersion: SUPPORTED.includes(version) ? version : '1.0.0', supportedVersions: SUPPORTED })}\n`);
        return;
      case 'ADD':
        return cmdAdd(stdin);
      case 'DEL':
        return cmdDel(stdin);
      case 'CHECK':
        checkVersion(loadNetConf(stdin));
        return;
      default:
        throw new PluginError(4, `unknown CNI_COMMAND: ${command ?? ''}`);
    }
  } catch (err) {
    const json =
      err instanceof DelegateError
        ? err.json
        : {
            cniVersion: version,
            code: err instanceof PluginError ? err.code : 999,
            msg: err.message,
            ...(err.details ? { details: err.details } : {}),
          };
    process.stdout.write(`${JSON.stringify(json)}\n`);
    process.exitCode = 1;
  }
}

// Run as a plugin (also through a link named `flannel`); imported by tests, only the helpers.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) main();
