#!/usr/bin/env python3
"""Helpers for bench/run (standard library only, plus the openssl command for `assertion`).

    client.py ports N                      print N free loopback TCP ports
    client.py walk URL TOKENS [-c C]       GET URL once per token in the file (keep-alive, C connections);
                                           prints JSON: statuses, errors, elapsed
    client.py burst URL TOKEN [-n N]       open N connections, then send one GET with the same token on each at
                                           once; prints JSON: statuses, errors, elapsed
    client.py rusage CMD [ARGS...]         run CMD, pass its output through, then print "RUSAGE cpu_s=<user+sys>"
                                           (wrk's own CPU time, so that runs can be compared per request)
    client.py assertion KEY_JSON ISSUER    print an RS256 client assertion (ZITADEL JWT profile) for KEY_JSON, valid
                                           for 10 minutes: lets the benchmark call the IdP double's introspection
                                           endpoint directly
"""

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from urllib.parse import urlsplit


def summary(statuses, errors, skip_ok=False):
    """`200:998 503:2, errors TimeoutError:1`, for the table."""
    parts = [f"{k}:{v}" for k, v in sorted(statuses.items()) if not (skip_ok and k == 200)]
    text = " ".join(parts)
    if errors:
        text += (", " if text else "") + "errors " + " ".join(f"{k}:{v}" for k, v in sorted(errors.items()))
    return text


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def target(url):
    u = urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def request_bytes(host, port, path, token):
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


async def read_response(reader):
    """Status of one HTTP/1.1 response; the body (Content-Length framed, as actix answers) is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def walk(url, tokens, concurrency, timeout):
    host, port, path = target(url)
    statuses = Counter()
    errors = Counter()
    bad = []
    it = iter(enumerate(tokens))

    async def connection():
        reader = writer = None
        for i, tok in it:
            for attempt in (1, 2):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    writer.write(request_bytes(host, port, path, tok))
                    status = await asyncio.wait_for(read_response(reader), timeout)
                    statuses[status] += 1
                    if status != 200 and len(bad) < 5:
                        bad.append({"index": i, "status": status})
                    break
                except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt == 2:
                        errors[type(e).__name__] += 1
                        if len(bad) < 5:
                            bad.append({"index": i, "error": repr(e)})
        if writer is not None:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    return {
        "sent": len(tokens),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ok": statuses.get(200, 0),
        "errors": dict(errors),
        "summary": summary(statuses, errors),
        "failures": summary(statuses, errors, skip_ok=True),
        "first_failures": bad,
        "elapsed_s": round(elapsed, 3),
        "per_s": round(len(tokens) / elapsed, 1) if elapsed > 0 else None,
    }


async def burst(url, token, n, timeout):
    host, port, path = target(url)
    errors = Counter()
    statuses = Counter()
    req = request_bytes(host, port, path, token)

    async def connect():
        try:
            return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, asyncio.TimeoutError) as e:
            errors["connect:" + type(e).__name__] += 1
            return None

    # Every connection is open before the first request leaves, so the requests arrive together.
    conns = [c for c in await asyncio.gather(*(connect() for _ in range(n))) if c]
    start = time.monotonic()
    for _, w in conns:
        w.write(req)

    async def answer(reader, writer):
        try:
            statuses[await asyncio.wait_for(read_response(reader), timeout)] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
            errors[type(e).__name__] += 1
        finally:
            writer.close()

    await asyncio.gather(*(answer(r, w) for r, w in conns))
    elapsed = time.monotonic() - start
    return {
        "requests": n,
        "connected": len(conns),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ok": statuses.get(200, 0),
        "errors": dict(errors),
        "summary": summary(statuses, errors),
        "elapsed_s": round(elapsed, 3),
    }


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(key_json, issuer):
    key = json.load(open(key_json))
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": key["keyId"]}
    claims = {
        "iss": key["clientId"],
        "sub": key["clientId"],
        "aud": issuer,
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
    }
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(key["key"])
        pem = f.name
    try:
        os.chmod(pem, 0o600)
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", pem], input=signing_input, capture_output=True, check=True
        ).stdout
    finally:
        os.unlink(pem)
    return signing_input.decode() + "." + b64url(sig)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ports")
    a.add_argument("n", type=int)
    a = sub.add_parser("walk")
    a.add_argument("url")
    a.add_argument("tokens")
    a.add_argument("-c", "--concurrency", type=int, default=32)
    a.add_argument("--timeout", type=float, default=30)
    a = sub.add_parser("burst")
    a.add_argument("url")
    a.add_argument("token")
    a.add_argument("-n", type=int, default=1000)
    a.add_argument("--timeout", type=float, default=30)
    a = sub.add_parser("rusage")
    a.add_argument("command", nargs=argparse.REMAINDER)
    a = sub.add_parser("assertion")
    a.add_argument("key_json")
    a.add_argument("issuer")
    args = p.parse_args()

    if args.cmd == "ports":
        print(" ".join(map(str, free_ports(args.n))))
    elif args.cmd == "walk":
        tokens = [t for t in open(args.tokens).read().split() if t]
        print(json.dumps(asyncio.run(walk(args.url, tokens, args.concurrency, args.timeout))))
    elif args.cmd == "burst":
        print(json.dumps(asyncio.run(burst(args.url, args.token, args.n, args.timeout))))
    elif args.cmd == "rusage":
        sys.stdout.flush()
        pid = os.fork() if args.command else -1
        if pid == 0:
            try:
                os.execvp(args.command[0], args.command)
            finally:
                os._exit(127)
        if pid < 0:
            print("rusage: no command", file=sys.stderr)
            return 2
        _, status, usage = os.wait4(pid, 0)
        print(f"RUSAGE cpu_s={usage.ru_utime + usage.ru_stime:.3f}", flush=True)
        return os.waitstatus_to_exitcode(status)
    elif args.cmd == "assertion":
        print(assertion(args.key_json, args.issuer))


if __name__ == "__main__":
    sys.exit(main())
