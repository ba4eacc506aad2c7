# SCTP servers and probes for the netpol e2e where the kernel has SCTP (Node has no SCTP sockets).
#   sctp-helper.py serve NAME PORT...        echo servers (one-to-one style), forever
#   sctp-helper.py probe HOST PORT TIMEOUT_S  exit 0 if the server answered
import socket
import sys
import threading


def serve(name, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(("hello from %s:%d" % (name, port)).encode())
        finally:
            c.close()


def main():
    if sys.argv[1] == "serve":
        name = sys.argv[2]
        for p in sys.argv[3:]:
            threading.Thread(target=serve, args=(name, int(p)), daemon=True).start()
        print("ready", flush=True)
        threading.Event().wait()
    host, port, timeout = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        data = s.recv(100)
        sys.exit(0 if data else 1)
    except OSError:
        sys.exit(1)


main()
