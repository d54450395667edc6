#!/usr/bin/env python3
"""Memory of a server holding many idle keep-alive connections.

Opens N TCP connections to 127.0.0.1:PORT, sends one HTTP/1.1 keep-alive
request on each, reads each response completely (so every connection has
been accepted and has served a request), then holds them all idle. After
--settle seconds it sums VmRSS of --pid and all its descendants (nginx:
master + workers) and prints one line:

    rss_before_kib=… rss_held_kib=… connections=…

then closes everything and exits. Loopback only; bounded by --deadline.
"""

import argparse
import os
import resource
import selectors
import socket
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
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.conns + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.conns + 100:
        sys.exit(f"idle_conns: open-file limit {hard} is too low for {args.conns} connections")

    request = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               "Connection: keep-alive\r\n\r\n").encode()
    stop_at = time.monotonic() + args.deadline
    before = rss_kib(args.pid)
    held = []
    sel = selectors.DefaultSelector()
    failed = 0
    while len(held) + failed < args.conns:
        if time.monotonic() > stop_at:
            sys.exit(f"idle_conns: deadline passed with {len(held)} connections")
        batch = {}
        for _ in range(min(args.batch, args.conns - len(held) - failed)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(("127.0.0.1", args.port))
                s.sendall(request)
            except OSError:
                s.close()
                failed += 1
                continue
            s.setblocking(False)
            batch[s] = b""
            sel.register(s, selectors.EVENT_READ)
        while batch and time.monotonic() < stop_at:
            for key, _ in sel.select(timeout=1.0):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    del batch[s]
                    failed += 1
                    continue
                batch[s] += data
                if response_complete(batch[s]):
                    sel.unregister(s)
                    del batch[s]
                    held.append(s)
        for s in batch:
            sel.unregister(s)
            s.close()
            failed += 1
        if failed > args.conns // 100:
            sys.exit(f"idle_conns: {failed} connections failed (held {len(held)})")
    time.sleep(args.settle)
    held_rss = rss_kib(args.pid)
    # Are they still open? A server that dropped them would not be measured.
    alive = 0
    for s in held:
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print(f"rss_before_kib={before} rss_held_kib={held_rss} connections={alive}")
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
