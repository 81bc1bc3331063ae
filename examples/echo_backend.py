"""A tiny upstream for the mTLS proxy: answers every request with the headers it got, as JSON.

It stands in for the real app in the tests and in `make demo`, so you can see
exactly which identity headers nginx forwards. Binds 127.0.0.1 only.

    python examples/echo_backend.py [--port 0] [--port-file FILE]
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        names = [k.lower() for k in self.headers]
        seen = {
            "method": self.command,
            "path": self.path,
            "headers": dict(self.headers.items()),
            # A header sent twice would hide in the dict above: count it here.
            "repeated": {n: names.count(n) for n in sorted(set(names)) if names.count(n) > 1},
            "body": body.decode(errors="replace"),
        }
        self.server.record(seen)
        data = json.dumps(seen, indent=2).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests and the demo print what matters themselves."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        if tls is not None:  # an https upstream (tests of upstream verification)
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, seen: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(seen)


class EchoBackend:
    """The echo server in a background thread; `requests` lists what reached it."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(port, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def requests(self) -> list[dict[str, Any]]:
        return list(self._server.requests)

    def start(self) -> EchoBackend:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args()
    server = _Server(args.port)
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file.with_suffix(".tmp")
        tmp.write_text(f"{port}\n")
        tmp.replace(args.port_file)  # a reader sees the whole port or nothing
    else:
        print(f"echo backend on http://127.0.0.1:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
