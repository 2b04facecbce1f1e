#!/usr/bin/env python3
"""Data for benches/tiering.sh: writes the RESP to load N values, or checks them back.

  tiering_data.py load N SIZE         RESP for SET key:%012d <value> on stdout (for redis-cli --pipe)
  tiering_data.py check PORT N SIZE   reads every key back; prints "ok N" or the first mismatches
  tiering_data.py evict-fadvise DIR   drops the page cache of the files under DIR (unprivileged)

Keys are named as redis-benchmark's `-r` names them (key:000000012345), so its GET runs hit
them. A value is its key's number, then filler, SIZE bytes in all: any mix-up is detected.
"""
import os
import sys


def value(i, size):
    head = b"v%d:" % i
    return head + b"x" * (size - len(head))


def load(n, size):
    out = sys.stdout.buffer
    chunk = []
    for i in range(n):
        key = b"key:%012d" % i
        v = value(i, size)
        chunk.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(v), v))
        if len(chunk) == 1000:
            out.write(b"".join(chunk))
            chunk = []
    out.write(b"".join(chunk))
    out.flush()


class Resp:
    """A minimal RESP2 client on a plain socket (the bench needs nothing from pip)."""

    def __init__(self, port):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def command(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            arg = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        self.sock.sendall(b"".join(out))
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buf += data

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            while len(self.buf) < length + 2:
                self.fill()
            data, self.buf = self.buf[:length], self.buf[length + 2 :]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        if kind == b"-":
            raise RuntimeError(rest.decode(errors="replace"))
        return rest


def check(port, n, size):
    client = Resp(port)
    bad = 0
    missing = 0
    batch = 1000
    for start in range(0, n, batch):
        keys = [b"key:%012d" % i for i in range(start, min(n, start + batch))]
        for i, got in zip(range(start, start + len(keys)), client.command(b"MGET", *keys)):
            if got is None:
                missing += 1
            elif got != value(i, size):
                bad += 1
                if bad <= 5:
                    print("mismatch at key:%012d" % i, file=sys.stderr)
    print("checked %d keys: %d missing, %d wrong" % (n, missing, bad))
    return 0 if bad == 0 and missing == 0 else 1


def evict_fadvise(directory):
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "load":
        load(int(sys.argv[2]), int(sys.argv[3]))
    elif what == "check":
        sys.exit(check(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
    elif what == "evict-fadvise":
        evict_fadvise(sys.argv[2])
