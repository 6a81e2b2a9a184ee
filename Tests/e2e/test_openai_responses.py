"""The OpenAI Responses API (`/v1/responses`) in front of Bedrock, driven by the openai SDK's
`client.responses` (what Codex CLI and new SDK code speak)."""

from __future__ import annotations

import json

import openai
import pytest

MODEL = "claude-sonnet"


@pytest.fixture
def client(sluice, token):
    return openai.OpenAI(base_url=sluice.openai_base, api_key=token, max_retries=0)


def test_streamed_text_every_delta(client):
    deltas, completed = [], None
    with client.responses.stream(model=MODEL, input="Count to six [[sim chunks=6]]") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.completed":
                completed = event.response
        final = stream.get_final_response()
    assert len(deltas) >= 6
    assert final.output_text == "".join(deltas)
    assert completed is not None and completed.status == "completed"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_function_call_and_its_output(client):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    prompt = 'Weather in Paris? [[sim tools=1 tool_input={"city":"Paris"}]]'
    argument_deltas = []
    with client.responses.stream(model=MODEL, input=prompt, tools=tools) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                argument_deltas.append(event.delta)
        first = stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].arguments == "".join(argument_deltas)
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    second = client.responses.create(model=MODEL, tools=tools, input=[
        {"role": "user", "content": prompt},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ])
    assert second.status == "completed" and second.output_text


def test_reasoning_items_round_trip_without_state(client):
    prompt = 'Think, then call [[sim reasoning=1 tools=1 tool_input={"city":"Oslo"}]]'
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    first = client.responses.create(model=MODEL, input=prompt, tools=tools, reasoning={"effort": "low"},
                                    include=["reasoning.encrypted_content"], store=False)
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content, first.output
    call = next(item for item in first.output if item.type == "function_call")
    second = client.responses.create(model=MODEL, tools=tools, reasoning={"effort": "low"}, store=False,
                                     include=["reasoning.encrypted_content"], input=[
        {"role": "user", "content": prompt},
        reasoning[0].model_dump(exclude_none=True),
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "cold"},
    ])
    assert second.status == "completed"
    # A forged blob is refused, naming the item.
    forged = reasoning[0].model_dump(exclude_none=True)
    forged["encrypted_content"] = "sluice1.AAAA" + forged["encrypted_content"][12:]
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, tools=tools, input=[{"role": "user", "content": prompt}, forged])


def test_non_streamed(client):
    response = client.responses.create(model=MODEL, input="Hello [[sim chunks=3]]", instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


def test_bad_parameter_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    assert "web_search" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    assert caught.value.body["param"] == "previous_response_id"


@pytest.fixture(scope="module")
def stored_sluice(workdir):
    """`sluice serve` with the response store on (`SLUICE_RESPONSES_STORE=1`)."""
    from conftest import Gateway, SluiceProcess, free_port

    port = free_port()
    process = SluiceProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--simulator"], port, workdir,
                            env={"SLUICE_RESPONSES_STORE": "1"})
    process.start("/healthz")
    try:
        yield Gateway(process.url, process)
    finally:
        process.stop()


def test_previous_response_id_with_the_store(stored_sluice, token):
    """With `responses.store` on, `previous_response_id` continues a kept response, streamed or not;
    the SDK's own chaining works, and an unknown id is the SDK's NotFoundError."""
    client = openai.OpenAI(base_url=stored_sluice.openai_base, api_key=token, max_retries=0)
    first = client.responses.create(model=MODEL, input="Remember otters [[sim chunks=2]]")
    with client.responses.stream(model=MODEL, input="And then? [[sim chunks=2]]", previous_response_id=first.id) as stream:
        for _ in stream:
            pass
        second = stream.get_final_response()
    assert second.status == "completed" and second.output_text
    third = client.responses.create(model=MODEL, input="Last [[sim echo=1]]", previous_response_id=second.id)
    assert third.status == "completed"
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_doesnotexist")
    assert caught.value.body["param"] == "previous_response_id"
