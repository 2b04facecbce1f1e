#!/usr/bin/env python3
"""Dumps real Redis's COMMAND INFO and COMMAND DOCS (RESP3) into src/command/redis_commands.json.

The JSON keeps RESP3 types, so Strata can answer COMMAND INFO/DOCS byte for byte in both
protocols. Usage: start redis-server 7.0.x on a port, then
    python3 tools/gen_commands.py PORT > src/command/redis_commands.json
"""
import json, socket, sys

def read_reply(f):
    line = f.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b'+': return {"t": "simple", "v": rest.decode()}
    if kind == b'-': return {"t": "error", "v": rest.decode()}
    if kind == b':': return {"t": "int", "v": int(rest)}
    if kind == b'$':
        n = int(rest)
        if n < 0: return {"t": "null"}
        data = f.read(n + 2)[:-2]
        return {"t": "bulk", "v": data.decode()}
    if kind == b'_': return {"t": "null"}
    if kind in (b'*', b'~'):
        n = int(rest)
        return {"t": "array" if kind == b'*' else "set", "v": [read_reply(f) for _ in range(n)]}
    if kind == b'%':
        n = int(rest)
        return {"t": "map", "v": [[read_reply(f), read_reply(f)] for _ in range(n)]}
    raise ValueError(line)

def command(sock, f, *args):
    out = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in map(str.encode, args))
    sock.sendall(out)
    return read_reply(f)

sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = sock.makefile("rb")
command(sock, f, "HELLO", "3")
info = command(sock, f, "COMMAND", "INFO")
docs = command(sock, f, "COMMAND", "DOCS")
docs_by_name = {k["v"]: v for k, v in docs["v"]}
commands = []
for entry in info["v"]:
    name = entry["v"][0]["v"]
    commands.append({"name": name, "info": entry, "docs": docs_by_name.get(name)})
commands.sort(key=lambda c: c["name"])
json.dump(commands, sys.stdout, separators=(",", ":"))
