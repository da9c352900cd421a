"""A TCP proxy on 127.0.0.1 in front of the test S3 server that injects store faults.

Per connection, seeded: reset at once, answer the first request with ``503 SlowDown`` or
``500 InternalError``, cut the stream after a random number of bytes, forward it slowly, or
lose the reply (the request reaches the server and is carried out; the client sees the
connection close before any answer);
and ``down`` (the server "stopped": every connection reset) switched on and off by a test.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Faults:
    reset: float = 0.0
    error: float = 0.0
    cut: float = 0.0
    slow: float = 0.0
    lost: float = 0.0
    lose_puts_to: str | None = None
    """Lose the reply of every other PUT (the 1st, 3rd, ...) whose path holds this: the write
    lands, the client hears nothing and tries again."""
    one_request_each: bool = False
    """Answer every response with ``Connection: close``, so each request comes on a connection
    of its own (the per-connection faults become per-request)."""
    slow_s: float = 0.5
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)


_ERROR = ("HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n"
          "{body}")
_BODY = "<Error><Code>{code}</Code><Message>injected</Message></Error>"


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults):
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.faults = faults
        self.rng = random.Random(faults.seed)
        self.down = False
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self._server.close()

    def _count(self, what: str) -> None:
        with self._lock:
            self.faults.counts[what] = self.faults.counts.get(what, 0) + 1

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _choose(self) -> str:
        f = self.faults
        with self._lock:
            roll = self.rng.random()
        for name, p in (("reset", f.reset), ("error", f.error), ("cut", f.cut), ("slow", f.slow), ("lost", f.lost)):
            if roll < p:
                return name
            roll -= p
        return "pass"

    def _targeted(self, client: socket.socket) -> bool:
        """Whether this connection's first request is a PUT whose reply is to be lost."""
        key = self.faults.lose_puts_to
        if not key:
            return False
        try:
            client.settimeout(5)
            head = client.recv(4096, socket.MSG_PEEK).split(b"\r\n", 1)[0].decode(errors="replace")
            client.settimeout(None)
        except OSError:
            return False
        if not (head.startswith("PUT ") and key in head.split(" ")[1]):
            return False
        with self._lock:
            self._puts = getattr(self, "_puts", 0) + 1
            return self._puts % 2 == 1

    def _serve(self, client: socket.socket) -> None:
        if self._targeted(client):
            self._count(f"lost PUT {self.faults.lose_puts_to}")
            self._forward(client, "lost")
            return
        fault = "down" if self.down else self._choose()
        if fault != "pass":
            self._count(fault)
        if fault in ("down", "reset"):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()  # RST
            return
        if fault == "error":
            client.settimeout(5)
            with client:
                try:
                    client.recv(65536)
                    code, status = self.rng.choice([("SlowDown", "503 Slow Down"),
                                                    ("InternalError", "500 Internal Server Error")])
                    body = _BODY.format(code=code)
                    client.sendall(_ERROR.format(status=status, n=len(body), body=body).encode())
                except OSError:
                    pass
            return
        self._forward(client, fault)

    def _forward(self, client: socket.socket, fault: str) -> None:
        try:
            server = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            client.close()
            return
        budget = self.rng.randint(200, 20_000) if fault == "cut" else None
        delay = self.faults.slow_s if fault == "slow" else 0.0
        threading.Thread(target=self._pipe, args=(client, server, budget, delay), daemon=True).start()
        self._pipe(server, client, 0 if fault == "lost" else None, 0.0, self.faults.one_request_each)

    def _pipe(self, src: socket.socket, dst: socket.socket, budget: int | None, delay: float,
              close_after: bool = False) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.down:
                    break
                if close_after and data.startswith(b"HTTP/1.") and not data.startswith(b"HTTP/1.1 1"):
                    line, rest = data.split(b"\r\n", 1)  # a final response's head: ask the client to close
                    data = line + b"\r\nConnection: close\r\n" + rest
                if delay:
                    time.sleep(delay)
                if budget == 0 and data.startswith(b"HTTP/1.1 1"):  # "100 Continue": the body is yet to come
                    dst.sendall(data)
                    continue
                if budget is not None:
                    if len(data) >= budget:
                        dst.sendall(data[:budget])
                        break
                    budget -= len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
