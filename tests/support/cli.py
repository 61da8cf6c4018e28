"""Running `deliveryctl` as a user does: the console script next to this interpreter, from the repository."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def deliveryctl() -> list[str]:
    """The console script installed next to this interpreter, as a user would type it."""
    script = Path(sys.executable).parent / "deliveryctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]
