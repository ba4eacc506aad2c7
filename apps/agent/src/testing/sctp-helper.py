# SCTP for the netpol e2e pods where the kernel has SCTP (Node has no SCTP sockets). Runs inside a
# pod's netns, like pod-helper.mjs: serves SCTP (greets, then closes) on the ports given and runs
# probes sent as JSON lines on stdin ({"id", "host", "port", "timeoutMs"}), answering JSON lines
# on stdout ({"id", "ok", "error"}). Probes run concurrently, one thread each.
#   sctp-helper.py NAME PORT...
import json
import socket
import sys
import threading

out_lock = threading.Lock()


def out(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def serve(sock, name, port):
    while True:
        c, _ = sock.accept()
        try:
            c.sendall(("hello from %s:%d" % (name, port)).encode())
        except OSError:
            pass  # the prober gave up: not the server's problem
        finally:
            c.close()


def probe(req):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.settimeout(req["timeoutMs"] / 1000.0)
    try:
        s.connect((req["host"], req["port"]))
        data = s.recv(100)
        out({"id": req["id"], "ok": bool(data), "data": data.decode(errors="replace")})
    except OSError as e:
        out({"id": req["id"], "ok": False, "error": type(e).__name__ + ": " + str(e)})
    finally:
        s.close()


def main():
    name = sys.argv[1]
    for p in sys.argv[2:]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(p)))
        s.listen(128)
        threading.Thread(target=serve, args=(s, name, int(p)), daemon=True).start()
    out({"ready": True})
    for line in sys.stdin:
        if line.strip():
            threading.Thread(target=probe, args=(json.loads(line),), daemon=True).start()


main()
