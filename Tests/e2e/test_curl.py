"""`curl -N` against the streaming route, as the README would show it."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
from botocore.eventstream import EventStreamBuffer

from conftest import MODEL

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl_chat(sluice, token: str, prompt: str, *extra: str, stream_options: bool = True) -> list[str]:
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    if stream_options:
        body["stream_options"] = {"include_usage": True}
    return ["curl", "-N", "-sS", "--max-time", "30", "-D", "-",
            f"{sluice.openai_base}/chat/completions",
            "-H", "Content-Type: application/json",
            "-H", f"Authorization: Bearer {token}",
            "-d", json.dumps(body), *extra]


def run(command: list[str]) -> tuple[int, str, str]:
    """Runs curl; bytes in, so the CRLFs of the response head survive (text mode would fold them)."""
    completed = subprocess.run(command, capture_output=True, timeout=60)
    return completed.returncode, completed.stdout.decode(), completed.stderr.decode()


def split_head(output: str) -> tuple[str, dict[str, str], str]:
    head, _, body = output.partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    return status, headers, body


def test_curl_streams_sse(sluice, token):
    code, out, err = run(curl_chat(sluice, token, "Say hello from curl [[sim echo=1 chunk_size=6]]"))
    assert code == 0, err
    status, headers, body = split_head(out)
    assert status.startswith("HTTP/1.1 200")
    assert headers["content-type"].startswith("text/event-stream")
    # every event is one `data: …` line followed by a blank line
    assert body.endswith("data: [DONE]\n\n")
    events = body.split("\n\n")[:-1]
    assert all(event.startswith("data: ") and "\n" not in event for event in events), events
    payloads = [event[len("data: "):] for event in events]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith("chatcmpl-")
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Say hello from curl"
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish == ["stop"]
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert usage["completion_tokens"] == 4  # 19 characters in pieces of 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_curl_sees_chunks_as_they_are_produced(sluice, token):
    """With 300 ms between upstream frames, the first SSE line must reach curl long before the last:
    the gateway streams, it does not buffer the answer."""
    process = subprocess.Popen(curl_chat(sluice, token, "slowly [[sim chunks=5 gap_ms=300]]", stream_options=False),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    arrivals = []
    try:
        for line in process.stdout:
            if line.startswith("data: "):
                arrivals.append((time.monotonic() - started, line.strip()))
    finally:
        process.wait(timeout=30)
    assert process.returncode == 0
    assert arrivals[-1][1] == "data: [DONE]"
    content_times = [t for t, line in arrivals if '"content":"' in line and '"content":""' not in line]
    assert len(content_times) == 5
    assert content_times[-1] - content_times[0] > 0.9, content_times  # 4 gaps of 0.3 s seen by the client


def test_curl_in_stream_error_event(sluice, token):
    code, out, err = run(curl_chat(sluice, token, "break [[sim chunks=6 exception_after=3 exception=throttlingException]]"))
    assert code == 0, err
    status, _, body = split_head(out)
    assert status.startswith("HTTP/1.1 200")
    payloads = [event[len("data: "):] for event in body.split("\n\n") if event]
    assert "[DONE]" not in payloads, "a failed stream must not end with [DONE]"
    last = json.loads(payloads[-1])
    assert set(last) == {"error"}
    assert last["error"]["message"] and last["error"]["type"]
    assert all("error" not in json.loads(p) for p in payloads[:-1])


def test_curl_error_before_first_byte(sluice, token):
    code, out, err = run(curl_chat(sluice, token, "no [[sim status=429 retry_after=3]]"))
    assert code == 0, err
    status, headers, body = split_head(out)
    assert status.startswith("HTTP/1.1 429")
    assert headers["retry-after"] == "3"
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["type"] == "rate_limit_error" and error["message"]


def test_curl_bedrock_converse_stream_frames(sluice, token):
    """The raw event stream on /bedrock, decoded with botocore's CRC-checking frame parser."""
    completed = subprocess.run(
        ["curl", "-N", "-sS", "--max-time", "30", "--output", "-",
         f"{sluice.bedrock_base}/model/{MODEL}/converse-stream",
         "-H", "Content-Type: application/json", "-H", f"Authorization: Bearer {token}",
         "-d", json.dumps({"messages": [{"role": "user", "content": [{"text": "frames please [[sim echo=1]]"}]}]})],
        capture_output=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    buffer = EventStreamBuffer()
    buffer.add_data(completed.stdout)
    frames = list(buffer)  # raises on a bad prelude or message CRC
    kinds = [frame.headers[":event-type"] for frame in frames]
    assert all(frame.headers[":message-type"] == "event" for frame in frames)
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    text = "".join(json.loads(f.payload)["delta"]["text"] for f in frames if f.headers[":event-type"] == "contentBlockDelta")
    assert text == "frames please"


def test_readme_quick_start(sluice, auth):
    """The README's quick start, verbatim but for the port (and the token, once Sluice requires one):
    an alias model, include_usage."""
    token_header = ["-H", f"Authorization: Bearer {auth.token}"] if auth.enforced else []
    code, out, err = run(["curl", "-N", "-sS", "--max-time", "30", "-D", "-", f"{sluice.openai_base}/chat/completions",
                          *token_header, "-H", "Content-Type: application/json", "-d", """{
  "model": "claude-sonnet", "stream": true, "stream_options": {"include_usage": true},
  "messages": [{"role": "user", "content": "Hello [[sim chunks=5 gap_ms=100]]"}]}"""])
    assert code == 0, err
    status, headers, body = split_head(out)
    assert status.startswith("HTTP/1.1 200") and headers["content-type"].startswith("text/event-stream")
    payloads = [event[len("data: "):] for event in body.split("\n\n") if event]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert {c["model"] for c in chunks} == {"claude-sonnet"}, "chunks name the model as requested"
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) == 5
    assert chunks[-1]["usage"]["completion_tokens"] == 5
