"""Activity interceptors the platform's workers run with, each holding its own switches for the tests."""

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class FailOnceAfterCommit(Interceptor):
    """While `on`, every activity's first attempt does its work, then reports a failure (`injected` lists them:
    workflow id and activity type).

    Temporal then retries it: the retry must find the work done and add nothing twice.
    """

    def __init__(self) -> None:
        self.on = False
        self.injected: list[tuple[str, str]] = []

    def reset(self) -> None:
        self.on, self.injected = False, []

    def types_failed(self, workflow_id: str) -> Counter:
        """How many first attempts of each activity type failed for one workflow."""
        return Counter(activity_type for workflow, activity_type in self.injected if workflow == workflow_id)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _FailAfterCommit(next, self)


class _FailAfterCommit(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, switch: FailOnceAfterCommit):
        super().__init__(next)
        self.switch = switch

    async def execute_activity(self, input: ExecuteActivityInput):
        info = activity.info()
        result = await self.next.execute_activity(input)
        if self.switch.on and info.attempt == 1:
            self.switch.injected.append((info.workflow_id, info.activity_type))
            raise ApplicationError(f"injected failure after {info.activity_type} committed")
        return result


@dataclass
class Hold:
    """Keeps one kind of activity from starting, for the arguments it matches, until the test releases it."""

    activity_type: str
    matches: Callable[[Any], bool]
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


class HoldWhenTold(Interceptor):
    """Opens a window the test can act in: a held activity waits before doing its work."""

    def __init__(self) -> None:
        self.holds: list[Hold] = []

    def hold(self, activity_type: str, matches: Callable[[Any], bool]) -> Hold:
        self.holds.append(Hold(activity_type, matches))
        return self.holds[-1]

    def release_all(self) -> None:
        for held in self.holds:
            held.released.set()
        self.holds.clear()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Held(next, self)


class _Held(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, holder: HoldWhenTold):
        super().__init__(next)
        self.holder = holder

    async def execute_activity(self, input: ExecuteActivityInput):
        for hold in list(self.holder.holds):
            if hold.activity_type == activity.info().activity_type and hold.matches(*input.args):
                hold.reached.set()
                await hold.released.wait()
        return await self.next.execute_activity(input)
