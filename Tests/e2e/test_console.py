"""The console (README, "The console"): `GET /admin` in Debian's Chromium, driven by Selenium through
Debian's chromedriver, and in Debian's Firefox ESR, driven over WebDriver BiDi (Firefox speaks it
itself; Debian has no geckodriver), against `sluice serve` with its own store, after real traffic by
two identities.

A screenshot of the signed-in page is written to Tests/e2e/output/console.png (SLUICE_E2E_OUTPUT
overrides the folder)."""
from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from conftest import MODEL, REPO_ROOT, SluiceProcess, create_token, free_port, server_env, sluice_binary

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox") or "/usr/bin/firefox-esr"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
OUTPUT = Path(os.environ.get("SLUICE_E2E_OUTPUT", REPO_ROOT / "Tests" / "e2e" / "output"))

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture(scope="module")
def console(workdir):
    """`sluice serve` with its own store (so the ledger holds only this module's requests), two
    engineers and an admin."""
    home = workdir / "console"
    home.mkdir()
    port = free_port()
    config = home / "console.json"
    config.write_text(json.dumps({
        "server": {"host": "127.0.0.1", "port": port},
        "upstream": {"simulator": True},
        "policies": [{"source": "group:admins"}, {"source": "group:eng"}],
        "prices": [{"model": "*", "input": 3, "output": 15, "cacheRead": 0.3, "cacheWrite": 3.75}],
    }))
    tokens = {
        "admin": create_token(home, "ops-admin", ["admins"]),
        "alice": create_token(home, "alice", ["eng"]),
        "bob": create_token(home, "bob", ["eng"]),
    }
    process = SluiceProcess(["serve", "--config", str(config)], port, home)
    process.start("/healthz")
    yield process, tokens, home
    process.stop()


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(f"Chromium ({CHROMIUM}) and chromedriver ({CHROMEDRIVER}) are needed: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1800",
                     "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def chat(url: str, token: str, prompt: str) -> str:
    client = openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0)
    stream = client.chat.completions.create(model=MODEL, stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": prompt}])
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def wait(driver, condition, timeout: float = 15, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d), message)


def sign_in(driver, url: str, token: str) -> None:
    driver.get(url + "/admin")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/admin")
    field = wait(driver, lambda d: d.find_element(By.ID, "token-input"))
    field.clear()
    field.send_keys(token)
    driver.find_element(By.ID, "sign-in").click()


def requests_cell(driver, table: str, key: str) -> str | None:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tr[data-key]")
    for row in rows:
        if row.get_attribute("data-key") == key:
            return row.find_element(By.CSS_SELECTOR, ".requests").text.strip()
    return None


def cli_usage(home: Path, by: str) -> dict[str, list[str]]:
    """`sluice usage` on the same store: key → [requests, input, output, cache read, cache write, cost]."""
    completed = subprocess.run([str(sluice_binary()), "usage", "--by", by, "--since", "7d"], capture_output=True, text=True,
                               timeout=30, env=server_env(home), cwd=home, check=True)
    table = {}
    for line in completed.stdout.splitlines()[1:]:
        cells = line.split()
        table[cells[0]] = cells[1:]
    return table


def api(url: str, path: str, token: str):
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_console_in_chromium(console, browser):
    process, tokens, home = console
    url = process.url
    for index in range(3):
        assert chat(url, tokens["alice"], f"alice {index} [[sim chunks=4]]")
    for index in range(2):
        assert chat(url, tokens["bob"], f"bob {index} [[sim chunks=6]]")

    sign_in(browser, url, tokens["admin"])
    wait(browser, lambda d: d.find_element(By.ID, "dashboard").is_displayed(), message="the dashboard did not show")
    assert "ops-admin" in browser.find_element(By.ID, "whoami").text
    assert not browser.find_element(By.ID, "signin").is_displayed()
    # The token is in sessionStorage only: not in the URL, not in a cookie.
    assert tokens["admin"] not in browser.current_url
    assert browser.get_cookies() == []
    assert browser.execute_script("return sessionStorage.getItem('sluice.adminToken')") == tokens["admin"]

    # The top-identities table and the chart show both identities with their request counts.
    wait(browser, lambda d: requests_cell(d, "top-identities", "alice") == "3" and requests_cell(d, "top-identities", "bob") == "2",
         message="top identities did not show alice 3, bob 2")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart rect[data-key]"), message="the chart drew no bars")

    def chart_total(key: str) -> float:
        return sum(float(rect.get_attribute("data-value") or 0)
                   for rect in browser.find_elements(By.CSS_SELECTOR, "#chart rect[data-key]") if rect.get_attribute("data-key") == key)

    wait(browser, lambda d: chart_total("alice") == 3 and chart_total("bob") == 2, message="the chart's requests per identity")
    assert requests_cell(browser, "top-models", "us.anthropic.claude-sonnet-4-5-20250929-v1:0") == "5"
    # Live status and recent requests.
    wait(browser, lambda d: d.find_element(By.ID, "status-streams").text.strip() == "0")
    wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#requests tr[data-request-id]")) == 5)

    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "console.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # Create a token in the page; it works; revoke it in the page; it is refused within 2 s.
    browser.find_element(By.ID, "new-token-identity").send_keys("carol")
    browser.find_element(By.ID, "new-token-groups").send_keys("eng")
    browser.find_element(By.ID, "new-token-create").click()
    value = wait(browser, lambda d: d.find_element(By.ID, "new-token-value").get_attribute("value"), message="no new token shown")
    assert value.startswith("sk-sluice-")
    assert chat(url, value, "carol [[sim chunks=2]]")
    prefix = value[len("sk-sluice-"):][:8]
    row = wait(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#tokens tr[data-prefix]")
                                   if r.get_attribute("data-prefix") == prefix], message="the new token is not listed")[0]
    row.find_element(By.CSS_SELECTOR, ".revoke").click()
    WebDriverWait(browser, 5).until(lambda d: d.switch_to.alert).accept()
    clicked = time.monotonic()
    refused_after = None
    while time.monotonic() - clicked < 5:
        try:
            chat(url, value, "carol again")
        except openai.AuthenticationError as error:
            assert "revoked" in str(error)
            refused_after = time.monotonic() - clicked
            break
        time.sleep(0.05)
    assert refused_after is not None and refused_after < 2, f"refused after {refused_after}"
    wait(browser, lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, "#tokens tr[data-prefix]")
                             if r.get_attribute("data-prefix") == prefix and "revoked" in r.text],
         message="the revoked token is not shown as revoked")

    # The page ran without a single CSP violation or script error.
    problems = [entry for entry in browser.get_log("browser")
                if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]]
    assert problems == [], problems


def test_non_admin_cannot_sign_in(console, browser):
    process, tokens, _ = console
    sign_in(browser, process.url, tokens["alice"])
    error = wait(browser, lambda d: d.find_element(By.ID, "sign-in-error").text.strip(), message="no sign-in error shown")
    assert "administrator" in error
    assert not browser.find_element(By.ID, "dashboard").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('sluice.adminToken')") is None
    sign_in(browser, process.url, "sk-sluice-notavalidtokennotavalidtokennotavalidtok")
    wait(browser, lambda d: "not valid" in d.find_element(By.ID, "sign-in-error").text, message="a forged token was not refused")
    assert not browser.find_element(By.ID, "dashboard").is_displayed()


def test_usage_api_matches_the_cli(console):
    """The admin API and `sluice usage` read the same ledger the same way: equal numbers."""
    process, tokens, home = console
    for by in ("identity", "group", "model", "upstream"):
        rows = api(process.url, f"/admin/api/usage?by={by}&since=7d", tokens["admin"])["rows"]
        cli = cli_usage(home, by)
        assert set(cli) == {row["key"] for row in rows}, by
        for row in rows:
            requests, input_tokens, output_tokens, cache_read, cache_write, cost = cli[row["key"]]
            assert int(requests) == row["requests"], (by, row)
            assert (int(input_tokens), int(output_tokens)) == (row["inputTokens"], row["outputTokens"]), (by, row)
            assert (int(cache_read), int(cache_write)) == (row["cacheReadTokens"], row["cacheWriteTokens"]), (by, row)
            assert cost == f"{row['costUSD']:.4f}", (by, row)
    identities = {row["key"]: row["requests"] for row in api(process.url, "/admin/api/usage?by=identity", tokens["admin"])["rows"]}
    assert identities["alice"] == 3 and identities["bob"] == 2


def test_admin_api_refuses_in_openai_shape(console):
    process, tokens, _ = console
    for token, status in ((tokens["alice"], 403), ("sk-sluice-forgedforgedforgedforgedforgedforgedforge", 401)):
        with pytest.raises(urllib.error.HTTPError) as raised:
            api(process.url, "/admin/api/tokens", token)
        assert raised.value.code == status
        body = json.load(raised.value)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(urllib.error.HTTPError) as raised:
        api(process.url, "/admin/api/usage?by=team", tokens["admin"])
    assert raised.value.code == 400 and json.load(raised.value)["error"]["param"] == "by"
    assert re.match(r"\d+\.\d+\.\d+", api(process.url, "/admin/api/status", tokens["admin"])["version"])


class FirefoxBiDi:
    """Just enough WebDriver BiDi to drive one page: Firefox serves it on --remote-debugging-port."""

    def __init__(self, profile: Path):
        import websocket  # websocket-client, pinned in requirements.txt

        self.port = free_port()
        self.process = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile), f"--remote-debugging-port={self.port}",
             "--width=1440", "--height=1800"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.socket = websocket.create_connection(f"ws://127.0.0.1:{self.port}/session", timeout=30,
                                                          suppress_origin=True)
                break
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.send("session.new", {"capabilities": {}})
        self.context = self.send("browsingContext.getTree", {})["contexts"][0]["context"]
        self.send("session.subscribe", {"events": ["log.entryAdded"]})
        # Before any page script: collect CSP violations the page would otherwise only log.
        self.send("script.addPreloadScript", {"functionDeclaration":
            "() => { window.__csp = []; document.addEventListener('securitypolicyviolation', "
            "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI)); }"})

    def send(self, method: str, params: dict) -> dict:
        command = next(self.ids)
        self.socket.send(json.dumps({"id": command, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == command:
                if message.get("type") == "error":
                    raise RuntimeError(f"{method}: {message.get('error')}: {message.get('message')}")
                return message["result"]
            if message.get("type") == "event":
                self.events.append(message)

    def navigate(self, url: str) -> None:
        self.send("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def evaluate(self, expression: str):
        result = self.send("script.evaluate", {"expression": expression, "target": {"context": self.context},
                                               "awaitPromise": True})
        if result.get("type") == "exception":
            raise RuntimeError(f"script failed: {result['exceptionDetails'].get('text')}")
        value = result["result"]
        return value.get("value")

    def wait_for(self, expression: str, timeout: float = 15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def screenshot(self, path: Path) -> None:
        data = self.send("browsingContext.captureScreenshot", {"context": self.context})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("session.end", {})
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def test_console_in_firefox(console):
    """The same page in Firefox: sign-in, the tables and the chart after the traffic, a token
    created in the page; no CSP violation and no script error."""
    if not Path(FIREFOX).exists():
        pytest.fail(f"Firefox ({FIREFOX}) is needed: apt-get install firefox-esr")
    process, tokens, _ = console
    url = process.url
    chat(url, tokens["alice"], "firefox [[sim chunks=2]]")
    with tempfile.TemporaryDirectory(prefix="sluice-firefox-") as profile:
        firefox = FirefoxBiDi(Path(profile))
        try:
            firefox.navigate(url + "/admin")
            admin = json.dumps(tokens["admin"])
            firefox.evaluate(f"document.getElementById('token-input').value = {admin}; "
                             "document.getElementById('sign-in').click(); true")
            firefox.wait_for("!document.getElementById('dashboard').hidden")
            assert "ops-admin" in firefox.evaluate("document.getElementById('whoami').textContent")
            requests_of = "(k) => document.querySelector(`#top-identities tr[data-key='${k}'] .requests`)?.textContent.trim()"
            firefox.wait_for(f"({requests_of})('bob') === '2' && Number(({requests_of})('alice')) >= 4")
            firefox.wait_for("document.querySelectorAll('#chart rect[data-key]').length > 0")
            firefox.evaluate("document.getElementById('new-token-identity').value = 'firefox-made'; "
                             "document.getElementById('new-token-groups').value = 'eng'; "
                             "document.getElementById('new-token-create').click(); true")
            value = firefox.wait_for("document.getElementById('new-token-value').value")
            assert value.startswith("sk-sluice-")
            assert chat(url, value, "made in firefox [[sim chunks=1]]") is not None
            OUTPUT.mkdir(parents=True, exist_ok=True)
            firefox.screenshot(OUTPUT / "console-firefox.png")
            assert (OUTPUT / "console-firefox.png").stat().st_size > 10_000
            assert firefox.evaluate("JSON.stringify(window.__csp)") == "[]"
            errors = [event["params"] for event in firefox.events
                      if event.get("method") == "log.entryAdded" and event["params"].get("level") == "error"
                      and "favicon" not in json.dumps(event["params"])]
            assert errors == [], errors
        finally:
            firefox.close()
