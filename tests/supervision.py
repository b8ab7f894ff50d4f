"""What the tests ask supervisord (the runner of `make run`) about the processes it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def supervised_pid(conf: Path, name: str) -> int:
    """The pid of `name` under the supervisord of `conf`; 0 while it is not running."""
    answer = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(conf), "pid", name],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return int(answer.stdout.strip() or 0)
