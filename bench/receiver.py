"""The bench partner's webhook endpoint, in the bench's own event loop: verifies, de-duplicates, timestamps.

Checks each callback's Standard Webhooks signature as tests/lifecycle/conftest.py's `Receiver` does (constant
time, every signature in the header) and refuses a bad one with 400; a resent `webhook-id` is acknowledged
and not counted again. A terminal status resolves whoever waits for that delivery.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections import Counter

import uvicorn
from fastapi import FastAPI, Request, Response

from core.contracts import TERMINAL_STATUSES

TERMINAL = {status.value for status in TERMINAL_STATUSES}


class Receiver:
    def __init__(self) -> None:
        self.secret = ""
        self.url = ""
        self.bad_signatures = 0
        self.duplicates = 0
        self.statuses: Counter[str] = Counter()
        self.terminal: dict[str, tuple[str, float]] = {}  # delivery id -> (status, monotonic time received)
        self._seen: set[str] = set()
        self._waiters: dict[str, asyncio.Future] = {}
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self.app = FastAPI()
        self.app.post("/hooks")(self._hook)

    def verify(self, headers, body: bytes) -> bool:
        try:
            key = base64.b64decode(self.secret.removeprefix("whsec_"))
            signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
            signatures = headers["webhook-signature"].split()
        except (KeyError, ValueError):
            return False
        expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return any(hmac.compare_digest(expected, signature) for signature in signatures)

    async def _hook(self, request: Request) -> Response:
        received = time.monotonic()
        body = await request.body()
        if not self.verify(request.headers, body):
            self.bad_signatures += 1
            return Response(status_code=400)
        message_id = request.headers["webhook-id"]
        if message_id in self._seen:
            self.duplicates += 1
            return Response(status_code=204)
        self._seen.add(message_id)
        data = json.loads(body)["data"]
        status, delivery_id = data["status"], data["delivery_id"]
        self.statuses[status] += 1
        if status in TERMINAL and delivery_id not in self.terminal:
            self.terminal[delivery_id] = (status, received)
            waiter = self._waiters.pop(delivery_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result((status, received))
        return Response(status_code=204)

    async def wait_terminal(self, delivery_id: str, timeout: float) -> tuple[str, float] | None:
        """The delivery's terminal status and when its callback arrived, or None after `timeout` seconds."""
        if delivery_id in self.terminal:
            return self.terminal[delivery_id]
        waiter = self._waiters.setdefault(delivery_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return None

    async def start(self, port: int) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                lifespan="off")
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # Ctrl-C belongs to the bench, not to uvicorn
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
