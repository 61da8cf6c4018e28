"""Determinism guard: recorded lifecycle histories must replay on today's workflow code.

A change that would break deliveries already running fails here. How a change to the command sequence is
versioned is in docs/architecture.md ("Versioning the lifecycle"); histories are recorded with
    RECORD_HISTORIES=tests/replay/histories python -m pytest tests/lifecycle
(each lifecycle test that waits for its delivery to end writes its history there).
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from core.codec import data_converter
from core.settings import Settings
from tests.support.servers import TEST_PAYLOAD_KEYS
from worker import workflow_runner
from workflows import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


# The workers' sandbox (workflow modules passed through), and the default one, which re-imports and
# restricts the workflow modules too.
RUNNERS = {"worker-sandbox": workflow_runner, "strict-sandbox": SandboxedWorkflowRunner}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path, runner: str):
    history = WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(Settings(payload_keys=TEST_PAYLOAD_KEYS)),
                        workflow_runner=RUNNERS[runner]())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name} no longer replays: {result.replay_failure}"


def test_histories_cover_the_lifecycle_paths():
    names = {p.stem for p in HISTORIES}
    assert len(names) >= 5, "record histories of the happy path and the failure paths"
