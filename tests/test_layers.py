"""Which of our packages may import which, read from the source with `ast`: nothing is imported to check it."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"core", "services", "activities", "workflows", "simulator", "migrations", "bench", "api", "desks", "cli"}

# What each package may import of ours besides itself, lowest layer first. `cli` is the top: it may import any.
MAY_IMPORT = {
    "core": set(),
    "services": {"core"},
    "activities": {"core", "services"},
    "workflows": {"core", "activities"},
    "simulator": {"core", "services"},  # the demo market is seeded through the services' repositories
    "migrations": {"core", "services"},  # each environment migrates its service's tables
    "bench": {"core", "services", "workflows", "simulator"},
    "desks": {"core", "services", "workflows"},  # what partners and robots may do, across the services
    "api": {"core", "desks"},  # routes and dialects talk to the desks, never to a service or a workflow
}


def imports_of(package: str) -> dict[str, set[str]]:
    """Our other packages that `package` imports (inside functions too), each with the files that do."""
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules in {package}/"
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", MAY_IMPORT)
def test_a_package_imports_only_the_layers_it_may(package):
    stray = {top: sorted(files) for top, files in imports_of(package).items() if top not in MAY_IMPORT[package]}
    assert not stray, f"{package} may import only {sorted(MAY_IMPORT[package]) or 'none of ours'}: {stray}"
