"""The exception workspace in headless Chromium, against `ml-connector run --serve` over real
HTTP, on a ledger filled by a real sync (sshd + IFS emulator) that left two invoices failed
because IFS lacks GL account 6540. What a clerk, a viewer and an attacker see and can do."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from importlib import resources
from pathlib import Path

import pytest

from tests.e2e.conftest import SAMPLES
from tests.installed_cli import CLI, cli_env
from tests.services import require_service

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.sshd]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
PASSWORDS = {"clerk": "clerk-pass-2026", "auditor": "auditor-pass-2026",
             "lockme": "lockme-pass-2026"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def browser():
    require_service(bool(CHROMIUM and DRIVER), "headless Chromium",
                    "apt-get install chromium chromium-driver (`bash .ci/services chromium`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1366,900", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def workspace(make_world):
    """A synced world with two failed invoices, three users, and `run --serve` running."""
    seed = tomllib.loads(resources.files("sandbox").joinpath("ifs_seed.toml").read_text())
    seed["accounts"] = [a for a in seed["accounts"] if a["Account"] != "6540"]
    world = make_world(seed)
    world.drop(*SAMPLES.glob("*"))
    world.cli("sync", check=False)
    port = _free_port()
    with world.config.open("a") as handle:
        handle.write(f'\n[web]\nhost = "127.0.0.1"\nport = {port}\n')
    for name, role in (("clerk", "operator"), ("auditor", "viewer"), ("lockme", "operator")):
        subprocess.run([*CLI, "--config", str(world.config), "users", "add", name, "--role",
                        role], input=PASSWORDS[name] + "\n", text=True, check=True,
                       capture_output=True, cwd=world.dir, env=cli_env(), timeout=60)
    log = (world.dir / "serve.log").open("w")
    server = subprocess.Popen([*CLI, "--config", str(world.config), "run", "--serve"],
                              cwd=world.dir, env=cli_env(), stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.1)
    world.base = base
    yield world
    server.terminate()
    server.wait(timeout=30)
    log.close()


def shot(driver, tmp_path: Path, name: str, keep: bool = False) -> None:
    """A full-page screenshot under the test's folder (and docs/screenshots/ when kept)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1366, max(900, min(height + 40, 4000)))
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 900)
    if keep:
        target = ROOT / "docs" / "screenshots" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def login(driver, base: str, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(base + "/login")
    driver.find_element(By.NAME, "username").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    form = driver.find_element(By.CSS_SELECTOR, "form")
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for_new_page(driver, form)


def text(driver) -> str:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    for _ in range(3):                   # the page may still be swapping its document
        try:
            return driver.find_element(By.TAG_NAME, "body").text
        except WebDriverException:
            time.sleep(0.2)
    return driver.find_element(By.TAG_NAME, "body").text


def forge_post(driver, action: str, fields: dict[str, str]) -> None:
    """Submit a form the page does not offer (as a crafted page or a curious user would)."""
    from selenium.webdriver.common.by import By

    old = driver.find_element(By.TAG_NAME, "main")
    driver.execute_script("""
        const form = document.createElement('form');
        form.method = 'post'; form.action = arguments[0];
        for (const [k, v] of Object.entries(arguments[1])) {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = k; input.value = v; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();""", action, fields)
    wait_for_new_page(driver, old)


def submit_action(driver, action: str, reason: str, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    form = driver.find_element(By.CSS_SELECTOR, f"form.action.{action}")
    for name, value in fields.items():
        element = form.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)
    driver.execute_script("arguments[0].value = arguments[1]",
                          form.find_element(By.NAME, "reason"), reason)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for_new_page(driver, form)


def wait_for_new_page(driver, old) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from selenium.common.exceptions import WebDriverException

    def gone(_driver) -> bool:
        try:
            old.is_enabled()
            return False
        except WebDriverException:       # stale, or no longer in the document: a new page
            return True

    WebDriverWait(driver, 15).until(gone)
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
        and d.find_elements(By.TAG_NAME, "main"))


def history(world, ref: str) -> list[dict]:
    return json.loads(world.cli("history", ref, "--json").stdout)


def test_clerk_sees_fixes_and_closes_exceptions(workspace, browser, tmp_path):
    from selenium.webdriver.common.by import By

    world, driver, base = workspace, browser, workspace.base
    failed = world.status()
    nordlicht, valves = failed[("V00877", "INV-2026-0117")], failed[("V00231", "A-5531")]
    assert nordlicht["state"] == valves["state"] == "failed"

    # no page without login; the login page
    driver.get(base + "/exceptions")
    assert "/login" in driver.current_url
    shot(driver, tmp_path, "login")
    login(driver, base, "clerk", PASSWORDS["clerk"])
    assert "Overview" in text(driver) and "open exceptions" in text(driver)
    shot(driver, tmp_path, "overview")

    # the queue: both failures, oldest first, each with what to do next
    driver.get(base + "/exceptions")
    body = text(driver)
    assert "A-5531" in body and "INV-2026-0117" in body
    assert body.count("GL account 6540 does not exist in IFS company 10") == 2
    assert body.count("add it in IFS (or correct the coding in Stampli), then press Retry") == 2
    shot(driver, tmp_path, "exceptions", keep=True)
    driver.get(base + "/exceptions?q=a-55")
    rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table.list tbody tr")]
    assert len(rows) == 1 and "A-5531" in rows[0]

    # open a failed invoice: the failure in full, the lines, the source file, the buttons
    driver.get(base + "/exceptions")
    driver.find_element(By.LINK_TEXT, "INV-2026-0117").click()
    body = text(driver)
    assert "6540" in body and "Consulting, October" in body
    assert "invoices_C1042_20261106152500.csv" in body
    buttons = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "form.action button")]
    assert buttons == ["Retry", "Resolve", "Dismiss"]
    assert not driver.find_element(By.CSS_SELECTOR, "details.exchange").get_attribute("open") \
        if driver.find_elements(By.CSS_SELECTOR, "details.exchange") else True
    shot(driver, tmp_path, "invoice", keep=True)
    invoice_url = driver.current_url
    versions = len(history(world, "V00877/INV-2026-0117"))

    # bad input: a non-numeric InvoiceId, an over-long reason: a message, nothing recorded
    submit_action(driver, "resolve", "entered by hand", ifs_invoice_id="12a")
    assert "is not a number" in text(driver)
    submit_action(driver, "retry", "x" * 2001)
    assert "keep it under 2000" in text(driver)
    assert len(history(world, "V00877/INV-2026-0117")) == versions

    # A-5531 was entered in IFS by hand; Resolve with its InvoiceId
    ifs_id = enter_by_hand(world, valves)
    driver.get(f"{base}/invoice/{valves['id']}")
    submit_action(driver, "resolve", "keyed in IFS by AP", ifs_invoice_id=str(ifs_id))
    assert "Resolve recorded" in text(driver)
    assert world.status()[("V00231", "A-5531")]["state"] == "resolved"
    shown = world.cli("history", "V00231/A-5531").stdout
    assert "ResolvedManually" in shown and "clerk" in shown and "keyed in IFS by AP" in shown
    assert not driver.find_elements(By.CSS_SELECTOR, "form.action.resolve")

    # the missing account is added in IFS; Retry -> the daemon posts it
    request = urllib.request.Request(world.ifs.base_url + "/_emulator/seed", method="POST",
                                     data=json.dumps({"accounts": [{
                                         "Company": "10", "Account": "6540",
                                         "Description": "Consulting fees",
                                         "ValidFrom": "2000-01-01",
                                         "ValidUntil": "2099-12-31"}]}).encode())
    urllib.request.urlopen(request, timeout=10)
    driver.get(invoice_url)
    submit_action(driver, "retry", "GL 6540 added in IFS")
    assert "Retry recorded" in text(driver)
    for _ in range(100):
        if world.status()[("V00877", "INV-2026-0117")]["state"] == "posted":
            break
        time.sleep(0.2)
    assert world.status()[("V00877", "INV-2026-0117")]["state"] == "posted"
    assert [i for i in world.ifs_invoices() if i["ExternalRef"] == nordlicht["id"]]
    retried = [e for e in history(world, "V00877/INV-2026-0117") if e["type"] == "Retried"]
    assert retried[0]["data"]["operator"] == "clerk"

    # an action the state does not allow: a clear message, nothing recorded
    csrf = driver.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    before = len(history(world, "V00231/A-5531"))
    forge_post(driver, f"/invoice/{valves['id']}/dismiss", {"csrf": csrf, "reason": "dup"})
    assert "Dismiss was not recorded" in text(driver) and "resolved" in text(driver)
    assert len(history(world, "V00231/A-5531")) == before

    # a POST without the CSRF token is refused
    forge_post(driver, f"/invoice/{valves['id']}/reopen", {"reason": "no token"})
    assert "did not come from this workspace" in text(driver)
    assert len(history(world, "V00231/A-5531")) == before

    # the files page links a file to its invoices; an unknown invoice is a 404 page
    driver.get(base + "/files")
    shot(driver, tmp_path, "files")
    driver.find_element(By.LINK_TEXT, "invoices_C1042_20261106153000.xml").click()
    assert "A-5531" in text(driver)
    shot(driver, tmp_path, "file")
    driver.get(f"{base}/invoice/{uuid.uuid4()}")
    assert "Not found" in text(driver)
    shot(driver, tmp_path, "not_found")

    # a viewer sees no buttons, and a forged POST from a viewer is refused
    login(driver, base, "auditor", PASSWORDS["auditor"])
    driver.get(f"{base}/invoice/{nordlicht['id']}")
    assert not driver.find_elements(By.CSS_SELECTOR, "form.action")
    assert "You can look but not act" in text(driver)
    shot(driver, tmp_path, "invoice_viewer")
    csrf = driver.find_element(By.CSS_SELECTOR, "form.who input[name=csrf]").get_attribute("value")
    before = len(history(world, "V00877/INV-2026-0117"))
    forge_post(driver, f"/invoice/{nordlicht['id']}/retry", {"csrf": csrf, "reason": "me too"})
    assert "may look but not act" in text(driver)
    assert len(history(world, "V00877/INV-2026-0117")) == before

    # five wrong passwords lock the user, even against the right one
    for _ in range(5):
        login(driver, base, "lockme", "wrong")
        assert "/login" in driver.current_url
    login(driver, base, "lockme", PASSWORDS["lockme"])
    assert "locked" in text(driver).lower()
    shot(driver, tmp_path, "login_locked")

    # health and metrics without login
    status, body = _get(base + "/healthz")
    assert status == 200, body
    status, body = _get(base + "/metrics")
    assert status == 200 and 'mlc_invoices{state="posted"} 3.0' in body
    assert 'mlc_ifs_requests_total{status="200"}' in body      # the cycles run --serve ran
    status, _ = _get(f"{base}/invoice/{uuid.uuid4()}")
    assert status in (302, 200)        # redirected to the login page: no page without login


def enter_by_hand(world, row: dict) -> int:
    """What an AP clerk does in IFS's own screens: a supplier invoice with A-5531's header,
    made in the emulator's store (the connector never sent it)."""
    emulator = world.ifs.emulator
    store = emulator.store
    model = dict(store.all("invoice")[0])
    ifs_id = store.next_invoice_id()
    model.update(InvoiceId=ifs_id, InvoiceNo="A-5531", Identity="V00231",
                 NetCurrAmount="310.50", VatCurrAmount="24.84", GrossCurrAmount="335.34",
                 Currency="USD", InvoiceType="INVOICE", ExternalRef="")
    for key in ("_rowid", "_ver", "@odata.etag"):
        model.pop(key, None)
    store.put("invoice", model)
    return ifs_id
