"""The world bench.e2e runs in: a real OpenSSH sshd (tests/fixtures/sshd.py's server, started
without pytest, key login only), generated exports in its outbound folder, a config with its
secrets as `init` + `secrets set` would leave them; and what watches a run (peak RSS and CPU of
the sync processes, the emulator's requests)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Unavailable
from bench.generate import write_invoices_csv, write_vendors_csv

IFS_SECRET = "sandbox-secret"          # the emulator seed's client secret


class Sshd:
    """`with Sshd(folder) as server:` a running sshd on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self):
        from tests.fixtures.sshd import SSHD, SshdServer, _config, keygen

        if not (os.path.exists(SSHD) and os.geteuid() == 0):
            raise Unavailable("OpenSSH sshd (as root) is needed for the end-to-end figure")
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        self.folder.mkdir(parents=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = SshdServer(workdir=self.folder, port=port, log_path=self.folder / "sshd.log")
        server.host_key_path = self.folder / "ssh_host_ed25519_key"
        _, public = keygen(server.host_key_path)
        server.host_public_key = " ".join(public.split()[:2])
        server.client_key, server.client_public_key = keygen(self.folder / "client_ed25519")
        server.authorize(server.client_public_key)
        server.known_hosts.write_text(server.known_hosts_line + "\n")
        server.outbound = self.folder / "outbound"
        server.outbound.mkdir()
        (self.folder / "sshd_config").write_text(_config(server))
        server.start()
        self.server = server
        return server

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def drop_exports(source: Path, outbound: Path, invoices: int, files: int,
                 vendors: int) -> list[Path]:
    """A vendor file and `invoices` invoices over `files` exports (distinct numbers, seeded),
    put in the outbound folder an hour old (past min_file_age). Returns the invoice files."""
    source.mkdir(parents=True)
    write_vendors_csv(source / "vendors_C1042_20261106000000.csv", vendors)
    per_file, paths = -(-invoices // files), []
    for n in range(files):
        count = min(per_file, invoices - n * per_file)
        if count <= 0:
            break
        paths.append(write_invoices_csv(source / f"invoices_C1042_202611061{n:05d}.csv",
                                        count, seed=n, vendors=vendors, start=n * per_file))
    then = time.time() - 3600
    for path in [source / "vendors_C1042_20261106000000.csv", *paths]:
        target = outbound / path.name
        shutil.copy(path, target)
        os.utime(target, (then, then))
    return paths


def write_world(folder: Path, sshd, ifs_url: str, *, ledger: str | None = None) -> Path:
    """ml-connector.toml and its data folder (master key, the two secrets)."""
    from adapters.secrets import SecretStore, create_master_key

    data = folder / "data"
    connector = {"company": "10", "ledger": ledger or f"sqlite:///{data}/ledger.db",
                 "data_dir": str(data)}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in connector.items())
    config = folder / "ml-connector.toml"
    config.write_text(f"""
[connector]
{lines}

[stampli]
host = "127.0.0.1"
port = {sshd.port}
username = "{sshd.login_user}"
auth = "key"
known_hosts = "{sshd.known_hosts}"
outbound_dir = "{sshd.outbound}"
min_file_age = "1s"
stable_wait = "0.2s"
companies = {{ C1042 = "10" }}

[ifs]
base_url = "{ifs_url}"
realm = "acme1"
client_id = "ml-connector"
requests_per_minute = 1000

[ifs.posting]
tax_accounts = {{ TX8 = "2640" }}
""")
    create_master_key(data)
    store = SecretStore(data)
    store.set("stampli.private_key", sshd.client_key)
    store.set("ifs.client_secret", IFS_SECRET)
    return config


def postgres_server_cpu(url: str) -> float | None:
    """CPU seconds the PostgreSQL server behind `url` has used so far: its postmaster and
    every process it started, running or ended (an ended backend's time is in the
    postmaster's children times). None when the server is not a process of this machine."""
    import psutil
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            postmaster = psutil.Process(backend).parent()
        times = postmaster.cpu_times()
        seconds = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            try:
                child_times = child.cpu_times()
            except psutil.Error:
                continue                # ended between the listing and the look: reaped
            seconds += child_times.user + child_times.system
        return seconds
    except (psycopg.Error, psutil.Error, AttributeError):
        return None


class RssWatch:
    """Peak resident set size of a process and its children, sampled every 0.1 s."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._pids: set[int] = set()
        self._cpu: dict[int, float] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def watch(self, pid: int) -> None:
        with self._lock:
            self._pids.add(pid)

    def forget(self, pid: int) -> None:
        with self._lock:
            self._pids.discard(pid)

    def cpu_of(self, pid: int) -> float:
        """CPU seconds (user + system) of a process this one has waited for."""
        return self._cpu.pop(pid, 0.0)

    def _run(self) -> None:
        import psutil

        while not self._done.wait(0.1):
            with self._lock:
                pids = list(self._pids)
            for pid in pids:
                try:
                    proc = psutil.Process(pid)
                    total = proc.memory_info().rss
                    times = proc.cpu_times()
                    self._cpu[pid] = times.user + times.system
                    for kid in proc.children(recursive=True):
                        total += kid.memory_info().rss
                except psutil.Error:
                    continue            # ended between the listing and the look
                self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


class RequestCounter:
    """The emulator's OData requests, read from its log every few seconds as they come: the
    log keeps the last 200,000 entries (each $batch operation is one), fewer than a 100k
    backfill writes. A $batch is logged whole between two reads (the emulator runs it without
    yielding), so reading from the last seq seen misses nothing; `lost` says when one read
    found the log full (older entries may have gone)."""

    LOG_LIMIT = 200_000                 # sandbox/ifs/app.py's default

    def __init__(self, emu: Any, every: float = 5.0) -> None:
        self.emu, self.every = emu, every
        self.last, self.lost = 0, 0
        self.by_method: Counter = Counter()
        self.statuses: Counter = Counter()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def read(self) -> None:
        entries = self.emu.requests(self.last)
        if len(entries) >= self.LOG_LIMIT:
            self.lost += 1
        for entry in entries:
            if entry.get("kind") == "odata":   # what the budget counts (not token, not ops)
                self.by_method[entry["method"]] += 1
                self.statuses[entry["status"]] += 1
        if entries:
            self.last = entries[-1]["seq"]

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.read()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.read()
