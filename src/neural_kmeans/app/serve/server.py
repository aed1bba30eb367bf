"""The playground's web server: a Starlette application run by uvicorn.

Routes
------
``GET /``                     the page (``static/index.html``)
``GET /static/...``           its script, style sheet and notices
``WS  /ws``                   one page's session (:mod:`~neural_kmeans.app.serve.session`)
``POST /api/upload``          a data file, the raw bytes (``?session=&name=&label_column=``)
``GET /api/export/{what}``    ``results``, ``gif`` or ``model`` of the last run (``?session=``)
``GET /api/health``           ``{"ok": true}``

Safety: every request must name this server in its ``Host`` header (a page of another
site reached through DNS rebinding names its own) and, when it carries an ``Origin``,
come from this server's own origin; WebSocket and POST requests must carry one. The
page never names a path on the server, uploads are size-limited and read by the
command line's loader, and every response forbids framing and foreign scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import sys
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketClose, WebSocketDisconnect

from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.serve import exports
from neural_kmeans.app.serve.params import Limits
from neural_kmeans.app.serve.session import ServerState, Session

STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Largest message a page may send over its socket (uploads go over HTTP).
WS_MAX_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
    "cache-control": "no-store",
}


# --------------------------------------------------------------------------- the guard


def _split_host(value: str) -> tuple[str, int | None]:
    """``host[:port]`` (or ``[v6]:port``) as (lower-case host, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    return host, int(port) if port.isdigit() else None


class Guard:
    """ASGI middleware: refuses requests for another host or from another origin, and adds
    the security headers to every response."""

    def __init__(self, app: Any, hosts: set[str], port: int) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}
        self.port = port

    def problem(self, kind: str, method: str, headers: Headers) -> str | None:
        """Why the request is refused, or None."""
        host = headers.get("host")
        if not host:
            return "refused: no Host header"
        name, port = _split_host(host)
        if name not in self.hosts or (port or 80) != self.port:
            return f"refused: this server does not answer for host {host!r}"
        origin = headers.get("origin")
        if origin is None:
            if kind == "websocket" or method not in ("GET", "HEAD"):
                return "refused: a request that changes something must name its Origin"
            return None
        scheme, _, rest = origin.partition("://")
        name, port = _split_host(rest)
        if scheme != "http" or name not in self.hosts or port != self.port:
            return f"refused: requests from {origin!r} are not accepted"
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope["type"], scope.get("method", "GET"), Headers(scope=scope))
        if problem is not None:
            if scope["type"] == "websocket":
                await WebSocketClose(code=1008, reason=problem)(scope, receive, send)
            else:
                await PlainTextResponse(problem, status_code=403)(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --------------------------------------------------------------------------- routes


def _session(request: Request) -> Session:
    state: ServerState = request.app.state.server
    session = state.sessions.get(request.query_params.get("session", ""))
    if session is None:
        raise UsageError("no such session: reload the page")
    return session


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


async def health(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise OverflowError
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise OverflowError
        chunks.append(chunk)
    return b"".join(chunks)


async def upload(request: Request) -> Response:
    try:
        session = _session(request)
    except UsageError as error:
        return _error(str(error), 404)
    limit = session.limits.max_upload_bytes
    try:
        content = await _read_body(request, limit)
    except OverflowError:
        return _error(f"the file is over the upload limit of {limit:,} bytes", 413)
    name = request.query_params.get("name", "upload")
    label_column = request.query_params.get("label_column") or None
    try:
        summary = await session.load_upload(content, name, label_column)
    except UsageError as error:
        await session.send({"type": "error", "message": str(error)})
        return _error(str(error), 400)
    return JSONResponse({"ok": True, "summary": summary})


async def export(request: Request) -> Response:
    what = request.path_params["what"]
    if what not in exports.EXPORTS:
        return _error(f"unknown export {what!r}; choose {', '.join(exports.EXPORTS)}", 404)
    try:
        session = _session(request)
    except UsageError as error:
        return _error(str(error), 404)
    filename, media_type, make = exports.EXPORTS[what]
    try:
        content = await asyncio.to_thread(make, session.runner)
    except UsageError as error:
        return _error(str(error), 409)
    disposition = f'attachment; filename="{filename}"'
    return Response(content, media_type=media_type, headers={"content-disposition": disposition})


async def _pump(websocket: WebSocket, session: Session) -> None:
    """Send the session's messages to its page, in order."""
    while True:
        message = await session.outbox.get()
        await websocket.send_text(json.dumps(message))


async def websocket_endpoint(websocket: WebSocket) -> None:
    state: ServerState = websocket.app.state.server
    if len(state.sessions) >= state.limits.max_sessions:
        await websocket.close(code=1013, reason="too many pages are open on this server")
        return
    await websocket.accept()
    session = Session(state, asyncio.get_running_loop())
    state.sessions[session.id] = session
    pump = asyncio.create_task(_pump(websocket, session))
    try:
        await session.send(state.hello(session))
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
            except ValueError:
                await session.send({"type": "error", "message": "a message must be JSON"})
                continue
            await session.handle(message)
    except (WebSocketDisconnect, RuntimeError, KeyError):
        pass  # the page went away (or sent something that is not text)
    finally:
        session.close()
        state.sessions.pop(session.id, None)
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump


def create_app(state: ServerState, hosts: set[str], port: int) -> Any:
    """The playground's ASGI application, guarded for ``hosts`` on ``port``."""
    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/health", health),
            Route("/api/upload", upload, methods=["POST"]),
            Route("/api/export/{what}", export),
            WebSocketRoute("/ws", websocket_endpoint),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.server = state
    return Guard(app, hosts, port)


# --------------------------------------------------------------------------- the command


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, extra: list[str]) -> set[str]:
    """The names the page may be reached by: the loopback names, the address listened on
    (unless it is every address), and those given with ``--allow-host``."""
    hosts = set(LOOPBACK_NAMES) | {h.strip().lower() for h in extra if h.strip()}
    if host not in ("0.0.0.0", "::", ""):
        hosts.add(host.lower().strip("[]"))
    return hosts


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port).

    Raises
    ------
    UsageError
        When the address cannot be used (taken, unknown, not this machine's).
    """
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        family, kind, protocol, _, address = infos[0]
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


def warm_up() -> None:
    """Import and run once what the first fit needs, so that it draws at once."""
    import numpy as np

    from neural_kmeans.app.data import warm_up as warm_torch
    from neural_kmeans.app.traces import _network_labels
    from neural_kmeans.core.metrics import evaluate
    from neural_kmeans.estimator import NeuralKMeans

    warm_torch()
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    model = NeuralKMeans(2, network="mlp", max_iter=1, random_state=0).fit(x)
    _network_labels(model.network_, x)
    evaluate(model.labels_, model.labels_)


def serve_command(args: argparse.Namespace) -> int:
    """``neural-kmeans serve``: listen, print the address, serve until Ctrl-C."""
    import uvicorn

    limits = Limits(max_samples=args.max_samples, max_upload_bytes=int(args.max_upload_mb * 2**20))
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    hosts = allowed_hosts(args.host, args.allow_host)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    shown = "[::1]" if shown == "::" else (f"[{shown}]" if ":" in shown else shown)
    url = f"http://{shown}:{port}/"
    if not is_loopback(args.host):
        names = ", ".join(sorted(hosts))
        print(
            f"warning: listening on {args.host}, not only on this machine: anyone who can "
            f"reach port {port} can run fits here. The page answers only when opened as "
            f"http://NAME:{port}/ with NAME one of: {names} (add names with --allow-host).",
            file=sys.stderr,
        )
    state = ServerState(limits, args.data_dir)
    warm_up()
    config = uvicorn.Config(
        create_app(state, hosts, port),
        log_level="warning",
        access_log=False,
        ws_max_size=WS_MAX_BYTES,
        ws_per_message_deflate=False,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    print(f"neural-kmeans playground: {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for session in list(state.sessions.values()):
            session.close()
        sock.close()
    print("neural-kmeans playground: stopped", flush=True)
    return 0
