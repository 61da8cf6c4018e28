"""The official partner SDKs against the real stack: the lifecycle tests' platform, markets and webhook endpoints.

Skipped, with the reason, where node or the pinned SDKs are not installed (`npm ci` in tests/contract).
"""

import pytest

from tests.lifecycle.conftest import (  # noqa: F401
    every_delivery_audited, geocoded, hooks, lifecycle_policy, market, platform, receiver,
)
from tests.support.sdk import missing_sdks


def pytest_collection_modifyitems(config, items):
    reason = missing_sdks()
    if reason is None:
        return
    for item in items:
        if "tests/contract/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=reason))
