"""`make demo` is `ml-connector sandbox --demo`: with nothing configured it starts the
emulators, syncs the sample exports and prints the status table, then stops."""
from __future__ import annotations

import subprocess

from tests.e2e.conftest import CLI, cli_env


def test_sandbox_demo_posts_the_samples_with_no_prompt(tmp_path):
    result = subprocess.run([*CLI, "sandbox", "--demo", "--dir", str(tmp_path / "box")],
                            capture_output=True, text=True, timeout=180, env=cli_env(),
                            stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "moved: posted 4" in out
    assert "IFS now holds 4 supplier invoices and 4 GL vouchers" in out
    table = [line.split() for line in out.splitlines() if line.startswith(("V00231/", "V00877/"))]
    states = {row[0]: row[5] for row in table}      # TOTAL is "amount currency"
    assert states == {"V00231/INV-2026-0117": "posted", "V00231/CN-2026-0009": "posted",
                      "V00877/INV-2026-0117": "posted", "V00231/A-5531": "posted",
                      "V00231/7781": "awaiting_approval"}
    config = tmp_path / "box" / "ml-connector.toml"
    after = subprocess.run([*CLI, "--config", str(config), "history", "V00231/A-5531"],
                           capture_output=True, text=True, timeout=60, env=cli_env())
    assert after.returncode == 0 and "Posted" in after.stdout
    assert "sandbox-secret" not in out + result.stderr
