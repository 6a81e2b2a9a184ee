"""The real Codex CLI (the `codex` binary of PyPI's openai-codex-cli-bin wheel), `codex exec`, with Sluice
as a custom model provider speaking the Responses API (`wire_api = "responses"`). A recording proxy sits
between the CLI and Sluice so the tests can see what Codex sent."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from recorder import Recorder

CLI_TIMEOUT = 120
MODEL = "claude-sonnet"

# What README.md tells a team to put in ~/.codex/config.toml (with their own Sluice URL).
# Bedrock has no hosted web search, so it is turned off; Sluice refuses it by name otherwise.
CONFIG = """\
model = "{model}"
model_provider = "sluice"
web_search = "{web_search}"

[model_providers.sluice]
name = "Sluice"
base_url = "{base}/v1"
env_key = "SLUICE_API_KEY"
wire_api = "responses"
"""


def codex_binary() -> Path:
    import codex_cli_bin

    return codex_cli_bin.bundled_codex_path()


@pytest.fixture(scope="module")
def codex_front(sluice, workdir):
    recorder = Recorder(sluice.url)
    recorder.start()
    yield recorder
    recorder.stop()


class CodexRun:
    def __init__(self, completed: subprocess.CompletedProcess, requests, workspace: Path) -> None:
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.requests = requests
        self.workspace = workspace

    @property
    def calls(self):
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

    def describe(self) -> str:
        lines = [f"exit {self.returncode}", "stdout: " + self.stdout[-3000:], "stderr: " + self.stderr[-3000:]]
        lines += [f"  {r.method} {r.path} -> {r.status}" for r in self.requests]
        return "\n".join(lines)


def run_codex(front: Recorder, token: str, workdir: Path, prompt: str, web_search: str = "disabled") -> CodexRun:
    home = Path(tempfile.mkdtemp(prefix="codex-home-", dir=workdir))
    codex_home = home / ".codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(CONFIG.format(model=MODEL, base=front.url, web_search=web_search))
    workspace = home / "work"
    workspace.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "SLUICE_API_KEY": token,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    front.clear()
    # --dangerously-bypass-approvals-and-sandbox: CI containers cannot run Codex's bubblewrap sandbox;
    # the command runs in the test's own folder.
    command = [str(codex_binary()), "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
               "--cd", str(workspace), prompt]
    completed = subprocess.run(command, env=env, cwd=workspace, capture_output=True, text=True,
                               timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
    return CodexRun(completed, front.snapshot(), workspace)


def test_text_turn(codex_front, token, workdir):
    run = run_codex(codex_front, token, workdir, "Say something [[sim chunks=4]]")
    assert run.returncode == 0, run.describe()
    assert len(run.calls) == 1 and run.calls[0].status == 200, run.describe()
    sent = json.loads(run.calls[0].body)
    # What Codex sends and Sluice must take: a stream, its function tools and its namespace of
    # sub-agent tools, encrypted reasoning, the cache key and client metadata.
    assert sent["stream"] is True and sent["store"] is False
    assert "reasoning.encrypted_content" in sent["include"]
    assert any(tool["type"] == "namespace" for tool in sent["tools"]), [t["type"] for t in sent["tools"]]
    assert sent["prompt_cache_key"]
    # The simulator's answer (a slice of its canned text) is what Codex prints as the final message.
    assert run.stdout.strip(), run.describe()


def test_shell_tool_turn(codex_front, token, workdir):
    tool_input = {"cmd": "echo codex-ran-$((6*7)) | tee marker.txt"}
    run = run_codex(codex_front, token, workdir, f"Run the echo [[sim tools=1 tool_input={json.dumps(tool_input)}]]")
    assert run.returncode == 0, run.describe()
    # Turn 1: the model calls exec_command; Codex runs it. Turn 2: its output goes back; the model answers.
    assert len(run.calls) == 2 and all(call.status == 200 for call in run.calls), run.describe()
    assert (run.workspace / "marker.txt").read_text().strip() == "codex-ran-42"
    follow_up = json.loads(run.calls[1].body)
    calls = [item for item in follow_up["input"] if item.get("type") == "function_call"]
    outputs = [item for item in follow_up["input"] if item.get("type") == "function_call_output"]
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("exec_command", tool_input)], calls
    assert outputs and outputs[0]["call_id"] == calls[0]["call_id"]
    assert "codex-ran-42" in json.dumps(outputs[0]["output"]), outputs
    assert run.stdout.strip(), run.describe()


def test_hosted_web_search_is_refused_by_name(codex_front, token, workdir):
    """Codex's default config sends a hosted web_search tool, which Bedrock cannot run: the error Codex
    shows names it and the config line that turns it off."""
    run = run_codex(codex_front, token, workdir, "Search [[sim chunks=1]]", web_search="cached")
    assert run.returncode != 0, run.describe()
    assert run.calls and all(call.status == 400 for call in run.calls), run.describe()
    output = run.stdout + run.stderr
    assert "web_search" in output and 'web_search = \\"disabled\\"' in output, run.describe()
