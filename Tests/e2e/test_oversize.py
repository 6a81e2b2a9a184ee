"""A body over `server.maxBodyBytes` (32 MiB by default) gets its 413 promptly from every kind of
client: urllib (sends the whole body before it reads, with `Connection: close`), requests and curl."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import requests

from conftest import MODEL

OVER = 33 * 1024 * 1024


def oversize_body() -> bytes:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "a" * OVER}]}).encode()


def test_urllib_reads_the_413_instead_of_waiting_for_a_timeout(sluice, token):
    request = urllib.request.Request(
        f"{sluice.openai_base}/chat/completions", data=oversize_body(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    started = time.monotonic()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=20)
    elapsed = time.monotonic() - started
    assert caught.value.code == 413
    assert json.loads(caught.value.read())["error"]["code"] == "request_too_large"
    assert elapsed < 10, f"413 took {elapsed:.1f} s"


def test_requests_gets_the_413(sluice, token):
    started = time.monotonic()
    response = requests.post(
        f"{sluice.openai_base}/chat/completions", data=oversize_body(), timeout=20,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert time.monotonic() - started < 10


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_the_413(sluice, token):
    with tempfile.NamedTemporaryFile(suffix=".json") as body:
        body.write(oversize_body())
        body.flush()
        started = time.monotonic()
        completed = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}", f"{sluice.openai_base}/chat/completions",
             "-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {token}", "--data-binary", f"@{body.name}"],
            capture_output=True, timeout=30,
        )
    assert completed.stdout.decode().rsplit("\n", 1)[-1] == "413", completed.stderr.decode()
    assert time.monotonic() - started < 10
