"""The official `openai` Python SDK against Sluice's OpenAI route (`/v1`)."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import openai
import pytest

from conftest import MODEL


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


WEATHER_TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}},
]


def tiny_png() -> bytes:
    """A valid 2x2 RGB PNG, built by hand."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_non_streamed_chat(openai_client):
    completion = openai_client.chat.completions.create(
        model=MODEL, messages=user("Repeat after me: the heron waits [[sim echo=1]]"))
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Repeat after me: the heron waits"
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_chat_text_and_finish(openai_client):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, messages=user("Echo this streamed line back [[sim echo=1 chunk_size=5]]"))
    chunks = list(stream)
    assert chunks, "no chunks"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1, "every chunk must carry the same id"
    assert all(c.object == "chat.completion.chunk" and c.model == MODEL for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo this streamed line back"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 6  # 28 characters in pieces of 5: really streamed, not one blob
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert all(c.usage is None for c in chunks), "usage only when stream_options.include_usage is set"


def test_stream_include_usage(openai_client):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, stream_options={"include_usage": True},
        messages=user("Count the chunks [[sim chunks=7 cache_read=11 cache_write=5]]"))
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == [], "the usage chunk has an empty choices list"
    assert all(c.usage is None for c in chunks[:-1])
    usage = last.usage
    assert usage.completion_tokens == 7  # the simulator counts one output token per text delta
    assert usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    details = usage.prompt_tokens_details
    assert details.cached_tokens == 11
    # prompt_tokens counts every input token, cached ones included (OpenAI semantics): here input
    # + cache read + cache write, so the uncached part (prompt - cached) is still positive.
    assert (details.model_extra or {}).get("cache_creation_tokens") == 5
    assert usage.prompt_tokens > details.cached_tokens + 5
    text_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(text_chunks) == 7


@pytest.mark.parametrize("finish_stop,expected", [("max_tokens", "length"), ("content_filtered", "content_filter")])
def test_stop_reason_mapping(openai_client, finish_stop, expected):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, messages=user(f"Stop please [[sim chunks=2 stop={finish_stop}]]"))
    finishes = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == [expected]


def test_streamed_two_tool_calls(openai_client):
    tool_input = {"location": "Zürich, \"CH\"", "days": 3}
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, tools=WEATHER_TOOLS,
        messages=user("Weather and time? [[sim tools=2 chunks=1 tool_input=" + json.dumps(tool_input) + "]]"))
    calls: dict[int, dict] = {}
    fragments: dict[int, int] = {}
    finishes = []
    for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        if choice.finish_reason:
            finishes.append(choice.finish_reason)
        for call in choice.delta.tool_calls or []:
            slot = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
            if call.id:
                assert slot["id"] is None, "a tool call id must arrive once"
                slot["id"] = call.id
                assert call.type == "function"
            if call.function and call.function.name:
                assert slot["name"] is None, "a function name must arrive once"
                slot["name"] = call.function.name
            if call.function and call.function.arguments:
                slot["arguments"] += call.function.arguments
                fragments[call.index] = fragments.get(call.index, 0) + 1
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert calls[0]["id"] and calls[1]["id"] and calls[0]["id"] != calls[1]["id"]
    for index in (0, 1):
        assert json.loads(calls[index]["arguments"]) == tool_input
        assert fragments[index] > 1, "arguments should stream in several fragments"
    assert finishes == ["tool_calls"]


def test_non_streamed_tool_calls(openai_client):
    completion = openai_client.chat.completions.create(
        model=MODEL, tools=WEATHER_TOOLS, messages=user('Weather? [[sim tools=2 tool_input={"location":"Oslo"}]]'))
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"location": "Oslo"}] * 2


def test_tool_result_round_trip(openai_client):
    """A second turn carrying the tool result gets a plain text answer (the client's tool loop ends)."""
    first = openai_client.chat.completions.create(
        model=MODEL, tools=WEATHER_TOOLS[:1], messages=user("Weather in Oslo? [[sim tools=1]]"))
    call = first.choices[0].message.tool_calls[0]
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, tools=WEATHER_TOOLS[:1], messages=[
            *user("Weather in Oslo? [[sim tools=1]]"),
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
        ])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def reasoning_of(delta) -> str | None:
    value = getattr(delta, "reasoning_content", None)
    if value is None and delta.model_extra:
        value = delta.model_extra.get("reasoning_content")
    return value


def test_streamed_reasoning_content(openai_client):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, messages=user("Think first [[sim reasoning=1 chunks=2]]"))
    chunks = [c for c in stream if c.choices]
    reasoning = [reasoning_of(c.choices[0].delta) for c in chunks]
    reasoning_text = "".join(r for r in reasoning if r)
    assert sum(1 for r in reasoning if r) == 3  # the simulator sends three reasoning deltas
    text_positions = [i for i, c in enumerate(chunks) if c.choices[0].delta.content]
    reasoning_positions = [i for i, r in enumerate(reasoning) if r]
    assert reasoning_text.strip()
    assert len(text_positions) == 2
    assert max(reasoning_positions) < min(text_positions), "reasoning comes before the answer"


def test_image_part_accepted(openai_client):
    data_url = "data:image/png;base64," + base64.b64encode(tiny_png()).decode()
    completion = openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What colour is this? [[sim echo=1]]"},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]}])
    assert completion.choices[0].message.content == "What colour is this?"
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("status,exception,http_status", [
    (400, openai.BadRequestError, 400),
    (404, openai.NotFoundError, 404),
    (429, openai.RateLimitError, 429),
    (403, openai.InternalServerError, 502),  # upstream AccessDenied = Sluice's own credentials: 502
    (408, openai.InternalServerError, 504),
    (424, openai.InternalServerError, 502),
    (500, openai.InternalServerError, 502),
    (503, openai.InternalServerError, 503),
])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_error_status_maps_to_sdk_exception(openai_client, status, exception, http_status, stream):
    with pytest.raises(exception) as raised:
        result = openai_client.chat.completions.create(
            model=MODEL, stream=stream, messages=user(f"Fail [[sim status={status}]]"))
        if stream:
            list(result)
    error = raised.value
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == http_status
    body = error.response.json()
    assert set(body["error"]) >= {"message", "type"}
    assert body["error"]["message"]
    if status == 400:
        assert body["error"]["type"] == "invalid_request_error"


def test_rate_limit_carries_retry_after(openai_client):
    with pytest.raises(openai.RateLimitError) as raised:
        openai_client.chat.completions.create(model=MODEL, messages=user("Slow down [[sim status=429 retry_after=7]]"))
    assert raised.value.response.headers.get("retry-after") == "7"


def test_unknown_scenario_key_is_a_bad_request(openai_client):
    """The simulator answers a typo in a directive with 400 ValidationException `[sim] …`; it must reach
    the client as a 400 carrying that message (not a silent default answer)."""
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.chat.completions.create(model=MODEL, messages=user("x [[sim chunkz=3]]"))
    assert "[sim]" in raised.value.message


NO_TOKENS = "client tokens land with the identity issue: this sluice binary has no `sluice token` and accepts any request"


def test_invalid_token_is_authentication_error(sluice, auth):
    if not auth.enforced:
        pytest.skip(NO_TOKENS)
    client = openai.OpenAI(base_url=sluice.openai_base, api_key="sk-sluice-not-a-real-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert raised.value.status_code == 401
    assert raised.value.body["type"] == "authentication_error"


def test_policy_denied_is_permission_denied(sluice, auth):
    """A valid token that no policy grants anything (not in group `admins`)."""
    if not auth.enforced:
        pytest.skip(NO_TOKENS)
    client = openai.OpenAI(base_url=sluice.openai_base, api_key=auth.unprivileged_token, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model=MODEL, messages=user("hi"))
    assert raised.value.status_code == 403
    assert raised.value.body["type"] == "permission_error"


@pytest.mark.parametrize("exception", ["throttlingException", "modelStreamErrorException"])
def test_in_stream_exception_raises(openai_client, exception):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, messages=user(f"Break [[sim chunks=8 exception_after=3 exception={exception}]]"))
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(raised.value, openai.APIStatusError), "the head was 200; the error is in the stream"
    assert raised.value.body and raised.value.body.get("message")
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text, "the chunks before the exception were delivered"
    assert not any(c.choices and c.choices[0].finish_reason for c in received), "no finish_reason before the error"


def test_broken_upstream_frame_raises(openai_client):
    stream = openai_client.chat.completions.create(
        model=MODEL, stream=True, messages=user("Corrupt [[sim chunks=8 corrupt_after=4]]"))
    with pytest.raises(openai.APIError):
        list(stream)


def test_models_list(openai_client):
    models = openai_client.models.list()
    ids = [m.id for m in models]
    assert MODEL in ids
    assert len(ids) == len(set(ids))
    assert all(m.object == "model" for m in models.data)


def test_models_retrieve(openai_client):
    assert openai_client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model")


def test_client_authorization_is_not_forwarded(recorded_sluice, token):
    """The gateway must never send the client's Authorization (its Sluice token) upstream."""
    recorder = recorded_sluice.upstream_recorder
    recorder.clear()
    client = openai.OpenAI(base_url=recorded_sluice.openai_base, api_key=token, max_retries=0, timeout=30)
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, stream=True, messages=user("through the recorder [[sim echo=1]]")) if c.choices)
    assert text == "through the recorder"
    upstream = recorder.snapshot()
    assert [(r.method, r.path) for r in upstream] == [("POST", f"/model/{MODEL.replace(':', '%3A')}/converse-stream")]
    for request in upstream:
        assert token not in request.headers.get("authorization", "")
        assert all(token not in value for value in request.headers.values())
