"""An adversarial agent for the network tests: connects where it should not and says how it went.

``probe``: every ``host:port`` in NET_DIRECT straight over TCP, every one in NET_CONNECT
through ``HTTPS_PROXY`` with ``CONNECT`` (then one GET through the tunnel), every URL in
NET_GET through ``HTTP_PROXY`` as an absolute-URI request. One line per attempt:
``direct H:P: connected`` is a breach; ``... 403`` is the proxy refusing.

``swarm N HOST:PORT``: N connections at once through the proxy to an echo server; each
sends its own bytes, half-closes, and must read exactly them back before the server's EOF.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from urllib.parse import urlsplit

TIMEOUT_S = 10.0


def proxy() -> tuple[str, int]:
    """The proxy HTTPS_PROXY names (the bridge inside the sandbox)."""
    url = urlsplit(os.environ.get("HTTPS_PROXY", ""))
    if not url.hostname or not url.port:
        raise OSError("no HTTPS_PROXY")
    return url.hostname, url.port


def read_all(sock: socket.socket) -> bytes:
    """Everything until the peer's EOF."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def read_head(sock: socket.socket) -> str:
    """The status line of an answer, reading no further than its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def direct(target: str) -> str:
    host, _, port = target.rpartition(":")
    try:
        sock = socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT_S)
    except OSError as exc:
        return f"failed {type(exc).__name__}"
    with sock:
        # Connected is the breach; what the service says is only a hint of which it was.
        sock.settimeout(2)
        try:
            sock.sendall(b"PING\r\n")
            return f"connected {sock.recv(40)!r}"
        except OSError as exc:
            return f"connected, then {type(exc).__name__}"


def tunnel(target: str) -> str:
    try:
        with socket.create_connection(proxy(), timeout=TIMEOUT_S) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            status = read_head(sock)
            if " 200 " not in status:
                return status
            sock.sendall(f"GET /through-tunnel HTTP/1.0\r\nHost: {target}\r\n\r\n".encode())
            inside = read_all(sock).decode(errors="replace")
            return f"{status} | {inside.splitlines()[0] if inside else 'nothing'} | {inside[-40:]}"
    except OSError as exc:
        return f"failed {type(exc).__name__}"


def get(url: str) -> str:
    host = urlsplit(url).netloc
    try:
        with socket.create_connection(proxy(), timeout=TIMEOUT_S) as sock:
            request = f"GET {url} HTTP/1.1\r\nHost: {host}\r\nProxy-Connection: keep-alive\r\n\r\n"
            sock.sendall(request.encode())
            answer = read_all(sock).decode(errors="replace")
            return f"{answer.splitlines()[0] if answer else 'nothing'} | {answer[-40:]}"
    except OSError as exc:
        return f"failed {type(exc).__name__}"


def probe() -> int:
    """Try every attempt the NET_* variables list; print one line each."""
    for kind, attempt in (("direct", direct), ("connect", tunnel), ("get", get)):
        for target in filter(None, os.environ.get(f"NET_{kind.upper()}", "").split(",")):
            print(f"{kind} {target}: {attempt(target)}".replace("\n", " "), flush=True)
    print("PLAN: probed the network")
    return 0


def swarm(count: int, target: str) -> int:
    """``count`` echo tunnels at once, each half-closed; prints how many came back whole."""
    good: list[int] = []
    errors: list[str] = []
    start = threading.Barrier(count, timeout=30)

    def one(number: int) -> None:
        payload = f"{number}:".encode() * (2000 + number)
        try:
            start.wait()  # every thread ready: the connections open at once
            with socket.create_connection(proxy(), timeout=30) as sock:
                sock.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
                status = read_head(sock)
                if " 200 " not in status:
                    errors.append(status)
                    return
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)  # half-close: the echo must still come back
                back = read_all(sock)
                if back == payload:
                    good.append(number)
                else:
                    errors.append(f"wrong echo: {len(back)} of {len(payload)} bytes")
        except (OSError, threading.BrokenBarrierError) as exc:
            errors.append(f"{number}: {type(exc).__name__}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"swarm: {len(good)} of {count} echoed whole; errors: {sorted(set(errors))[:5]}")
    print("PLAN: swarm done")
    return 0


def main(argv: list[str]) -> int:
    """Run the mode argv names."""
    sys.stdin.read()
    if argv[:1] == ["probe"]:
        return probe()
    if argv[:1] == ["swarm"]:
        return swarm(int(argv[1]), argv[2])
    print(f"unknown mode {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
