"""Several upstreams with real processes and real clients (README, "Several upstreams").

Two `sluice simulate` processes stand for two regions: `throttled` refuses every model request with 429
ThrottlingException (`--fail-percent 100`), `healthy` answers. `sluice serve --config` lists both, with
`throttled` weighted so that it ranks first for every conversation and a cooldown short enough that
every request meets it first. The clients run with retries off, so any 429 would reach them: none
does, every answer comes from `healthy`, and the metrics, the audit log and `sluice usage --by upstream`
say so.
"""
from __future__ import annotations

import json
import subprocess
import urllib.request

import anthropic
import openai
import pytest

from conftest import MODEL, SluiceProcess, free_port, server_env, sluice_binary

METRICS_TOKEN = "e2e-upstreams-metrics-token"


@pytest.fixture(scope="module")
def routed(workdir, auth):
    throttled_port, healthy_port, port = free_port(), free_port(), free_port()
    throttled = SluiceProcess(["simulate", "--port", str(throttled_port), "--fail-percent", "100"], throttled_port, workdir)
    healthy = SluiceProcess(["simulate", "--port", str(healthy_port)], healthy_port, workdir)
    config = workdir / "upstreams.json"
    config.write_text(json.dumps({
        "server": {"host": "127.0.0.1", "port": port},
        "upstreams": [
            {"name": "throttled", "region": "us-east-1", "endpoint": throttled.url, "weight": 1000},
            {"name": "healthy", "region": "us-west-2", "endpoint": healthy.url},
        ],
        "routing": {"cooldownSeconds": 0.001, "maxCooldownSeconds": 0.001},
        "metrics": {"token": METRICS_TOKEN},
        "policies": [{"source": "group:admins"}],
    }))
    gateway = SluiceProcess(["serve", "--config", str(config)], port, workdir)
    try:
        throttled.start("/", any_status=True)
        healthy.start("/", any_status=True)
        gateway.start("/healthz")
        yield gateway
    finally:
        gateway.stop()
        healthy.stop()
        throttled.stop()


def metrics(gateway: SluiceProcess) -> str:
    request = urllib.request.Request(gateway.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def counter(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split(" ")[1])
    return 0.0


def test_a_throttling_region_costs_the_clients_nothing(routed, token):
    before = counter(metrics(routed), 'sluice_failovers_total{from="throttled",reason="upstream_throttled"}')

    chat = openai.OpenAI(base_url=routed.url + "/v1", api_key=token, max_retries=0)
    for turn in range(3):
        stream = chat.chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": f"turn {turn} [[sim chunks=3]]"}])
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text

    messages = anthropic.Anthropic(base_url=routed.url, api_key=token, max_retries=0)
    with messages.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                  messages=[{"role": "user", "content": "hello [[sim chunks=3]]"}]) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"

    # The Bedrock route, as Claude Code's Bedrock mode and the Anthropic SDK's Bedrock client use it.
    bedrock = anthropic.AnthropicBedrock(api_key=token, aws_region="us-east-1", base_url=routed.url + "/bedrock", max_retries=0)
    with bedrock.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi [[sim chunks=2]]"}]) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"

    text = metrics(routed)
    assert counter(text, 'sluice_failovers_total{from="throttled",reason="upstream_throttled"}') - before == 5
    assert counter(text, 'sluice_upstream_requests_total{upstream="healthy",outcome="ok"}') >= 5
    # The Anthropic name resolved to a `us.` profile; west is in the US too, so it kept it.
    audit = [json.loads(line) for line in routed.log().splitlines() if '"event":"response"' in line]
    assert [line["upstream"] for line in audit[-5:]] == ["healthy"] * 5
    assert all(line["upstream.attempts"] == 2 and line["upstream.region"] == "us-west-2" for line in audit[-5:])

    usage = subprocess.run([str(sluice_binary()), "usage", "--by", "upstream", "--since", "1d"], capture_output=True,
                           text=True, env=server_env(routed.workdir), cwd=routed.workdir, timeout=30)
    assert usage.returncode == 0, usage.stderr
    rows = {line.split()[0]: line.split() for line in usage.stdout.splitlines()[1:] if line.strip()}
    assert "healthy" in rows and "throttled" not in rows
    assert int(rows["healthy"][1]) >= 5
