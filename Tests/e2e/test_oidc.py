"""IdP sign-in (README, "Sign-in with your IdP"): `sluice serve` with `oidc` pointing at a stub issuer
(stub_issuer.py), real clients with IdP tokens, `sluice login` (device flow) and `sluice token print`,
and the Claude Code CLI in gateway mode with `apiKeyHelper` = `sluice token print`.

The tests run in file order: the key-rotation test counts JWKS fetches, and the unknown-key test after
it relies on the gateway not fetching again within 30 s."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import openai
import pytest

from conftest import MODEL, SluiceProcess, free_port, server_env, sluice_binary
from stub_issuer import StubIssuer, new_key
from test_claude_code import CLI_TIMEOUT, ClaudeRun, claude_binary


@pytest.fixture(scope="module")
def issuer():
    stub = StubIssuer()
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def gateway(workdir, auth, issuer):
    port = free_port()
    config = workdir / "oidc.json"
    config.write_text(json.dumps({
        "server": {"host": "127.0.0.1", "port": port},
        "upstream": {"simulator": True},
        "oidc": {"issuer": issuer.url, "audience": "sluice", "groupsClaim": "groups", "clientId": issuer.client_id},
        # Engineers may use everything; a Sluice token of the `admins` group still works beside them.
        "policies": [{"source": "group:engineering", "require": "oidc"}, {"source": "group:admins"}],
    }))
    process = SluiceProcess(["serve", "--config", str(config)], port, workdir)
    process.start("/healthz")
    yield process
    process.stop()


def chat(gateway: SluiceProcess, token: str, prompt: str = "hi [[sim chunks=3]]"):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    stream = client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": prompt}])
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def refusal(gateway: SluiceProcess, token: str) -> tuple[int, str]:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    message = raised.value.response.json()["error"]["message"]
    assert token not in message and token[-20:] not in raised.value.response.text
    return raised.value.status_code, message


def audit(gateway: SluiceProcess, event: str, count: int | None = None) -> list[dict]:
    """The audit lines of one kind. A client may see a stream's `[DONE]` just before the gateway
    writes the response line, so wait (briefly) until there are `count` of them."""
    deadline = time.time() + 5
    while True:
        lines = [json.loads(line) for line in gateway.log().splitlines() if f'"event":"{event}"' in line]
        if count is None or len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_an_idp_token_streams_and_the_audit_line_names_its_identity(gateway, issuer, token):
    before = len(audit(gateway, "response"))
    assert chat(gateway, issuer.mint(email="ana@corp.example", groups=["engineering"]))
    line = audit(gateway, "response", before + 1)[-1]
    assert line["identity"] == "ana@corp.example" and line["groups"] == ["engineering"]
    assert line["auth"] == "oidc" and line["issuer"] == issuer.url and line["status"] == 200
    # Sluice tokens keep working beside IdP tokens.
    assert chat(gateway, token)
    assert audit(gateway, "response", before + 2)[-1]["auth"] == "token"


def test_each_bad_token_gets_its_own_401(gateway, issuer):
    good = {"email": "ana@corp.example", "groups": ["engineering"]}
    cases = {
        "expired": issuer.mint(expires_in=-300, **good),
        "audience": issuer.mint(audience="another-api", **good),
        "issuer": issuer.mint(issuer="https://evil.example.com", **good),
        "signature": issuer.mint(key=new_key(), **good),  # the right kid, another key
        "none": issuer.mint(alg="none", **good),
        "hs256": issuer.mint(alg="HS256", **good),
    }
    messages = {}
    for name, bad in cases.items():
        status, message = refusal(gateway, bad)
        assert status == 401, (name, message)
        messages[name] = message
    assert "expired" in messages["expired"] and "audience" in messages["audience"] and "another issuer" in messages["issuer"]
    assert "signature" in messages["signature"] and "algorithm" in messages["none"] and "algorithm" in messages["hs256"]
    assert len(set(messages.values())) == 5  # none and HS256 share the algorithm refusal
    reasons = [line["reason"] for line in audit(gateway, "refused")[-6:]]
    assert reasons == ["oidc_expired", "oidc_wrong_audience", "oidc_wrong_issuer", "oidc_bad_signature", "oidc_algorithm",
                       "oidc_algorithm"]
    # A group no policy names: authenticated, then denied.
    status, message = refusal(gateway, issuer.mint(email="eve@corp.example", groups=["marketing"]))
    assert status == 403 and "eve@corp.example" in message


def test_a_rotated_key_works_at_once_with_one_jwks_fetch(gateway, issuer):
    before = issuer.jwks_fetches
    issuer.rotate()
    assert chat(gateway, issuer.mint(email="ana@corp.example", groups=["engineering"]))
    assert chat(gateway, issuer.mint(email="bo@corp.example", groups=["engineering"]))
    assert issuer.jwks_fetches == before + 1


def test_an_unknown_key_is_refused_without_another_fetch(gateway, issuer):
    before = issuer.jwks_fetches
    status, message = refusal(gateway, issuer.mint(kid="not-published", email="x@corp.example", groups=["engineering"]))
    assert status == 401 and "key" in message
    assert issuer.jwks_fetches == before


@pytest.fixture(scope="module")
def signed_in(gateway, issuer, workdir):
    """`sluice login` against the stub, in a HOME of its own; the stub confirms the code after the
    CLI's first poll. Tokens live 30 s, so every `sluice token print` has to refresh."""
    issuer.token_lifetime = 30
    home = Path(tempfile.mkdtemp(prefix="login-home-", dir=workdir))
    env = {**server_env(home), "HOME": str(home)}
    login = subprocess.run([str(sluice_binary()), "login", "--gateway", gateway.url], env=env, capture_output=True,
                           text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    assert "enter the code ABCD-" in login.stderr and issuer.url + "/activate" in login.stderr
    return home, env


def test_login_stores_the_credentials_privately_and_token_print_works_as_a_bearer(signed_in, gateway, issuer):
    home, env = signed_in
    credentials = home / ".config" / "sluice" / "credentials"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert oct(credentials.parent.stat().st_mode & 0o777) == "0o700"
    assert json.loads(credentials.read_text())["refreshToken"]
    grants = len(issuer.grants)
    printed = subprocess.run([str(sluice_binary()), "token", "print"], env=env, capture_output=True, text=True, timeout=30)
    assert printed.returncode == 0, printed.stderr
    token = printed.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    assert issuer.grants[grants:] == ["refresh_token"], "a token with under a minute left is refreshed"
    before = len(audit(gateway, "response"))
    assert chat(gateway, token)
    assert audit(gateway, "response", before + 1)[-1]["identity"] == "dev@corp.example"


def test_claude_code_with_api_key_helper(signed_in, gateway):
    home, env = signed_in
    claude_home = Path(tempfile.mkdtemp(prefix="claude-oidc-home-", dir=home))
    (claude_home / ".claude").mkdir()
    (claude_home / "tmp").mkdir()
    (claude_home / ".claude" / "settings.json").write_text(json.dumps({"apiKeyHelper": f"{sluice_binary()} token print"}))
    cli_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(claude_home),
        "TMPDIR": str(claude_home / "tmp"), "XDG_CONFIG_HOME": str(home / ".config"),
        "ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_MODEL": MODEL, "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5-20251001",
        "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NO_PROXY": "127.0.0.1,localhost", "CLAUDE_CODE_MAX_RETRIES": "1",
    }
    started = time.time()
    completed = subprocess.run([str(claude_binary()), "-p", "Say hello [[sim chunks=3]]", "--output-format", "json",
                                "--debug-file", str(claude_home / "debug.log")],
                               env=cli_env, cwd=claude_home, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                               stdin=subprocess.DEVNULL)
    run = ClaudeRun(completed, [], claude_home, "json")
    assert completed.returncode == 0, run.describe()
    assert run.result["is_error"] is False
    time.sleep(0.5)  # the last stream's response line (see `audit`)
    lines = [line for line in audit(gateway, "response") if line["route"] == "/v1/messages"]
    assert lines and lines[-1]["identity"] == "dev@corp.example" and lines[-1]["auth"] == "oidc"
    assert time.time() - started < CLI_TIMEOUT
