#!/usr/bin/env python3
"""Memory of a server holding many idle keep-alive connections.

Opens N TCP connections to 127.0.0.1:PORT, sends one HTTP/1.1 keep-alive
request on each, reads each response completely (so every connection has
been accepted and has served a request), then holds them all idle. After
--settle seconds it sums VmRSS of --pid and all its descendants (nginx:
master + workers) and prints one line:

    rss_before_kib=… rss_held_kib=… connections=… open_seconds=…

then closes everything and exits (open_seconds: the time it took to open
them all). Loopback only; bounded by --deadline.

--tls: the same over HTTPS (for (h2)): each connection completes its TLS
handshake (python's ssl module, no certificate verification, SNI --sni
unless it is an IP address, no ALPN: HTTP/1.1), then sends its request and
reads the response, and stays open idle. Connections, handshakes and
requests of a batch progress together, non-blocking, so 10 000 handshakes
take seconds, not minutes.
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import ssl
import sys
import time


def descendants(root):
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def rss_kib(root):
    total = 0
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def response_complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return len(body) >= length


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="server process (descendants are included)")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--path", default="/small.txt")
    ap.add_argument("--batch", type=int, default=200, help="connections opened before their responses are read")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--deadline", type=float, default=90.0)
    ap.add_argument("--tls", action="store_true", help="HTTPS: TLS handshake first")
    ap.add_argument("--sni", default="", help="TLS server name (not sent if an IP address)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.conns + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.conns + 100:
        sys.exit(f"idle_conns: open-file limit {hard} is too low for {args.conns} connections")

    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               "Connection: keep-alive\r\n\r\n").encode()
    ctx = None
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    stop_at = time.monotonic() + args.deadline
    before = rss_kib(args.pid)
    held = []
    sel = selectors.DefaultSelector()
    failed = 0
    handshake_s = 0.0

    # Per connection: [phase, bytes still to send, bytes received];
    # phase: "connect" → ("handshake" →) "send" → "recv" → held.
    def step(s, st):
        """Advances s as far as it can; returns the events it waits for,
        0 when its response is complete, None when it failed."""
        while True:
            phase = st[0]
            try:
                if phase == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        return None
                    st[0] = "handshake" if ctx else "send"
                elif phase == "handshake":
                    s.do_handshake()
                    st[0] = "send"
                elif phase == "send":
                    n = s.send(st[1])
                    st[1] = st[1][n:]
                    if not st[1]:
                        st[0] = "recv"
                else:
                    data = s.recv(65536)
                    if not data:
                        return None
                    st[2] += data
                    if response_complete(st[2]):
                        return 0
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            except BlockingIOError:
                return selectors.EVENT_WRITE if phase == "send" else selectors.EVENT_READ
            except (OSError, ValueError):
                return None

    while len(held) + failed < args.conns:
        if time.monotonic() > stop_at:
            sys.exit(f"idle_conns: deadline passed with {len(held)} connections")
        t0 = time.monotonic()
        batch = {}
        for _ in range(min(args.batch, args.conns - len(held) - failed)):
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setblocking(False)
            rc = raw.connect_ex(("127.0.0.1", args.port))
            if rc not in (0, errno.EINPROGRESS):
                raw.close()
                failed += 1
                continue
            s = raw
            if ctx:
                s = ctx.wrap_socket(raw, server_side=False, do_handshake_on_connect=False,
                                    server_hostname=args.sni or None)
            batch[s] = ["connect", request, b""]
            sel.register(s, selectors.EVENT_WRITE)

        def settle(s, events):
            nonlocal failed
            if events is None or events == 0:
                sel.unregister(s)
                del batch[s]
                if events is None:
                    s.close()
                    failed += 1
                else:
                    held.append(s)
            else:
                sel.modify(s, events)

        while batch and time.monotonic() < stop_at:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                settle(s, step(s, batch[s]))
            # a TLS socket may hold decrypted bytes that select can't see
            if ctx:
                for s in [s for s in batch if s.pending()]:
                    settle(s, step(s, batch[s]))
        for s in batch:
            sel.unregister(s)
            s.close()
            failed += 1
        handshake_s += time.monotonic() - t0
        if failed > args.conns // 100:
            sys.exit(f"idle_conns: {failed} connections failed (held {len(held)})")
    time.sleep(args.settle)
    held_rss = rss_kib(args.pid)
    # Are they still open? A server that dropped them would not be measured.
    # (A TLS 1.3 server's session tickets may still be unread: recv reads
    # them and then wants more.)
    alive = 0
    for s in held:
        try:
            alive += s.recv(1) != b""
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            alive += 1
        except (OSError, ValueError):
            pass
    print(f"rss_before_kib={before} rss_held_kib={held_rss} connections={alive} "
          f"open_seconds={handshake_s:.1f}")
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
