"""A loopback reverse proxy that adds `X-Forwarded-For`, as Tailscale Serve does (docs/host-facts.md §5):
the gateway then treats a client as remote and asks it to pair.

    python3 xff_proxy.py LISTEN_PORT TARGET_PORT CLIENT_IP [HOST]

Copies each connection's request head with the header added, then bytes both ways (so a
websocket upgrade passes through). With HOST, the request's `Host` header becomes HOST, as Serve
passes on the node's name (`<host>.<tailnet>.ts.net`): openclaw 2026.9.x checks a browser's
`Origin` against it (docs/host-facts.md §8). For the e2e tests only.
"""

import contextlib
import socket
import sys
import threading


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def handle(client: socket.socket, target: int, client_ip: str, host: str | None) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(65536)
        if not data:
            client.close()
            return
        head += data
    first, rest = head.split(b"\r\n", 1)
    if host is not None:
        lines = [ln for ln in rest.split(b"\r\n") if not ln.lower().startswith(b"host:")]
        rest = b"\r\n".join([b"Host: " + host.encode(), *lines])
    upstream = socket.create_connection(("127.0.0.1", target))
    upstream.sendall(first + b"\r\nX-Forwarded-For: " + client_ip.encode() + b"\r\n" + rest)
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
    pipe(client, upstream)


def main() -> None:
    listen, target, client_ip = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    host = sys.argv[4] if len(sys.argv) > 4 else None
    server = socket.create_server(("127.0.0.1", listen))
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn, target, client_ip, host), daemon=True).start()


if __name__ == "__main__":
    main()
