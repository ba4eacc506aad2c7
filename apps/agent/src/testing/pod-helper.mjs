// Runs inside a test pod's netns: serves TCP (greets, then closes) and UDP (echoes) on the ports
// given, a TCP "stream" port that writes until the peer goes away, and runs probes sent as JSON
// lines on stdin, answering JSON lines on stdout. Probes run concurrently.
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';

const [name = 'pod', tcpList = '80,81', udpList = '80,81', streamPortText = '0'] = process.argv.slice(2);
const ports = (s) => s.split(',').filter(Boolean).map(Number);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const listeners = [];
for (const port of ports(tcpList)) {
  listeners.push(
    new Promise((resolve) =>
      net
        .createServer((s) => {
          s.on('error', () => {}); // a prober that timed out resets the connection: not the server's problem
          s.end(`hello from ${name}:${port}`);
        })
        .listen({ port, host: '0.0.0.0' }, resolve),
    ),
  );
}
for (const port of ports(udpList)) {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) =>
    sock.send(Buffer.concat([Buffer.from(`${name}:`), msg]), rinfo.port, rinfo.address),
  );
  listeners.push(new Promise((resolve) => sock.bind(port, '0.0.0.0', resolve)));
}
const streamPort = Number(streamPortText);
if (streamPort > 0) {
  const chunk = Buffer.alloc(1024, 'x');
  listeners.push(
    new Promise((resolve) =>
      net
        .createServer((s) => {
          const t = setInterval(() => s.write(chunk), 10);
          s.on('close', () => clearInterval(t));
          s.on('error', () => clearInterval(t));
        })
        .listen({ port: streamPort, host: '0.0.0.0' }, resolve),
    ),
  );
}
Promise.all(listeners).then(() => out({ ready: true }));

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
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve({ ok: false, error: 'timeout' });
    }, timeoutMs);
    s.on('message', (msg) => {
      clearTimeout(t);
      s.close();
      resolve({ ok: true, data: msg.toString() });
    });
    s.on('error', (e) => {
      clearTimeout(t);
      s.close();
      resolve({ ok: false, error: e.code ?? String(e) });
    });
    s.send(`ping from ${name}`, port, host);
  });
}

// Long-lived client connections: "stream" opens one, "stream-stat" reports bytes and errors.
const streams = new Map();
function streamOpen({ host, port, timeoutMs, stream }) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const st = { bytes: 0, error: undefined, closed: false, socket: s };
    streams.set(stream, st);
    const t = setTimeout(() => resolve({ ok: false, error: 'timeout' }), timeoutMs);
    s.on('connect', () => {
      clearTimeout(t);
      resolve({ ok: true });
    });
    s.on('data', (d) => (st.bytes += d.length));
    s.on('error', (e) => (st.error = e.code ?? String(e)));
    s.on('close', () => (st.closed = true));
  });
}

async function run(req) {
  if (req.op === 'udp') return udpProbe(req);
  if (req.op === 'tcp') return tcpProbe(req);
  if (req.op === 'stream') return streamOpen(req);
  if (req.op === 'stream-stat') {
    const st = streams.get(req.stream);
    return st
      ? { ok: !st.error && !st.closed, bytes: st.bytes, error: st.error, closed: st.closed }
      : { ok: false, error: 'no such stream' };
  }
  if (req.op === 'stream-close') {
    streams.get(req.stream)?.socket.destroy();
    streams.delete(req.stream);
    return { ok: true };
  }
  return { ok: false, error: `unknown op ${req.op}` };
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const req = JSON.parse(line);
  run(req).then((res) => out({ id: req.id, ...res }));
});
process.stdin.on('end', () => process.exit(0));
