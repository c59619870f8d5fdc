"""A real HTTP server on 127.0.0.1 (in-process thread) for the model download tests."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes
    content_type: str = "application/octet-stream"
    #: "ok", "drop" (close after half the body), or "stall" (wait before answering).
    behaviour: str = "ok"


@dataclass
class ModelServer:
    base: str
    files: dict[str, Served]
    requests: list[str] = field(default_factory=list)


@contextmanager
def model_server(files: dict[str, Served], stall_s: float = 3.0) -> Iterator[ModelServer]:
    log: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            log.append(self.path)
            served = files.get(self.path)
            if served is None:
                self.send_error(404)
                return
            if served.behaviour == "stall":
                time.sleep(stall_s)
            self.send_response(200)
            self.send_header("Content-Type", served.content_type)
            self.send_header("Content-Length", str(len(served.body)))
            self.end_headers()
            body = served.body[: len(served.body) // 2] if served.behaviour == "drop" else served.body
            with contextlib.suppress(OSError):  # the client gave up (timeout test)
                self.wfile.write(body)
            if served.behaviour == "drop":
                self.close_connection = True

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ModelServer(f"http://127.0.0.1:{server.server_address[1]}", files, log)
    finally:
        server.shutdown()
        server.server_close()
