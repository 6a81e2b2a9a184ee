"""HTTP/2 against `sluice serve --tls-cert …` (ALPN h2): a client that resets every finished stream
(libcurl 7.88, Debian 12's curl) keeps its connection past NIOHTTP2's 200-resets-in-30-s limit,
and a client that resets streams the server is still working on (the rapid-reset attack,
CVE-2023-44487) is still cut off by it.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from urllib.parse import urlparse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

from conftest import MODEL


def test_curl_resetting_finished_streams_keeps_its_connection(https_sluice, token):
    # curl 7.88 sends RST_STREAM(STREAM_CLOSED) after each of these ends. 400 streams, 50 at a time,
    # multiplexed: before the filter the 201st reset closed the connection and cut the open streams.
    count = 400
    command = ["curl", "--silent", "--show-error", "--http2", "--parallel", "--parallel-max", "50",
               "--cacert", https_sluice.ca_file, "-H", f"Authorization: Bearer {token}",
               "-w", "%{http_code} %{num_connects} %{http_version}\\n", "-o", "/dev/null"]
    for _ in range(count):
        command += [https_sluice.url + "/v1/models", "-o", "/dev/null"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    lines = completed.stdout.split()
    statuses, connects, versions = lines[0::3], lines[1::3], lines[2::3]
    assert completed.returncode == 0, completed.stderr
    assert statuses.count("200") == count, (statuses, completed.stderr)
    assert set(versions) == {"2"}
    # Most of them on one connection: far more than 200 resets went over it.
    assert sum(int(n) for n in connects) <= 2, connects


def open_h2(url: str, ca_file: str) -> tuple[ssl.SSLSocket, h2.connection.H2Connection]:
    address = urlparse(url)
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    raw = socket.create_connection((address.hostname, address.port), timeout=10)
    tls = context.wrap_socket(raw, server_hostname=address.hostname)
    assert tls.selected_alpn_protocol() == "h2"
    connection = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    tls.sendall(connection.data_to_send())
    return tls, connection


def request_headers(url: str, token: str, path: str) -> list[tuple[str, str]]:
    address = urlparse(url)
    return [(":method", "GET"), (":scheme", "https"), (":authority", f"{address.hostname}:{address.port}"),
            (":path", path), ("authorization", f"Bearer {token}")]


def test_rapid_reset_is_still_refused(https_sluice, token):
    tls, connection = open_h2(https_sluice.url, https_sluice.ca_file)
    headers = request_headers(https_sluice.url, token, "/v1/models")
    goaway: h2.events.ConnectionTerminated | None = None
    sent = 0
    try:
        # Each stream is opened and cancelled in the same write, before the server can answer it.
        for _ in range(400):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, headers, end_stream=True)
            connection.reset_stream(stream, error_code=h2.errors.ErrorCodes.CANCEL)
            tls.sendall(connection.data_to_send())
            sent += 1
        deadline = time.monotonic() + 10
        while goaway is None and time.monotonic() < deadline:
            data = tls.recv(65536)
            if not data:
                break
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    goaway = event
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, h2.exceptions.ProtocolError):
        pass  # the server closed the connection while we were still resetting
    finally:
        tls.close()
    if goaway is None:
        # The GOAWAY can be lost to a reset socket; the connection must at least be gone early.
        assert sent < 400, "the server let 400 rapid resets through"
    else:
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_a_client_that_resets_after_each_answer_is_not_cut(https_sluice, token):
    # The same behaviour as curl's, written out: 260 requests on one connection, each read to its
    # end and then reset; a streamed chat at the end still arrives whole.
    tls, connection = open_h2(https_sluice.url, https_sluice.ca_file)
    headers = request_headers(https_sluice.url, token, "/v1/models")
    try:
        for _ in range(260):
            stream = connection.get_next_available_stream_id()
            connection.send_headers(stream, headers, end_stream=True)
            tls.sendall(connection.data_to_send())
            status, _ = read_stream(tls, connection, stream)
            assert status == "200"
            # h2 will not reset a closed stream itself; curl 7.88 does, so the frame is written out.
            tls.sendall(reset_frame(stream, h2.errors.ErrorCodes.STREAM_CLOSED))
        stream = connection.get_next_available_stream_id()
        body = json.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hello"}]}).encode()
        chat = request_headers(https_sluice.url, token, "/v1/chat/completions")
        connection.send_headers(stream, [(":method", "POST"), *chat[1:], ("content-type", "application/json")])
        connection.send_data(stream, body, end_stream=True)
        tls.sendall(connection.data_to_send())
        status, payload = read_stream(tls, connection, stream)
        assert status == "200"
        assert payload.rstrip().endswith(b"data: [DONE]")
    finally:
        tls.close()


def reset_frame(stream: int, error_code: int) -> bytes:
    return bytes([0, 0, 4, 0x3, 0]) + stream.to_bytes(4, "big") + int(error_code).to_bytes(4, "big")


def read_stream(tls: ssl.SSLSocket, connection: h2.connection.H2Connection, stream: int) -> tuple[str, bytes]:
    status = ""
    payload = b""
    while True:
        data = tls.recv(65536)
        assert data, "the server closed the connection"
        for event in connection.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                raise AssertionError(f"GOAWAY {event.error_code!r}")
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                status = dict(event.headers)[":status"]
            elif isinstance(event, h2.events.DataReceived):
                connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                if event.stream_id == stream:
                    payload += event.data
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                tls.sendall(connection.data_to_send())
                return status, payload
        tls.sendall(connection.data_to_send())
