"""The playground's server running for real (uvicorn, in a thread, on a free port), and
plain clients for it: HTTP through urllib, the page's socket through websockets."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from neural_kmeans.app.serve.params import Limits
from neural_kmeans.app.serve.server import allowed_hosts, create_app, listen
from neural_kmeans.app.serve.session import ServerState


class RunningServer:
    """``neural-kmeans serve`` as the command runs it, on 127.0.0.1 and a free port."""

    def __init__(self, limits: Limits | None = None, data_dir: Any = None) -> None:
        import uvicorn

        sock = listen("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.state = ServerState(limits or Limits(), None if data_dir is None else str(data_dir))
        app = create_app(self.state, allowed_hosts("127.0.0.1", []), self.port)
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", ws_per_message_deflate=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the playground's server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    # ------------------------------------------------------------------ HTTP
    def request(
        self,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request; no proxy, errors returned, not raised."""
        request = urllib.request.Request(
            self.origin + path, data=data, headers=headers or {}, method="POST" if data else "GET"
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=60) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def upload(self, session: str, name: str, content: bytes, **query: str) -> tuple[int, Any]:
        from urllib.parse import urlencode

        path = "/api/upload?" + urlencode({"session": session, "name": name, **query})
        status, _, body = self.request(
            path,
            data=content,
            headers={"Origin": self.origin, "Content-Type": "application/octet-stream"},
        )
        return status, json.loads(body)

    # ------------------------------------------------------------------ the socket
    def page(self, origin: str | None = None, host: str | None = None) -> Page:
        """A page's socket, from ``origin`` (default: the server's own) and naming ``host``
        in its request (default: the address it connects to, 127.0.0.1:port)."""
        import socket

        from websockets.sync.client import connect

        connection = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        opened = connect(
            f"ws://{host or f'127.0.0.1:{self.port}'}/ws",
            sock=connection,
            origin=origin or self.origin,
            proxy=None,
            compression=None,
        ).__enter__()
        return Page(opened)


class Page:
    """One page's socket: send messages, read them up to a given type."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.hello = self.receive()
        assert self.hello["type"] == "hello"
        self.session = self.hello["session"]

    def send(self, **message: Any) -> None:
        self.socket.send(json.dumps(message))

    def receive(self, timeout: float = 60) -> dict[str, Any]:
        return json.loads(self.socket.recv(timeout=timeout))

    def until(self, kind: str, limit: int = 1000) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The first message of type ``kind``, and the messages before it."""
        seen = []
        for _ in range(limit):
            message = self.receive()
            if message["type"] == kind:
                return message, seen
            seen.append(message)
        raise AssertionError(f"no {kind!r} message in {limit}: {[m['type'] for m in seen]}")

    def load(self, name: str, **source: Any) -> dict[str, Any]:
        self.send(type="load", source={"name": name, **source})
        return self.until("data")[0]

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
