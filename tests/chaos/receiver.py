"""The chaos partner's webhook endpoint: the bench receiver, plus outages and a record of every arrival.

`mode` plays the partner's side of an outage: "error" answers 500 without looking at the callback; "hang" takes
the callback in (it counts as received) but answers only after the sender has given up, so the sender retries
a callback that in fact arrived. Each first arrival is recorded per delivery in arrival order with its sequence
and webhook-id (and, for a status change, its status); a resend of a webhook-id already seen is acknowledged and
counted as a redelivery, never as a new event. Every signed arrival, first or resent, is also kept by webhook-id
(`events_by_webhook_id`, each its event as parsed), so the checks can see whether one webhook-id ever carried two
different events.
"""

import asyncio
import json
from collections import defaultdict

from fastapi import Request, Response

from bench.receiver import Receiver

# Longer than the callback sender's HTTP timeout (activities/partner_callbacks.py: 10 s).
HANG_SECONDS = 12


class ChaosReceiver(Receiver):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.answered_500 = 0
        self.hung = 0
        self.arrivals: dict[str, list[tuple[int, str]]] = defaultdict(list)  # delivery -> [(sequence, webhook-id)]
        self.statuses_of: dict[str, list[str]] = defaultdict(list)
        self.events_by_webhook_id: dict[str, list[dict]] = defaultdict(list)

    async def _hook(self, request: Request) -> Response:
        if self.mode == "error":
            self.answered_500 += 1
            return Response(status_code=500)
        mode, body = self.mode, await request.body()
        # The body is read: the bench receiver's check-and-mark below runs without yielding to another request.
        first_time = request.headers.get("webhook-id") not in self._seen
        response = await super()._hook(request)
        if response.status_code == 204:
            self.events_by_webhook_id[request.headers["webhook-id"]].append(json.loads(body))
        if response.status_code == 204 and first_time:
            event = json.loads(body)
            data = event["data"]
            self.arrivals[data["delivery_id"]].append((data["sequence"], request.headers["webhook-id"]))
            if event["type"] == "delivery.status_changed":  # not an ETA update, which repeats the status
                self.statuses_of[data["delivery_id"]].append(data["status"])
        if mode == "hang":
            self.hung += 1
            await asyncio.sleep(HANG_SECONDS)
        return response
