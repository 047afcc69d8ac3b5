"""The installed `ml-connector` console script, run as a real process: what a user types,
entry point and all (not `python -c "import cli"`)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ML_CONNECTOR = Path(sys.executable).with_name("ml-connector")
assert ML_CONNECTOR.is_file(), f"{ML_CONNECTOR} missing: install the project (pip install -e .)"
CLI = [str(ML_CONNECTOR)]


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ML_CONNECTOR_MASTER_KEY", "ML_CONNECTOR_CONFIG")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def run_cli(*args: str | bytes, cwd: Path, input: str | None = None, umask: int | None = None,
            env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env or cli_env(), input=input,
                          capture_output=True, text=True, timeout=timeout,
                          errors="backslashreplace",
                          **({"umask": umask} if umask is not None else {}))
