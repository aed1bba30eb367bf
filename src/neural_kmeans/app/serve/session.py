"""One page's session: its data, its one run at a time, and the messages between them.

The page speaks over one WebSocket; every message is a JSON object with a ``type``:

from the page
    ``load`` (a named data set), ``edit`` (add or remove a 2-D point), ``run`` (start, or
    resume a paused run), ``step`` (one iteration, starting a run if none), ``pause``,
    ``stop`` (end the run now, keeping its model), ``reset`` (drop the run), ``speed``.
from the server
    ``hello`` (the session, the limits, the data sets here), ``data``, ``start``,
    ``frame`` (one iteration), ``status``, ``done``, ``reset``, ``error``.

Uploads and exports are plain HTTP requests naming the session (see
:mod:`neural_kmeans.app.serve.server`). Closing the page closes the socket, which
cancels its run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
import threading
from dataclasses import asdict
from typing import Any

import numpy as np

from neural_kmeans.app.errors import UsageError
from neural_kmeans.app.serve.frames import b64
from neural_kmeans.app.serve.params import Limits, parse_run_params, parse_source, parse_speed
from neural_kmeans.app.serve.runner import FitRunner
from neural_kmeans.app.serve.sources import (
    PlaygroundData,
    available_sets,
    edit_points,
    load_source,
    load_upload,
)

#: Messages waiting for the page; a fit blocks when its page falls this far behind.
OUTBOX_SIZE = 16
#: Seconds to wait for a cancelled run's iteration to end before starting another.
JOIN_SECONDS = 10.0


class ServerState:
    """What every page of one server shares: settings, the fit slots, the sessions."""

    def __init__(self, limits: Limits, data_dir: str | None = None) -> None:
        self.limits = limits
        self.data_dir = data_dir
        self.available = available_sets(data_dir)
        self.fit_slots = threading.BoundedSemaphore(limits.max_fits)
        self.sessions: dict[str, Session] = {}

    def hello(self, session: Session) -> dict[str, Any]:
        from neural_kmeans.core.validation import FEATURE_NAMES, INIT_NAMES, NETWORK_NAMES

        return {
            "type": "hello",
            "session": session.id,
            "limits": asdict(self.limits),
            "datasets": list(self.available),
            "networks": list(NETWORK_NAMES),
            "inits": list(INIT_NAMES),
            "features": list(FEATURE_NAMES),
        }


class Session:
    """One page: its data and its runs (one at a time)."""

    def __init__(self, server: ServerState, loop: asyncio.AbstractEventLoop) -> None:
        self.id = secrets.token_urlsafe(18)
        self.server = server
        self.limits = server.limits
        self.loop = loop
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        self.data: PlaygroundData | None = None
        self.runner: FitRunner | None = None
        self._previous: FitRunner | None = None
        self.runs = 0
        self.closed = False

    # ------------------------------------------------------------------ sending
    async def send(self, message: dict[str, Any]) -> None:
        await self.outbox.put(message)

    def post_from_thread(self, message: dict[str, Any]) -> bool:
        """Queue ``message`` from a worker thread, waiting while the queue is full (so a
        fit runs no faster than its page takes the frames); False once the page is gone."""
        if self.closed:
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self.outbox.put(message), self.loop)
        except RuntimeError:  # the server's event loop has ended
            return False
        while True:
            try:
                future.result(timeout=0.25)
                return True
            except concurrent.futures.TimeoutError:
                if self.closed:
                    future.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    # ------------------------------------------------------------------ messages
    async def handle(self, message: Any) -> None:
        """Act on one message of the page; a bad one is answered with an error message."""
        try:
            if not isinstance(message, dict) or not isinstance(message.get("type"), str):
                raise UsageError("a message is an object with a 'type'")
            kind = message["type"]
            handler = getattr(self, f"_on_{kind}", None)
            if handler is None:
                raise UsageError(f"unknown message type {kind!r}")
            await handler(message)
        except UsageError as error:
            await self.send({"type": "error", "message": str(error)})

    async def _on_load(self, message: dict[str, Any]) -> None:
        spec = parse_source(message.get("source"), self.limits, self.server.available)
        await self._reset()
        data = await asyncio.to_thread(load_source, spec, self.server.data_dir, self.limits)
        await self._set_data(data)

    async def _on_edit(self, message: dict[str, Any]) -> None:
        data = self._need_data()
        await self._reset()
        edited = edit_points(data, message.get("add"), message.get("remove"), self.limits)
        await self._set_data(edited)

    async def _on_run(self, message: dict[str, Any]) -> None:
        runner = self._active()
        if runner is None:
            await self._start(message, paused=False)
        else:
            runner.control.resume()

    async def _on_step(self, message: dict[str, Any]) -> None:
        runner = self._active()
        if runner is None:
            await self._start(message, paused=True)
        else:
            runner.control.step()

    async def _on_pause(self, message: dict[str, Any]) -> None:
        runner = self._active()
        if runner is not None:
            runner.control.pause()

    async def _on_stop(self, message: dict[str, Any]) -> None:
        runner = self._active()
        if runner is not None:
            runner.control.stop()
            await self.send({"type": "status", "run": runner.run, "state": "stopping"})

    async def _on_reset(self, message: dict[str, Any]) -> None:
        await self._reset()

    async def _on_speed(self, message: dict[str, Any]) -> None:
        speed = parse_speed(message.get("value"))
        runner = self._active()
        if runner is not None:
            runner.control.set_speed(speed)

    # ------------------------------------------------------------------ data
    async def load_upload(
        self, content: bytes, filename: str, label_column: str | None
    ) -> dict[str, Any]:
        """Take an uploaded file as this page's data (checked first; errors raise)."""
        data = await asyncio.to_thread(load_upload, content, filename, label_column, self.limits)
        await self._reset()
        await self._set_data(data)
        return data.summary()

    def _need_data(self) -> PlaygroundData:
        if self.data is None:
            raise UsageError("choose a data set first")
        return self.data

    async def _set_data(self, data: PlaygroundData) -> None:
        self.data = data
        points = None if data.points is None else b64(data.points.astype(np.float32))
        await self.send({"type": "data", "summary": data.summary(), "points": points})

    # ------------------------------------------------------------------ runs
    def _active(self) -> FitRunner | None:
        """The run in progress (not ending), if any."""
        runner = self.runner
        return None if runner is None or not runner.alive or runner.control.ending else runner

    async def _start(self, message: dict[str, Any], paused: bool) -> None:
        data = self._need_data()
        params = parse_run_params(message.get("params"), self.limits)
        await self._wait_for_previous()
        if not self.server.fit_slots.acquire(blocking=False):
            raise UsageError(
                f"the server is running {self.limits.max_fits} fits already (its limit); "
                "try again when one ends"
            )
        self.runs += 1
        try:
            runner = FitRunner(
                data,
                params,
                self.runs,
                self.limits,
                self.post_from_thread,
                self._ended,
                paused=paused,
            )
            self.runner = runner
            runner.start()
        except BaseException:
            self.server.fit_slots.release()
            raise

    def _ended(self, runner: FitRunner) -> None:
        """A run's thread ends (in that thread): its slot goes back, the page hears how."""
        self.server.fit_slots.release()
        if runner.outcome != "cancelled":
            self.post_from_thread({"type": "status", "run": runner.run, "state": runner.outcome})

    async def _wait_for_previous(self) -> None:
        """One run at a time: wait (a little) for a stopped or dropped run to end."""
        for runner in (self.runner, self._previous):
            if runner is None or not runner.alive:
                continue
            if not runner.control.ending:
                raise UsageError("a run is in progress: pause, stop or reset it first")
            await asyncio.to_thread(runner.join, JOIN_SECONDS)
            if runner.alive:
                raise UsageError("the previous run is still ending its iteration; try again")

    async def _reset(self) -> None:
        """Drop the current run: it ends at its next iteration, its messages are dropped."""
        runner = self.runner
        if runner is None:
            return
        runner.control.cancel()
        self._previous, self.runner = runner, None
        await self.send({"type": "reset"})

    def close(self) -> None:
        """The page has gone: cancel its run."""
        self.closed = True
        if self.runner is not None:
            self.runner.control.cancel()
