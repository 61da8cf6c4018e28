"""The official partner SDKs against the real stack: the lifecycle tests' platform, markets and webhook endpoints.

Skipped, with the reason, where node or the pinned SDKs are not installed (`npm ci` in tests/contract).
"""

import pytest

# The lifecycle tests' fixtures, shared: the session still runs one platform (tests/support/platform.py).
from tests.lifecycle.conftest import every_delivery_audited, hooks, lifecycle_policy, market, platform  # noqa: F401
from tests.lifecycle.conftest import receiver  # noqa: F401
from tests.support.sdk import missing_sdks


def pytest_collection_modifyitems(config, items):
    reason = missing_sdks()
    if reason is None:
        return
    for item in items:
        if "tests/contract/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=reason))
