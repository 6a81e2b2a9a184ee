"""The `anthropic` SDK's AnthropicBedrock client against Sluice's Bedrock route.

AnthropicBedrock sends `Authorization: Bearer <api_key>` instead of SigV4 when it has an `api_key`
(or AWS_BEARER_TOKEN_BEDROCK); see `_prepare_request` in anthropic/lib/bedrock/_client.py. Unlike
botocore it does so over plain HTTP too, so it talks to Sluice directly."""

from __future__ import annotations

import json

import anthropic
import pytest

from conftest import MODEL

TOOLS = [{"name": "get_weather", "description": "Weather for a city",
          "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}]


def test_messages_stream_text_and_usage(anthropic_bedrock):
    with anthropic_bedrock.messages.stream(
            model=MODEL, max_tokens=512,
            messages=[{"role": "user", "content": "Stream it: a quiet mill pond [[sim echo=1 chunk_size=3]]"}]) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == "Stream it: a quiet mill pond"
    assert len(pieces) == 10  # 28 characters in pieces of 3
    assert final.role == "assistant"
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == "Stream it: a quiet mill pond"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens == 10  # from message_delta, one per text delta


def test_messages_stream_cache_usage(anthropic_bedrock):
    with anthropic_bedrock.messages.stream(
            model=MODEL, max_tokens=64,
            messages=[{"role": "user", "content": "cached [[sim chunks=2 cache_read=40 cache_write=8]]"}]) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == 40
    assert final.usage.cache_creation_input_tokens == 8


def test_messages_stream_thinking_and_tool_use(anthropic_bedrock):
    with anthropic_bedrock.messages.stream(
            model=MODEL, max_tokens=2048, tools=TOOLS, thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user",
                       "content": 'Weather? [[sim reasoning=1 tools=1 chunks=1 tool_input={"location":"Bergen"}]]'}],
    ) as stream:
        final = stream.get_final_message()
    types = [block.type for block in final.content]
    assert types == ["thinking", "text", "tool_use"]
    thinking = final.content[0]
    assert thinking.thinking and thinking.signature
    tool_use = final.content[2]
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"location": "Bergen"}
    assert final.stop_reason == "tool_use"

    # The client sends the assistant turn back verbatim (thinking signature included) with the result.
    follow_up = anthropic_bedrock.messages.create(
        model=MODEL, max_tokens=2048, tools=TOOLS, thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[
            {"role": "user", "content": "Weather? [[sim reasoning=1 tools=1 chunks=1]]"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in final.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "rain"}]},
        ])
    assert follow_up.stop_reason == "end_turn"
    assert "tool_use" not in [block.type for block in follow_up.content]


def test_messages_create_non_streaming(anthropic_bedrock):
    message = anthropic_bedrock.messages.create(
        model=MODEL, max_tokens=128, messages=[{"role": "user", "content": "Plain: river stones [[sim echo=1]]"}])
    assert message.content[0].text == "Plain: river stones"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2  # 19 characters in the default pieces of 12


@pytest.mark.parametrize("status,exception", [
    (400, anthropic.BadRequestError),
    (404, anthropic.NotFoundError),
    (429, anthropic.RateLimitError),
    (503, anthropic.InternalServerError),
])
def test_http_errors(anthropic_bedrock, status, exception):
    with pytest.raises(exception) as raised:
        with anthropic_bedrock.messages.stream(
                model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"x [[sim status={status}]]"}]) as stream:
            stream.get_final_message()
    assert raised.value.status_code == status
    assert raised.value.response.headers.get("x-amzn-errortype", "").split(":")[0]


def test_in_stream_exception_raises(anthropic_bedrock):
    with pytest.raises(anthropic.APIError) as raised:
        with anthropic_bedrock.messages.stream(
                model=MODEL, max_tokens=64,
                messages=[{"role": "user", "content": "x [[sim chunks=6 exception_after=3 exception=throttlingException]]"}],
        ) as stream:
            stream.get_final_message()
    assert "throttling" in json.dumps(raised.value.body).lower() or "throttling" in str(raised.value).lower()
