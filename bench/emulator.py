"""The IFS emulator for the posting figures, in either of two places:

- `thread` (sandbox.ifs.runner.start_in_thread): in this process, on its own event loop.
  It shares the GIL with the connector, so its CPU time (parsing each `$batch`, running the
  changesets) is charged to the connector's throughput.
- `process` (`python -m sandbox.ifs`): its own process, as IFS is its own server; on two
  cores it runs beside the connector. The request log is read over its inspection API.

Both count what the tenant counts: one entry per HTTP request (a `$batch` is one, its inner
operations are logged apart as kind "batch-operation" and not counted), 429s included.
"""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import ROOT


class Emulator:
    base_url = ""

    def requests(self, since: int = 0) -> list[dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def state(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def last_seq(self) -> int:
        return max((e["seq"] for e in self.requests()), default=0)

    def http_requests(self, since: int = 0) -> list[dict[str, Any]]:
        """What the tenant's budget counts: OData HTTP requests (not token calls, not the
        operations inside a $batch)."""
        return [e for e in self.requests(since) if e.get("kind") == "odata"]


class ThreadEmulator(Emulator):
    def __init__(self, seed: dict[str, Any], budget: tuple[int, float],
                 deep_insert: bool = False) -> None:
        from sandbox.ifs.runner import start_in_thread

        self._thread = start_in_thread(seed=seed, budget=budget, deep_insert=deep_insert)
        self.base_url = self._thread.base_url

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self._thread.requests(since)

    def state(self) -> dict[str, Any]:
        return self._thread.state()

    def stop(self) -> None:
        self._thread.stop()


class ProcessEmulator(Emulator):
    def __init__(self, seed: dict[str, Any], budget: tuple[int, float], folder: Path,
                 deep_insert: bool = False) -> None:
        seed_file = folder / "ifs_seed.json"
        seed_file.write_text(json.dumps(seed))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sandbox.ifs", "--port", "0", "--seed", str(seed_file),
             "--budget", f"{budget[0]}/{budget[1]}",
             *(["--deep-insert"] if deep_insert else [])],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise RuntimeError(f"the emulator did not start (said {self.base_url!r})")

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.base_url}{path}", timeout=120) as reply:
            return json.loads(reply.read())

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return self._get(f"/_emulator/requests?since={since}")

    def state(self) -> dict[str, Any]:
        return self._get("/_emulator/state")

    def cpu_seconds(self) -> float:
        """CPU time the emulator's process has used so far (user + system)."""
        import psutil

        times = psutil.Process(self._process.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def start(where: str, seed: dict[str, Any], budget: tuple[int, float],
          folder: Path, *, deep_insert: bool = False) -> Emulator:
    """deep_insert: the emulator takes a header's children inline (standard OData; off by
    default, as for IFS in the contract)."""
    if where == "process":
        return ProcessEmulator(seed, budget, folder, deep_insert)
    return ThreadEmulator(seed, budget, deep_insert)
