"""Partners creating deliveries in a closed loop, retrying the way a partner's integration does.

Each of `concurrency` partner clients creates a delivery, waits for its terminal callback, and creates the next,
until creating stops. A create that gets no answer, a 503 or a 429 (rate limited), is sent again with the same
body and external id (after `Retry-After`), so every order the API stored is eventually accepted with its delivery id. While
`duplicates` is on, every create is sent twice at once and a share of deliveries is cancelled, some twice at
once; the answers say which terminal status each delivery must reach. Every answer is counted by kind; a 500, or
any answer a partner could not act on, is kept as a problem.
"""

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from core.contracts import DeliveryStatus
from simulator.demo_market import order_body
from tests.chaos.receiver import ChaosReceiver

TERMINAL_WAIT_SECONDS = 1800  # the drain's own deadline ends the wait long before this
# Answers that mean "come back later", with the code their body must carry.
RETRY_LATER = {503: "temporarily_unavailable", 429: "rate_limited"}
NO_ANSWER_PAUSE = 1.0
ANY_END = {DeliveryStatus.DELIVERED.value, DeliveryStatus.RETURNED.value, DeliveryStatus.CANCELLED.value}


@dataclass
class Tracked:
    """One accepted delivery and the terminal statuses that would be right for it."""

    delivery_id: str
    external_id: str
    body: dict
    expected: set[str] = field(default_factory=lambda: {DeliveryStatus.DELIVERED.value})
    cancels: list[str] = field(default_factory=list)


class PartnerFlow:
    def __init__(self, api_url: str, api_key: str, market: dict, receiver: ChaosReceiver, concurrency: int,
                 run_id: str):
        self.http = httpx.AsyncClient(
            base_url=api_url, headers={"authorization": f"Bearer {api_key}"}, timeout=60,
            limits=httpx.Limits(max_connections=3 * concurrency, max_keepalive_connections=3 * concurrency))
        self.market, self.receiver, self.concurrency, self.run_id = market, receiver, concurrency, run_id
        self.rng = random.Random(run_id)
        self.numbers = itertools.count(1)
        self.accepted: dict[str, Tracked] = {}
        self.answers: Counter[str] = Counter()
        self.problems: list[str] = []
        self.creating = False
        self.duplicates = False
        self.cancel_share = 0.0
        self.duplicate_creates = 0
        self.cancelled = 0
        self._clients: list[asyncio.Task] = []

    # ---- what a partner sends ----------------------------------------------------------------------------

    def new_order(self) -> dict:
        return order_body(self.rng, self.market, next(self.numbers), self.run_id, prefix="chaos")

    async def post_once(self, body: dict) -> httpx.Response | None:
        """One create, as sent; None when no answer came back."""
        try:
            response = await self.http.post("/v1/deliveries", json=body)
        except httpx.TransportError:
            self.answers["create: no answer"] += 1
            return None
        self.answers[f"create: {response.status_code}"] += 1
        return response

    async def create(self, body: dict) -> tuple[str, int] | None:
        """Send the create until the API answers with the delivery; its id and the status code that said so."""
        while True:
            response = await self.post_once(body)
            if response is None:
                await asyncio.sleep(NO_ANSWER_PAUSE)
                continue
            if response.status_code in (200, 201):
                return response.json()["id"], response.status_code
            if response.status_code in RETRY_LATER and self._retry_later(response):
                await asyncio.sleep(float(response.headers["retry-after"]))
                continue
            self.problems.append(f"create {body['external_id']}: {response.status_code} {response.text[:200]}")
            if response.status_code >= 500:
                await asyncio.sleep(NO_ANSWER_PAUSE)
                continue
            return None

    def _retry_later(self, response: httpx.Response) -> bool:
        """A 503 or 429 must say so in the error body and name when to come back."""
        try:
            code = response.json()["code"]
        except ValueError:
            code = None
        if code == RETRY_LATER[response.status_code] and response.headers.get("retry-after", "").isdigit():
            return True
        self.problems.append(f"{response.status_code} without code/Retry-After: {response.headers} "
                             f"{response.text[:200]}")
        return False

    async def cancel(self, tracked: Tracked) -> None:
        """Cancel until answered; note what the answer means for the delivery's end."""
        while True:
            try:
                response = await self.http.post(f"/v1/deliveries/{tracked.delivery_id}/cancel",
                                                json={"reason": "customer_cancelled"})
            except httpx.TransportError:
                self.answers["cancel: no answer"] += 1
                await asyncio.sleep(NO_ANSWER_PAUSE)
                continue
            self.answers[f"cancel: {response.status_code}"] += 1
            if response.status_code in RETRY_LATER and self._retry_later(response):
                await asyncio.sleep(float(response.headers["retry-after"]))
                continue
            break
        if response.status_code == 200:
            status = response.json()["status"]
            tracked.cancels.append(status)
            # Accepted: the answer's status is where it ends, or `returned` when the order is on its way back.
            end = DeliveryStatus.RETURNED.value if status == DeliveryStatus.RETURNING.value else status
            tracked.expected &= {end} if end in ANY_END else set()
        elif response.status_code == 409 and response.json()["code"] == "noncancelable_delivery":
            tracked.cancels.append("noncancelable")
        else:
            self.problems.append(f"cancel {tracked.delivery_id}: {response.status_code} {response.text[:200]}")

    # ---- the closed loop ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.creating = True
        self._clients = [asyncio.create_task(self._client()) for _ in range(self.concurrency)]

    async def _client(self) -> None:
        while self.creating:
            tracked = await self.place(self.new_order())
            if tracked is None:
                continue
            if self.duplicates and self.rng.random() < self.cancel_share:
                await asyncio.sleep(self.rng.uniform(0, 3))
                copies = 2 if self.rng.random() < 0.5 else 1
                tracked.expected = set(ANY_END)
                await asyncio.gather(*(self.cancel(tracked) for _ in range(copies)))
                self.cancelled += 1
            await self.receiver.wait_terminal(tracked.delivery_id, TERMINAL_WAIT_SECONDS)

    async def place(self, body: dict) -> Tracked | None:
        """Create one delivery (twice at once while duplicates are on) and track it."""
        copies = 2 if self.duplicates else 1
        answers = await asyncio.gather(*(self.create(body) for _ in range(copies)))
        if any(answer is None for answer in answers):
            return None
        ids = {delivery_id for delivery_id, _ in answers}
        if copies > 1:
            self.duplicate_creates += 1
            created = sum(1 for _, status in answers if status == 201)
            if len(ids) != 1 or created > 1:
                self.problems.append(f"duplicate create of {body['external_id']} answered {answers}")
        return self.track(ids.pop(), body)

    def track(self, delivery_id: str, body: dict) -> Tracked:
        return self.accepted.setdefault(delivery_id, Tracked(delivery_id, body["external_id"], body))

    def in_flight(self) -> int:
        """Accepted deliveries whose terminal callback has not arrived."""
        return sum(1 for delivery_id in self.accepted if delivery_id not in self.receiver.terminal)

    def finished(self) -> int:
        return sum(1 for delivery_id in self.accepted if delivery_id in self.receiver.terminal)

    async def drain(self, timeout: float) -> float:
        """Stop creating; wait for every accepted delivery to end (each client's last one, and those the test
        placed itself), up to `timeout`; the seconds it took."""
        self.creating = False
        started = time.monotonic()
        done, pending = await asyncio.wait(self._clients, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()  # a client that broke says why
        while self.in_flight() and time.monotonic() - started < timeout:
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def close(self) -> None:
        self.creating = False
        for task in self._clients:
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self.http.aclose()
