"""The world bench.e2e runs in: a real OpenSSH sshd (tests/fixtures/sshd.py's server, started
without pytest, key login only), generated exports in its outbound folder, and a config with
its secrets as `init` + `secrets set` would leave them."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

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
