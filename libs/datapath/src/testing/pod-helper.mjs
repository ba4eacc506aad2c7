// Runs inside a test pod's netns: serves TCP (greets, then closes) and UDP (echoes) on fixed ports,
// and runs probes sent as JSON lines on stdin, answering JSON lines on stdout.
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

const name = process.argv[2] ?? 'pod';
const TCP_PORTS = [80, 81, 8080];
const UDP_PORTS = [53, 54];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

let pending = TCP_PORTS.length + UDP_PORTS.length;
const listening = () => --pending === 0 && out({ ready: true });
for (const port of TCP_PORTS) {
  net
    .createServer((s) => s.end(`hello from ${name}:${port}`))
    .listen({ port, host: '::', ipv6Only: false }, listening);
}
for (const port of UDP_PORTS) {
  const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  sock.on('message', (msg, rinfo) =>
    sock.send(Buffer.concat([Buffer.from(`${name}:`), msg]), rinfo.port, rinfo.address),
  );
  sock.bind(port, '::', listening);
}

function tcpProbe({ host, port, timeoutMs }) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let data = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, error: 'timeout' });
    }, timeoutMs);
    s.on('data', (d) => (data += d));
    s.on('end', () => {
      clearTimeout(t);
      resolve({ ok: true, data });
    });
    s.on('error', (e) => {
      clearTimeout(t);
      resolve({ ok: false, error: e.code ?? String(e) });
    });
  });
}

function udpProbe({ host, port, timeoutMs }) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const t = setTimeout(() => {
      s.close();
      resolve({ ok: false, error: 'timeout' });
    }, timeoutMs);
    s.on('message', (msg) => {
      clearTimeout(t);
      s.close();
      resolve({ ok: true, data: msg.toString() });
    });
    s.send(`ping from ${name}`, port, host);
  });
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const req = JSON.parse(line);
  const res = req.op === 'udp' ? await udpProbe(req) : await tcpProbe(req);
  out({ id: req.id, ...res });
});
process.stdin.on('end', () => process.exit(0));
