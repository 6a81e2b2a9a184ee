"""The Anthropic Messages API (`/v1/messages`) in front of Bedrock: the anthropic SDK, and the real
Claude Code CLI in gateway mode (ANTHROPIC_BASE_URL = Sluice, ANTHROPIC_AUTH_TOKEN = a Sluice token)
against a simulator model that accepts only `interleaved-thinking-2025-05-14`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import anthropic
import pytest

from recorder import Recorder
from test_claude_code import ClaudeRun, claude_binary, CLI_TIMEOUT

MODEL = "claude-sonnet-4-5-20250929"
STRICT = "accept_betas=interleaved-thinking-2025-05-14"


@pytest.fixture
def client(sluice, token):
    return anthropic.Anthropic(base_url=sluice.url, api_key=token, max_retries=0)


def test_messages_non_streamed(client):
    message = client.messages.create(model=MODEL, max_tokens=100,
                                     messages=[{"role": "user", "content": "Say hi [[sim chunks=3]]"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_messages_streamed_text(client):
    deltas = []
    with client.messages.stream(model=MODEL, max_tokens=100,
                                messages=[{"role": "user", "content": "Count [[sim chunks=6]]"}]) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas.append(event.delta.text)
        final = stream.get_final_message()
    assert len(deltas) >= 6
    assert final.content[0].text == "".join(deltas)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_tool_use_and_signed_thinking_round_trip(client):
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    prompt = 'Weather? [[sim reasoning=1 tools=1 tool_input={"city":"Paris"}]]'
    with client.messages.stream(model=MODEL, max_tokens=2000, tools=tools,
                                thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": prompt}]) as stream:
        first = stream.get_final_message()
    kinds = [block.type for block in first.content]
    assert "thinking" in kinds and "tool_use" in kinds, kinds
    thinking = next(block for block in first.content if block.type == "thinking")
    assert thinking.signature, "the thinking block carries its signature"
    tool_use = next(block for block in first.content if block.type == "tool_use")
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    assert first.stop_reason == "tool_use"
    # The assistant turn, thinking and signature included, goes back with the tool's result.
    second = client.messages.create(
        model=MODEL, max_tokens=2000, tools=tools, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": prompt},
                  {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}]}])
    assert second.stop_reason == "end_turn"
    assert any(block.type == "text" for block in second.content)


def test_count_tokens_is_bedrocks_count(client, sluice):
    messages = [{"role": "user", "content": "How many tokens is this? " * 20}]
    counted = client.messages.count_tokens(model=MODEL, messages=messages)
    # The simulator's CountTokens answer for the same InvokeModel body, asked directly.
    invoke_body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "messages": messages, "max_tokens": 1},
                             separators=(",", ":")).encode()
    assert counted.input_tokens > 0
    simulator = sluice.simulator_url()
    assert simulator, "the server names its simulator's endpoint in its log"
    if simulator:
        request = urllib.request.Request(
            f"{simulator}/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens", method="POST",
            data=json.dumps({"input": {"invokeModel": {"body": base64.b64encode(invoke_body).decode()}}}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            direct = json.load(response)["inputTokens"]
        # Same input; the gateway's body differs only in member order and spacing (bytes / 4 in the simulator).
        assert abs(counted.input_tokens - direct) <= 4


def test_models_list_in_anthropics_shape(client):
    models = client.models.list()
    ids = [model.id for model in models.data]
    assert "claude-sonnet-4-5-20250929" in ids
    assert all(model.type == "model" and model.display_name for model in models.data)
    # By an alias: the answer names the model by its id, as Anthropic's does.
    assert client.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5-20250929"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("no-such-model")


def test_errors_in_anthropics_shape(sluice, token):
    bad = anthropic.Anthropic(base_url=sluice.url, api_key="sk-sluice-not-a-real-token", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    good = anthropic.Anthropic(base_url=sluice.url, api_key=token, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        good.messages.create(model=MODEL, max_tokens=10, messages="not a list")
    assert caught.value.body["type"] == "error"
    with pytest.raises(anthropic.RateLimitError):
        good.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x [[sim status=429]]"}])


def test_beta_flags_never_break_a_request(client):
    """A model that takes only interleaved thinking: Claude Code's five betas are repaired before the call."""
    betas = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
             "thinking-token-count-2026-05-13", "advanced-tool-use-2025-11-20"]
    message = client.messages.create(
        model=MODEL, max_tokens=100, extra_headers={"anthropic-beta": ",".join(betas)},
        extra_body={"context_management": {"edits": []}},
        messages=[{"role": "user", "content": f"hi [[sim chunks=2 {STRICT}]]"}])
    assert message.stop_reason == "end_turn"


@pytest.fixture(scope="module")
def gateway_front(sluice, workdir):
    recorder = Recorder(sluice.url)
    recorder.home_parent = workdir
    recorder.start()
    yield recorder
    recorder.stop()


def run_gateway_mode(front: Recorder, token: str, prompt: str, *args: str) -> ClaudeRun:
    home = Path(tempfile.mkdtemp(prefix="claude-gw-home-", dir=getattr(front, "home_parent", None)))
    (home / "tmp").mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": str(home), "TMPDIR": str(home / "tmp"),
        "ANTHROPIC_BASE_URL": front.url, "ANTHROPIC_AUTH_TOKEN": token, "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5-20251001",
        "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "NO_PROXY": "127.0.0.1,localhost", "CLAUDE_CODE_MAX_RETRIES": "2",
    }
    front.clear()
    command = [str(claude_binary()), "-p", prompt, "--output-format", "stream-json", "--verbose",
               "--debug-file", str(home / "debug.log"), *args]
    completed = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                               stdin=subprocess.DEVNULL)
    return ClaudeRun(completed, front.snapshot(), home, "stream-json")


def test_claude_code_gateway_mode_bash_turn_with_signed_thinking(gateway_front, token):
    tool_input = {"command": "echo gateway-ran-$((6*7)) | tee marker.txt", "description": "e2e echo"}
    prompt = f"Run the echo [[sim reasoning=1 tools=1 {STRICT} tool_input={json.dumps(tool_input)}]]"
    run = run_gateway_mode(gateway_front, token, prompt, "--tools", "Bash", "--allowedTools", "Bash")
    assert run.returncode == 0, run.describe()
    calls = [r for r in run.requests if r.method == "POST" and r.path.startswith("/v1/messages")]
    assert calls and all(r.status == 200 for r in calls), run.describe()
    assert all(r.path.startswith("/v1/messages?beta=true") or r.path == "/v1/messages" for r in calls)
    tool_uses = [block for event in run.events if event.get("type") == "assistant"
                 for block in event["message"]["content"] if block["type"] == "tool_use"]
    assert [(t["name"], t["input"]) for t in tool_uses] == [("Bash", tool_input)], run.describe()
    assert (run.home / "marker.txt").read_text().strip() == "gateway-ran-42"
    # The follow-up carries the signed thinking block back, and the session id is stable.
    follow_up = json.loads(calls[-1].body)
    assistant = follow_up["messages"][-2]
    assert any(block.get("type") == "thinking" and block.get("signature") for block in assistant["content"]), assistant
    assert run.result["is_error"] is False and run.result["num_turns"] == 2
