"""`sluice-load` counts a stream as good only when its content is complete: broken streams from the
real simulator (direct and through the real gateway) and from a scripted SSE server must show up as
failed streams of the right kind, and clean ones as all good with every chunk measured.

The load generator is the binary beside `sluice` (SLUICE_BIN's folder), or SLUICE_LOAD_BIN.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import SluiceProcess, free_port, sluice_binary


def load_binary() -> Path:
    override = os.environ.get("SLUICE_LOAD_BIN")
    return Path(override) if override else sluice_binary().parent / "sluice-load"


pytestmark = pytest.mark.skipif(not load_binary().exists(),
                                reason=f"sluice-load not built at {load_binary()} (SLUICE_LOAD=1 swift build --product sluice-load)")


def run_load(*args: str, token: str | None = None) -> tuple[int, dict]:
    """Runs sluice-load with --json; returns its exit status and report."""
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_TOKEN"}
    if token is not None:
        env["SLUICE_TOKEN"] = token
    completed = subprocess.run([str(load_binary()), "--json", "--timeout", "30", *args], capture_output=True,
                               text=True, timeout=120, env=env)
    assert completed.returncode in (0, 2), f"exit {completed.returncode}: {completed.stderr}\n{completed.stdout}"
    return completed.returncode, json.loads(completed.stdout)


def assert_all_good(status: int, report: dict, streams: int, chunks: int) -> None:
    assert status == 0, report
    assert report["streamsOK"] == streams and report["streamsFailed"] == 0, report
    assert report["errors"] == {}, report
    assert report["chunks"] == streams * chunks
    # every chunk carried a stamp that became one latency sample
    assert report["chunkLatencyMicros"]["count"] == streams * chunks
    assert report["timeToFirstByteMicros"]["count"] == streams
    assert 0 < report["chunkLatencyMicros"]["p50"] < 10_000_000


def assert_all_failed(status: int, report: dict, streams: int, kind: str) -> None:
    assert status == 2, report
    assert report["streamsOK"] == 0 and report["streamsFailed"] == streams, report
    assert report["errors"] == {kind: streams}, report
    assert report["errorSamples"][kind], report


@pytest.fixture(scope="module")
def simulator(workdir):
    port = free_port()
    process = SluiceProcess(["simulate", "--host", "127.0.0.1", "--port", str(port)], port, workdir)
    process.start("/", any_status=True)
    try:
        yield process.url
    finally:
        process.stop()


# --- the real simulator, driven directly (Bedrock route) -------------------------------------------------

def test_direct_clean_streams_are_all_good(simulator):
    status, report = run_load("--direct", "--url", simulator, "--concurrency", "4", "--requests", "12",
                              "--scenario", "chunks=7 gap_ms=1")
    assert_all_good(status, report, 12, 7)
    assert report["route"] == "bedrock" and report["direct"] is True


def test_direct_scenario_header_is_read_by_the_simulator(simulator):
    status, report = run_load("--direct", "--url", simulator, "--requests", "3", "--scenario", "chunks=5",
                              "--scenario-in", "header")
    assert_all_good(status, report, 3, 5)


@pytest.mark.parametrize(("scenario", "kind"), [
    ("chunks=10 drop_after=5", "truncated"),             # connection closed mid-body
    ("chunks=10 corrupt_after=4", "bad_frame"),          # message CRC wrong
    ("chunks=10 exception_after=4", "error_event"),      # in-stream modelStreamErrorException
    ("chunks=10 status=503", "http_503"),
])
def test_direct_broken_streams_are_failures(simulator, scenario, kind):
    status, report = run_load("--direct", "--url", simulator, "--concurrency", "2", "--requests", "4",
                              "--scenario", scenario)
    assert_all_failed(status, report, 4, kind)


def test_dropped_stream_keeps_the_chunks_it_got(simulator):
    # drop_after=5: messageStart + 4 text deltas arrive, then the connection goes.
    _, report = run_load("--direct", "--url", simulator, "--requests", "3", "--scenario", "chunks=10 drop_after=5")
    assert report["chunks"] == 12 and report["chunkLatencyMicros"]["count"] == 12


def test_connect_failure_is_reported():
    status, report = run_load("--direct", "--url", f"http://127.0.0.1:{free_port()}", "--requests", "2")
    assert_all_failed(status, report, 2, "connect")


# --- through the real gateway (OpenAI and Bedrock routes) ------------------------------------------------

@pytest.mark.parametrize("route", ["openai", "bedrock"])
def test_gateway_clean_streams_are_all_good(sluice, token, route):
    status, report = run_load("--url", sluice.url, "--route", route, "--concurrency", "4", "--requests", "12",
                              "--scenario", "chunks=6 gap_ms=1", token=token)
    assert_all_good(status, report, 12, 6)
    assert report["direct"] is False


@pytest.mark.parametrize("route", ["openai", "bedrock"])
def test_gateway_upstream_drop_is_an_error_event(sluice, token, route):
    # The gateway turns the cut upstream into an in-stream error in the caller's shape.
    status, report = run_load("--url", sluice.url, "--route", route, "--concurrency", "2", "--requests", "4",
                              "--scenario", "chunks=10 drop_after=5", token=token)
    assert_all_failed(status, report, 4, "error_event")


def test_gateway_http2_streams_share_connections(https_sluice, token):
    # Sluice serving TLS offers h2 by ALPN; --http2 multiplexes: 40 streams, 20 at a time, at most 10 a
    # connection, share connections, where HTTP/1.1 keep-alive opens one per slot. (curl waits for the
    # first connection, fills it, then opens one for each stream still waiting: 11 here, every run.)
    status, report = run_load("--url", https_sluice.url, "--http2", "--cacert", https_sluice.ca_file,
                              "--streams-per-connection", "10", "--concurrency", "20", "--requests", "40",
                              "--scenario", "chunks=5 gap_ms=20", token=token)
    assert_all_good(status, report, 40, 5)
    assert 2 <= report["connectionsOpened"] < 20, report
    status, report = run_load("--url", https_sluice.url, "--cacert", https_sluice.ca_file, "--concurrency", "20",
                              "--requests", "40", "--scenario", "chunks=5 gap_ms=20", token=token)
    assert_all_good(status, report, 40, 5)
    assert report["connectionsOpened"] == 20, report


def test_http2_needs_an_https_url(sluice, token):
    completed = subprocess.run([str(load_binary()), "--url", sluice.url, "--http2", "--requests", "1"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 64, completed  # ArgumentParser's usage-error status (EX_USAGE)
    assert "--http2 needs an https://" in completed.stderr


def test_gateway_refusal_is_an_http_error(sluice, token):
    status, report = run_load("--url", sluice.url, "--requests", "2", "--scenario", "chunks=4 status=429",
                              token=token)
    assert_all_failed(status, report, 2, "http_429")


def test_gateway_without_token_is_an_http_error(sluice, auth):
    if not auth.enforced:
        pytest.skip("this sluice has no client tokens")
    status, report = run_load("--url", sluice.url, "--requests", "2", "--token", "sk-sluice-not-a-real-token")
    assert_all_failed(status, report, 2, "http_401")


def test_unstamped_deltas_are_bad_stamps(sluice, token):
    # The gateway does not forward the scenario header, so the simulator answers its default
    # (8 deltas, no stamps): the load generator must not count such streams as good.
    status, report = run_load("--url", sluice.url, "--requests", "2", "--scenario", "chunks=8",
                              "--scenario-in", "header", token=token)
    assert_all_failed(status, report, 2, "bad_stamp")


# --- a scripted SSE server: content faults the real stack never produces -------------------------------

class ScriptedSSE(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with an SSE stream shaped by `fake=<mode>` in the prompt's directive."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        directive = re.search(r"\[\[sim ([^\]]*)\]\]", body)
        pairs = dict(p.split("=", 1) for p in re.split(r"[ ,]+", directive.group(1) if directive else "") if "=" in p)
        mode, chunks = pairs.get("fake", "ok"), int(pairs.get("chunks", "8"))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")  # the body ends when the connection closes
        self.end_headers()

        def chunk(delta: dict) -> None:
            payload = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())
            self.wfile.flush()

        def stamp() -> str:
            return f"⟦t={time.monotonic_ns()}⟧"  # CLOCK_MONOTONIC on Linux, like the simulator

        chunk({"role": "assistant", "content": ""})
        count = chunks - 1 if mode == "short" else chunks
        for index in range(count):
            text = f"piece {index}"
            if mode == "nostamp" and index == 1:
                chunk({"content": text})
            elif mode == "badstamp" and index == 1:
                chunk({"content": "⟦t=12ab⟧" + text})
            elif mode == "future" and index == 1:
                chunk({"content": f"⟦t={time.monotonic_ns() + 3_600_000_000_000}⟧" + text})
            elif mode == "error" and index == 2:
                self.wfile.write(b'data: {"error":{"message":"scripted failure","type":"api_error"}}\n\n')
                return
            else:
                chunk({"content": stamp() + text})
        chunk({})
        if mode != "nodone":
            self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(scope="module")
def scripted_sse():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedSSE)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_scripted_complete_stream_is_good(scripted_sse):
    status, report = run_load("--url", scripted_sse, "--requests", "3", "--scenario", "chunks=4 fake=ok")
    assert_all_good(status, report, 3, 4)


@pytest.mark.parametrize(("mode", "kind"), [
    ("short", "incomplete_content"),   # ended properly, one delta missing
    ("nostamp", "bad_stamp"),
    ("badstamp", "bad_stamp"),
    ("future", "bad_stamp"),           # a stamp later than its arrival cannot be a latency
    ("nodone", "truncated"),           # body ended without [DONE]
    ("error", "error_event"),
])
def test_scripted_content_faults_are_failures(scripted_sse, mode, kind):
    status, report = run_load("--url", scripted_sse, "--concurrency", "2", "--requests", "4",
                              "--scenario", f"chunks=4 fake={mode}")
    assert_all_failed(status, report, 4, kind)
