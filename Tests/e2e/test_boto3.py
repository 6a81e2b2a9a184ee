"""boto3's `bedrock-runtime` client against Sluice's Bedrock route (`/bedrock`), authenticated with a
Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`, botocore >= 1.39).

botocore sends a bearer token only to an https:// endpoint (BearerAuth raises
InvalidEndpointConfigurationError otherwise), so the `bedrock_runtime` fixture talks to
`sluice serve --tls-cert … --tls-key …` (conftest.https_sluice). The one test that checks what boto3
itself puts on the wire goes through a recording TLS terminator instead. SigV4 clients can talk to
Sluice's plain HTTP directly (last tests)."""

from __future__ import annotations

import json
import os

import botocore
import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import MODEL, isolate_aws_env, make_bedrock_runtime


def converse_messages(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


def anthropic_body(text: str, max_tokens: int = 256) -> str:
    return json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]})


def test_token_travels_as_bearer(tls_sluice, token, monkeypatch):
    """Guard for the auth assumption of this file: boto3 sends the token as `Authorization: Bearer`."""
    assert tuple(int(p) for p in botocore.__version__.split(".")[:2]) >= (1, 39)
    bedrock_runtime = make_bedrock_runtime(tls_sluice.bedrock_base, monkeypatch, token=token, verify=tls_sluice.ca_file)
    tls_sluice.recorder.clear()
    bedrock_runtime.converse(modelId=MODEL, messages=converse_messages("auth check [[sim chunks=1]]"))
    (request,) = tls_sluice.recorder.snapshot()
    assert request.path == f"/bedrock/model/{MODEL.replace(':', '%3A')}/converse"
    assert request.headers["authorization"] == f"Bearer {token}"
    assert request.status == 200


def test_converse(bedrock_runtime):
    response = bedrock_runtime.converse(
        modelId=MODEL, messages=converse_messages("Say it back: blue kettle [[sim echo=1]]"),
        inferenceConfig={"maxTokens": 128})
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    message = response["output"]["message"]
    assert message["role"] == "assistant"
    assert message["content"] == [{"text": "Say it back: blue kettle"}]
    assert response["stopReason"] == "end_turn"
    usage = response["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "latencyMs" in response["metrics"]


def test_converse_tool_use(bedrock_runtime):
    tool_config = {"tools": [{"toolSpec": {"name": "lookup", "description": "Look a thing up",
                                           "inputSchema": {"json": {"type": "object"}}}}]}
    response = bedrock_runtime.converse(
        modelId=MODEL, toolConfig=tool_config,
        messages=converse_messages('Look it up [[sim tools=1 chunks=1 tool_input={"q":"sluice gates"}]]'))
    assert response["stopReason"] == "tool_use"
    tool_uses = [block["toolUse"] for block in response["output"]["message"]["content"] if "toolUse" in block]
    assert len(tool_uses) == 1
    assert tool_uses[0]["name"] == "lookup"
    assert tool_uses[0]["input"] == {"q": "sluice gates"}
    assert tool_uses[0]["toolUseId"]


def test_converse_stream(bedrock_runtime):
    response = bedrock_runtime.converse_stream(
        modelId=MODEL, messages=converse_messages("Stream me back please [[sim echo=1 chunk_size=4]]"))
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    kinds, text, metadata, stop = [], "", None, None
    for event in response["stream"]:
        (kind, payload), = event.items()
        kinds.append(kind)
        if kind == "contentBlockDelta":
            text += payload["delta"]["text"]
        elif kind == "messageStop":
            stop = payload["stopReason"]
        elif kind == "metadata":
            metadata = payload
    assert kinds[0] == "messageStart"
    assert kinds[-2:] == ["messageStop", "metadata"]
    assert kinds.count("contentBlockDelta") == 6  # 22 characters in pieces of 4
    assert text == "Stream me back please"
    assert stop == "end_turn"
    usage = metadata["usage"]
    assert usage["outputTokens"] == 6
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert "latencyMs" in metadata["metrics"]


def test_converse_stream_reasoning_and_tools(bedrock_runtime):
    tool_config = {"tools": [{"toolSpec": {"name": "calc", "inputSchema": {"json": {"type": "object"}}}}]}
    response = bedrock_runtime.converse_stream(
        modelId=MODEL, toolConfig=tool_config,
        messages=converse_messages('Add [[sim reasoning=1 tools=1 chunks=1 tool_input={"a":1,"b":2}]]'))
    reasoning, signature, tool_json, tool_name, stop = "", None, "", None, None
    for event in response["stream"]:
        if "contentBlockStart" in event and "toolUse" in event["contentBlockStart"]["start"]:
            tool_name = event["contentBlockStart"]["start"]["toolUse"]["name"]
        if "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]["delta"]
            if "reasoningContent" in delta:
                reasoning += delta["reasoningContent"].get("text", "")
                signature = delta["reasoningContent"].get("signature", signature)
            if "toolUse" in delta:
                tool_json += delta["toolUse"]["input"]
        if "messageStop" in event:
            stop = event["messageStop"]["stopReason"]
    assert reasoning and signature
    assert tool_name == "calc"
    assert json.loads(tool_json) == {"a": 1, "b": 2}
    assert stop == "tool_use"


def test_invoke_model(bedrock_runtime):
    response = bedrock_runtime.invoke_model(
        modelId=MODEL, contentType="application/json", accept="application/json",
        body=anthropic_body("Invoke echo: green lantern [[sim echo=1]]"))
    assert response["contentType"] == "application/json"
    body = json.loads(response["body"].read())
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"] == [{"type": "text", "text": "Invoke echo: green lantern"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0


def test_invoke_model_with_response_stream(bedrock_runtime):
    response = bedrock_runtime.invoke_model_with_response_stream(
        modelId=MODEL, contentType="application/json", accept="application/json",
        body=anthropic_body("Stream the invoke echo [[sim echo=1 chunk_size=6]]"))
    events = [json.loads(event["chunk"]["bytes"]) for event in response["body"]]
    types = [e["type"] for e in events]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 1
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "Stream the invoke echo"
    message_delta = next(e for e in events if e["type"] == "message_delta")
    assert message_delta["delta"]["stop_reason"] == "end_turn"
    assert message_delta["usage"]["output_tokens"] == 4  # 22 characters in pieces of 6
    assert events[0]["message"]["usage"]["input_tokens"] > 0


def test_count_tokens(bedrock_runtime):
    if not hasattr(bedrock_runtime, "count_tokens"):
        pytest.fail("this botocore has no CountTokens; pin a newer one")
    body = anthropic_body("count me")
    response = bedrock_runtime.count_tokens(modelId=MODEL, input={"invokeModel": {"body": body}})
    assert response["inputTokens"] == max(1, len(body.encode()) // 4)


@pytest.mark.parametrize("status,code,http_status", [
    (400, "ValidationException", 400),
    # Bedrock refusing *Sluice's* credentials is not the caller's fault: a gateway failure (502).
    (403, "InternalServerException", 502),
    (404, "ResourceNotFoundException", 404),
    (408, "ModelTimeoutException", 408),
    (424, "ModelErrorException", 424),
    (429, "ThrottlingException", 429),
    (500, "InternalServerException", 500),
    (503, "ServiceUnavailableException", 503),
])
def test_http_errors_are_modeled(bedrock_runtime, status, code, http_status):
    with pytest.raises(ClientError) as raised:
        bedrock_runtime.converse(modelId=MODEL, messages=converse_messages(f"fail [[sim status={status}]]"))
    error = raised.value.response
    assert error["Error"]["Code"] == code
    assert error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == http_status
    # botocore maps the code to the client's modeled exception class
    assert type(raised.value).__name__ == code
    if status == 403:
        assert "credentials were refused" in error["Error"]["Message"]


def test_throttling_on_streaming_call(bedrock_runtime):
    with pytest.raises(bedrock_runtime.exceptions.ThrottlingException) as raised:
        bedrock_runtime.converse_stream(modelId=MODEL, messages=converse_messages("fail [[sim status=429 retry_after=3]]"))
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"].get("retry-after") == "3"


@pytest.mark.parametrize("exception,code", [
    ("throttlingException", "throttlingException"),
    ("modelStreamErrorException", "modelStreamErrorException"),
])
def test_in_stream_exception_converse_stream(bedrock_runtime, exception, code):
    response = bedrock_runtime.converse_stream(
        modelId=MODEL, messages=converse_messages(f"break [[sim chunks=8 exception_after=3 exception={exception}]]"))
    kinds = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["stream"]:
            kinds.append(next(iter(event)))
    assert raised.value.response["Error"]["Code"] == code
    assert raised.value.response["Error"]["Message"]
    assert kinds[0] == "messageStart" and "contentBlockDelta" in kinds
    assert "messageStop" not in kinds


def test_in_stream_exception_invoke_stream(bedrock_runtime):
    response = bedrock_runtime.invoke_model_with_response_stream(
        modelId=MODEL, body=anthropic_body("break [[sim chunks=8 exception_after=2 exception=throttlingException]]"))
    chunks = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["body"]:
            chunks.append(json.loads(event["chunk"]["bytes"]))
    assert raised.value.response["Error"]["Code"] == "throttlingException"
    assert [c["type"] for c in chunks][:1] == ["message_start"]


def test_corrupt_upstream_frame_ends_with_model_stream_error(bedrock_runtime):
    """A frame with a bad CRC upstream is not forwarded: the client gets a modelStreamErrorException."""
    response = bedrock_runtime.converse_stream(
        modelId=MODEL, messages=converse_messages("corrupt [[sim chunks=8 corrupt_after=4]]"))
    kinds = []
    with pytest.raises(EventStreamError) as raised:
        for event in response["stream"]:
            kinds.append(next(iter(event)))
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert len(kinds) == 4


def test_dropped_upstream_connection_ends_with_model_stream_error(bedrock_runtime):
    response = bedrock_runtime.converse_stream(
        modelId=MODEL, messages=converse_messages("drop [[sim chunks=8 drop_after=3]]"))
    with pytest.raises(EventStreamError) as raised:
        for _ in response["stream"]:
            pass
    assert raised.value.response["Error"]["Code"] == "modelStreamErrorException"


def test_model_id_with_slash_and_colon(bedrock_runtime):
    """An application-inference-profile ARN as model id: boto3 percent-encodes `:` and `/`; Sluice must
    route it and pass it upstream (the simulator accepts any id)."""
    client = bedrock_runtime
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123xyz"
    response = client.converse(modelId=arn, messages=converse_messages("arn echo [[sim echo=1]]"))
    assert response["output"]["message"]["content"] == [{"text": "arn echo"}]


DUMMY_SIGV4 = ("AKIAE2EDUMMYKEY00000", "e2e/dummy/secret/key/not/used/anywhere/000")


def test_sigv4_client_over_plain_http(sluice, auth, monkeypatch):
    """A SigV4-signing boto3 client (dummy keys) against Sluice's plain HTTP: accepted while Sluice has
    no client tokens; refused with 401 once it has (Sluice cannot verify SigV4 signatures)."""
    client = make_bedrock_runtime(sluice.bedrock_base, monkeypatch, sigv4_key=DUMMY_SIGV4)
    messages = converse_messages("sigv4 echo [[sim echo=1]]")
    if auth.enforced:
        with pytest.raises(ClientError) as raised:
            client.converse_stream(modelId=MODEL, messages=messages)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
        assert raised.value.response["Error"]["Message"]
        return
    response = client.converse_stream(modelId=MODEL, messages=messages)
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in response["stream"] if "contentBlockDelta" in e)
    assert text == "sigv4 echo"


def test_bedrock_route_does_not_forward_client_authorization(tls_recorded_sluice, recorded_sluice, token, monkeypatch):
    client = make_bedrock_runtime(tls_recorded_sluice.bedrock_base, monkeypatch, token=token,
                                  verify=tls_recorded_sluice.ca_file)
    recorder = recorded_sluice.upstream_recorder
    recorder.clear()
    events = list(client.invoke_model_with_response_stream(
        modelId=MODEL, body=anthropic_body("no auth upstream [[sim echo=1]]"))["body"])
    assert events
    upstream = recorder.snapshot()
    assert [(r.method, r.path) for r in upstream] == [
        ("POST", f"/model/{MODEL.replace(':', '%3A')}/invoke-with-response-stream")]
    for request in upstream:
        assert all(token not in value for value in request.headers.values())
        assert "authorization" not in request.headers  # no upstream credentials configured either
        assert not any(name.startswith("x-amz-") for name in request.headers), request.headers


def test_inference_profiles_control_plane(https_sluice, token, monkeypatch):
    """boto3's `bedrock` (control plane) client: ListInferenceProfiles / GetInferenceProfile, which Claude
    Code calls at start-up and for /context. Timestamps must be on the wire as the service model says:
    `createdAt`/`updatedAt` have timestampFormat iso8601 (RFC 3339 strings). botocore itself is lenient
    and also parses numbers; the AWS SDK for JavaScript (inside Claude Code) is not."""
    import ssl
    import urllib.request

    import boto3

    isolate_aws_env(monkeypatch, token)
    control = boto3.session.Session(region_name="us-east-1").client(
        "bedrock", endpoint_url=https_sluice.bedrock_base, verify=https_sluice.ca_file,
        config=botocore.config.Config(retries={"max_attempts": 1}))
    listed = control.list_inference_profiles(typeEquals="SYSTEM_DEFINED")["inferenceProfileSummaries"]
    ids = [p["inferenceProfileId"] for p in listed]
    assert MODEL in ids
    profile = control.get_inference_profile(inferenceProfileIdentifier=MODEL)
    assert profile["inferenceProfileId"] == MODEL
    assert profile["status"] == "ACTIVE" and profile["type"] == "SYSTEM_DEFINED"
    assert [m["modelArn"].rsplit("/", 1)[1] for m in profile["models"]] == ["anthropic.claude-sonnet-4-5-20250929-v1:0"]

    shapes = control.meta.service_model.shape_for("InferenceProfileSummary").members
    assert shapes["createdAt"].serialization.get("timestampFormat") == "iso8601"
    context = ssl.create_default_context(cafile=https_sluice.ca_file)
    request = urllib.request.Request(https_sluice.bedrock_base + "/inference-profiles?type=SYSTEM_DEFINED",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        raw = json.loads(response.read())
    for summary in raw["inferenceProfileSummaries"]:
        for key in ("createdAt", "updatedAt"):
            assert isinstance(summary[key], str), f"{key} must be an RFC 3339 string on the wire, got {summary[key]!r}"


def test_invoke_model_request_headers_reach_upstream(tls_recorded_sluice, recorded_sluice, token, auth, monkeypatch):
    """boto3 carries InvokeModel's trace / guardrail / latency / service-tier parameters as
    X-Amzn-Bedrock-* headers; the passthrough must hand them to Bedrock."""
    client = make_bedrock_runtime(tls_recorded_sluice.bedrock_base, monkeypatch, token=token,
                                  verify=tls_recorded_sluice.ca_file)
    recorder = recorded_sluice.upstream_recorder
    recorder.clear()
    response = client.invoke_model(
        modelId=MODEL, body=anthropic_body("headers [[sim chunks=1]]"), trace="ENABLED",
        guardrailIdentifier="gr-e2e", guardrailVersion="3", performanceConfigLatency="optimized",
        serviceTier="priority")
    assert json.loads(response["body"].read())["type"] == "message"
    (upstream,) = recorder.snapshot()
    bedrock_headers = {name: value for name, value in upstream.headers.items() if name.startswith("x-amzn-bedrock-")}
    metadata = json.loads(bedrock_headers.pop("x-amzn-bedrock-request-metadata", "{}"))
    assert bedrock_headers == {
        "x-amzn-bedrock-trace": "ENABLED",
        "x-amzn-bedrock-guardrailidentifier": "gr-e2e",
        "x-amzn-bedrock-guardrailversion": "3",
        "x-amzn-bedrock-performanceconfig-latency": "optimized",
        "x-amzn-bedrock-service-tier": "priority",
    }
    if auth.enforced:  # with tokens, Sluice tags the call with the caller's identity for Bedrock's logs
        assert metadata.get("sluice-identity") == "sluice-e2e" or os.environ.get("SLUICE_E2E_TOKEN")
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"] == "1"
