"""The official DoorDash Drive and Uber Direct SDKs (npm, pinned in tests/contract/package-lock.json), run unchanged
by node against the stack: only their base URL points at our API.

Each run is one node process (tests/contract/sdk.js) that makes a list of SDK calls and reports each outcome: the
answer, or the SDK's own error class and what it read from our error body. `conforming` checks documents against
TypeScript types with the TypeScript compiler (tests/contract/conforms.js): the Drive SDK's own declarations and
Uber Direct's documented shapes.
"""

import asyncio
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "contract"
PACKAGES = ("@doordash/sdk", "uber-direct", "typescript")


def missing_sdks() -> str | None:
    """Why the SDK contract tests cannot run here, or None when node and the pinned packages are installed."""
    if shutil.which("node") is None:
        return "node is not installed: the official SDKs run on node"
    absent = [name for name in PACKAGES if not (CONTRACT_DIR / "node_modules" / name / "package.json").exists()]
    if absent:
        return f"{', '.join(absent)} not installed: run `npm ci` in tests/contract (.ci/run does)"
    return None


async def run_node(script: str, document: dict) -> dict:
    """Run a script of tests/contract with `document` on its stdin; its JSON answer. It must exit 0, silently.

    Asynchronous, so the in-process API it calls keeps serving meanwhile."""
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", script, cwd=CONTRACT_DIR, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(json.dumps(document, default=str).encode()), timeout=120)
    assert process.returncode == 0, f"{script} exited {process.returncode}: {err.decode()}"
    assert err.decode().strip() == "", f"{script} wrote to stderr: {err.decode()}"
    return json.loads(out)


@dataclass
class Outcome:
    """One SDK call: its answer, or the error the SDK raised."""

    ok: bool
    status: int | None = None
    data: Any = None
    error: dict = field(default_factory=dict)

    @property
    def error_class(self) -> str | None:
        return self.error.get("class")


@dataclass
class Sdk:
    """One partner's official SDK, configured with its credentials and pointed at the API."""

    name: str  # "doordash" or "uber"
    base_url: str
    credentials: dict

    async def calls(self, *calls: tuple) -> list[Outcome]:
        """Make each `(method, *args)` call in one SDK process, in order; every outcome."""
        program = {"sdk": self.name, "base_url": self.base_url, "credentials": self.credentials,
                   "calls": [{"method": method, "args": list(args)} for method, *args in calls]}
        answer = await run_node("sdk.js", program)
        if answer.get("access_token"):  # one token exchange per partner, as a long-running client does
            self.credentials = {**self.credentials, "access_token": answer["access_token"]}
        return [Outcome(**outcome) for outcome in answer["calls"]]

    async def call(self, method: str, *args) -> Outcome:
        return (await self.calls((method, *args)))[0]


async def conforming(*checks: tuple[str, str, Any]) -> list[str]:
    """Check each `(label, type, document)` against the TypeScript type of that name (tests/contract/conformance.d.ts);
    every mismatch, labelled."""
    answer = await run_node("conforms.js", {"checks": [{"label": label, "type": type_name, "value": value}
                                                       for label, type_name, value in checks]})
    return answer["errors"]
