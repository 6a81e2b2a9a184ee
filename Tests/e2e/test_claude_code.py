"""The real Claude Code CLI (bundled in the claude-agent-sdk wheel) in Bedrock mode, print mode, with
Sluice as its Bedrock endpoint. A recording proxy sits between the CLI and Sluice so the tests can
compare what went over the wire with /work/shared/CLAUDE_CODE.md (sections 2, 4, 5, 6)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import HAIKU_MODEL, MODEL, OPUS_MODEL
from recorder import Recorder

CLI_TIMEOUT = 120
STREAM_PATH = f"/bedrock/model/{MODEL}/invoke-with-response-stream"
INVOKE_PATH = f"/bedrock/model/{MODEL}/invoke"
LIST_PROFILES_PATH = "/bedrock/inference-profiles?type=SYSTEM_DEFINED"


def claude_binary() -> Path:
    import claude_agent_sdk

    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    assert path.exists(), f"the claude-agent-sdk wheel has no bundled CLI at {path}"
    return path


@pytest.fixture(scope="module")
def cli_front(sluice, workdir):
    """Claude Code -> recorder -> Sluice. The CLI's fresh HOMEs go under the session's temp folder."""
    recorder = Recorder(sluice.url)
    recorder.home_parent = workdir
    recorder.start()
    yield recorder
    recorder.stop()


class ClaudeRun:
    def __init__(self, completed: subprocess.CompletedProcess, requests, home: Path, output_format: str) -> None:
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.requests = requests
        self.home = home
        if output_format == "json":
            self.result = json.loads(self.stdout)
            self.events = [self.result]
        else:
            self.events = [json.loads(line) for line in self.stdout.splitlines() if line.strip()]
            self.result = self.events[-1]

    def debug_log(self) -> str:
        path = self.home / "debug.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def describe(self) -> str:
        lines = [f"exit {self.returncode}", "stdout: " + self.stdout[-3000:], "stderr: " + self.stderr[-3000:]]
        lines += [f"  {r.method} {r.path} -> {r.status}" for r in self.requests]
        return "\n".join(lines)


def run_claude(front: Recorder, token: str, prompt: str, *args: str, output_format: str = "json",
               skip_auth: bool = True, extra_env: dict[str, str] | None = None) -> ClaudeRun:
    home = Path(tempfile.mkdtemp(prefix="claude-home-", dir=getattr(front, "home_parent", None)))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),  # the CLI's scratch files and sockets stay in the test's folder
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_BEDROCK_BASE_URL": front.url + "/bedrock",
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": OPUS_MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": HAIKU_MODEL,
        "AWS_REGION": "us-east-1",
        "AWS_BEARER_TOKEN_BEDROCK": token,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        # bounded retries: a refused or failing call must not keep a test busy for minutes
        "CLAUDE_CODE_MAX_RETRIES": "2",
    }
    if skip_auth:
        env["CLAUDE_CODE_SKIP_BEDROCK_AUTH"] = "1"
    (home / "tmp").mkdir()
    env.update(extra_env or {})
    front.clear()
    command = [str(claude_binary()), "-p", prompt, "--output-format", output_format,
               "--debug-file", str(home / "debug.log"), *args]
    if output_format == "stream-json":
        command.append("--verbose")
    completed = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                               stdin=subprocess.DEVNULL)
    return ClaudeRun(completed, front.snapshot(), home, output_format)


def model_calls(run: ClaudeRun) -> list[str]:
    return [r.path for r in run.requests if r.method == "POST" and "/model/" in r.path]


def test_print_mode_answer(cli_front, token):
    run = run_claude(cli_front, token, "Please repeat: otters hold hands while sleeping [[sim echo=1]]")
    assert run.returncode == 0, run.describe()
    result = run.result
    assert result["type"] == "result" and result["subtype"] == "success", run.describe()
    assert result["is_error"] is False
    assert result["result"] == "Please repeat: otters hold hands while sleeping"
    assert result["stop_reason"] == "end_turn"
    assert result["num_turns"] == 1
    # the usage the CLI reports comes from message_start / message_delta (CLAUDE_CODE.md 4.1)
    assert result["usage"]["output_tokens"] == 4  # 46 characters in pieces of 12
    assert result["usage"]["input_tokens"] > 1000
    assert MODEL in result["modelUsage"]
    # CLAUDE_CODE.md 2: ListInferenceProfiles, then exactly one streaming call; no probes (tiers pinned)
    assert [(r.method, r.path) for r in run.requests] == [("GET", LIST_PROFILES_PATH), ("POST", STREAM_PATH)], run.describe()
    stream_call = run.requests[1]
    assert stream_call.status == 200
    assert stream_call.response_headers["content-type"] == "application/vnd.amazon.eventstream"
    assert stream_call.headers["authorization"] == f"Bearer {token}"
    assert stream_call.headers["user-agent"].startswith("claude-cli/")
    body = json.loads(stream_call.body)
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == "bedrock-2023-05-31"


def test_print_mode_reads_inference_profiles(cli_front, token):
    """The CLI's AWS SDK must be able to parse Sluice's ListInferenceProfiles reply (otherwise it logs
    'Failed to list Bedrock inference profiles, falling back to hardcoded models'). SKIP unset, so the
    control-plane call carries the token (CLAUDE_CODE.md 6)."""
    run = run_claude(cli_front, token, "profiles [[sim echo=1]]", skip_auth=False)
    assert run.returncode == 0, run.describe()
    assert run.requests[0].path == LIST_PROFILES_PATH and run.requests[0].status == 200
    failures = [line for line in run.debug_log().splitlines() if "inference profile" in line.lower() and "[ERROR]" in line]
    assert failures == [], "\n".join(failures)


def test_context_counts_tokens(cli_front, token):
    """`/context` resolves the profile (GetInferenceProfile) and counts tokens with ~33 CountTokens
    calls on the foundation model (CLAUDE_CODE.md 2, 2.2, 2.5)."""
    run = run_claude(cli_front, token, "/context", skip_auth=False)
    assert run.returncode == 0, run.describe()
    get_profile = [r for r in run.requests if r.method == "GET" and r.path.startswith("/bedrock/inference-profiles/")]
    assert [unquote(r.path) for r in get_profile] == [f"/bedrock/inference-profiles/{MODEL}"]
    assert get_profile[0].status == 200
    count_calls = [r for r in run.requests if r.path.endswith("/count-tokens")]
    debug_errors = [line for line in run.debug_log().splitlines() if "[ERROR]" in line and "Bedrock" in line]
    assert count_calls, "no CountTokens call: the CLI fell back to estimates\n" + "\n".join(debug_errors)
    assert {unquote(r.path) for r in count_calls} == {"/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens"}
    assert all(r.status == 200 for r in count_calls)
    assert "count unavailable" not in run.debug_log()


def test_tool_use_turn(cli_front, token):
    """The model asks for Bash; the CLI runs it and sends the tool_result back; the simulator answers."""
    tool_input = {"command": "echo tool-ran-$((6*7)) | tee marker.txt", "description": "e2e echo"}
    prompt = f"Run the echo [[sim tools=1 tool_input={json.dumps(tool_input)}]]"
    run = run_claude(cli_front, token, prompt, "--tools", "Bash", "--allowedTools", "Bash",
                     output_format="stream-json")
    assert run.returncode == 0, run.describe()
    tool_uses = [block for event in run.events if event.get("type") == "assistant"
                 for block in event["message"]["content"] if block["type"] == "tool_use"]
    assert [(t["name"], t["input"]) for t in tool_uses] == [("Bash", tool_input)], run.describe()
    tool_results = [block for event in run.events if event.get("type") == "user"
                    for block in event["message"]["content"] if isinstance(block, dict) and block.get("type") == "tool_result"]
    assert len(tool_results) == 1
    assert tool_results[0]["is_error"] is False
    assert tool_results[0]["tool_use_id"] == tool_uses[0]["id"]
    assert "tool-ran-42" in json.dumps(tool_results[0]["content"])
    assert (run.home / "marker.txt").read_text().strip() == "tool-ran-42"
    result = run.result
    assert result["type"] == "result" and result["is_error"] is False
    assert result["num_turns"] == 2
    assert result["result"], "the final turn has text"
    assert result["permission_denials"] == []
    # two streaming calls; the second carries the tool_result, the assistant turn sent back verbatim
    assert model_calls(run) == [STREAM_PATH, STREAM_PATH], run.describe()
    follow_up = json.loads(run.requests[-1].body)
    assistant, last = follow_up["messages"][-2], follow_up["messages"][-1]
    assert assistant["role"] == "assistant"
    assert [b["type"] for b in assistant["content"] if b["type"] == "tool_use"] == ["tool_use"]
    assert last["role"] == "user" and last["content"][0]["type"] == "tool_result"
    assert last["content"][0]["tool_use_id"] == tool_uses[0]["id"]


def test_bash_turn_with_signed_thinking_against_a_strict_model(cli_front, token):
    """Bedrock mode against a model that takes only interleaved thinking (as one Bedrock model does):
    every beta Claude Code adds beyond it would be a 400 `invalid beta flag`; Sluice removes them from
    the body's `anthropic_beta` before the call, and the Bash turn with signed thinking completes."""
    tool_input = {"command": "echo strict-ran-$((6*7)) | tee marker.txt", "description": "e2e echo"}
    prompt = (f"Run the echo [[sim reasoning=1 tools=1 accept_betas=interleaved-thinking-2025-05-14 "
              f"tool_input={json.dumps(tool_input)}]]")
    # ANTHROPIC_BETAS: betas a team adds (the CLI puts them in the body); this CLI with only Bash
    # sends interleaved thinking alone, and the model does not take these two.
    run = run_claude(cli_front, token, prompt, "--tools", "Bash", "--allowedTools", "Bash",
                     output_format="stream-json",
                     extra_env={"ANTHROPIC_BETAS": "context-management-2025-06-27,tool-search-tool-2025-10-19"})
    assert run.returncode == 0, run.describe()
    assert model_calls(run) == [STREAM_PATH, STREAM_PATH], run.describe()
    assert all(r.status == 200 for r in run.requests if "/model/" in r.path), run.describe()
    sent = [json.loads(r.body) for r in run.requests if "/model/" in r.path]
    # Claude Code did send more than the model takes: the repair, not a quiet client, is what is tested.
    assert any(set(body.get("anthropic_beta", [])) - {"interleaved-thinking-2025-05-14"} for body in sent), sent[0].get("anthropic_beta")
    tool_uses = [block for event in run.events if event.get("type") == "assistant"
                 for block in event["message"]["content"] if block["type"] == "tool_use"]
    assert [(t["name"], t["input"]) for t in tool_uses] == [("Bash", tool_input)], run.describe()
    assert (run.home / "marker.txt").read_text().strip() == "strict-ran-42"
    assistant = sent[-1]["messages"][-2]
    assert any(block.get("type") == "thinking" and block.get("signature") for block in assistant["content"]), assistant
    assert run.result["is_error"] is False and run.result["num_turns"] == 2


@pytest.mark.parametrize("fault", ["exception_after=2 exception=throttlingException",
                                   "exception_after=3 exception=modelStreamErrorException",
                                   "corrupt_after=2"])
def test_stream_fault_falls_back_to_invoke(cli_front, token, fault):
    """An in-stream exception or a corrupt upstream frame: Sluice ends the stream with an exception
    frame, the CLI re-asks on /invoke (which the simulator answers normally) and succeeds."""
    run = run_claude(cli_front, token, f"Recover: the kettle sings [[sim echo=1 {fault}]]")
    assert run.returncode == 0, run.describe()
    assert run.result["is_error"] is False
    assert run.result["result"] == "Recover: the kettle sings"
    assert model_calls(run) == [STREAM_PATH, INVOKE_PATH], run.describe()
    stream_call, invoke_call = [r for r in run.requests if "/model/" in r.path]
    assert stream_call.body == invoke_call.body, "the fallback repeats the same body"
    assert invoke_call.status == 200 and invoke_call.response_headers["content-type"].startswith("application/json")


def test_throttling_is_retried_then_reported(cli_front, token):
    """429 with Retry-After: the CLI retries (budget 1 here) and then reports the error, exit 1."""
    run = run_claude(cli_front, token, "Too busy [[sim status=429 retry_after=1]]",
                     extra_env={"CLAUDE_CODE_MAX_RETRIES": "1"})
    assert run.returncode == 1, run.describe()
    assert run.result["is_error"] is True
    assert run.result["api_error_status"] == 429
    assert "429" in run.result["result"]
    calls = [r for r in run.requests if "/model/" in r.path]
    assert [r.path for r in calls] == [STREAM_PATH, STREAM_PATH]
    assert all(r.status == 429 for r in calls)
    assert calls[0].response_headers["x-amzn-errortype"].startswith("ThrottlingException")
    assert calls[0].response_headers.get("retry-after") == "1"


def test_validation_error_is_final(cli_front, token):
    """400: one extra attempt (without the tool-search beta), then `API Error: 400 <message>`."""
    run = run_claude(cli_front, token, "Bad [[sim status=400]]", extra_env={"CLAUDE_CODE_MAX_RETRIES": "0"})
    assert run.returncode == 1, run.describe()
    assert run.result["is_error"] is True
    assert run.result["api_error_status"] == 400
    assert "400" in run.result["result"]
    assert len(model_calls(run)) == 2


def test_bearer_token_on_every_call_without_skip(cli_front, token):
    """The recommended setup once tokens exist (CLAUDE_CODE.md 6, "Simplest"): SKIP unset and the token
    in AWS_BEARER_TOKEN_BEDROCK. Every call, control plane included, carries it; with both tiers
    pinned there are no availability probes."""
    run = run_claude(cli_front, token, "Token everywhere [[sim echo=1]]", skip_auth=False)
    assert run.returncode == 0, run.describe()
    assert run.result["result"] == "Token everywhere"
    assert [(r.method, r.path) for r in run.requests] == [("GET", LIST_PROFILES_PATH), ("POST", STREAM_PATH)]
    assert all(r.headers.get("authorization") == f"Bearer {token}" for r in run.requests)
