"""A small recording reverse proxy: forwards every request to a target and keeps what it saw.

Used to look at the traffic on one hop (for example gateway -> upstream) without touching either
side. Response bodies are streamed through as they arrive (read1), so event streams keep flowing;
the response goes back close-delimited (`Connection: close`, no Content-Length / chunking).
With a certificate it serves HTTPS: a TLS terminator in front of Sluice, which speaks plain HTTP.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate", "content-length"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes
    status: int | None = None
    response_headers: dict[str, str] | None = None


class Recorder:
    def __init__(self, target: str, tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate file, key file) to serve HTTPS, so the recorder is also a TLS terminator."""
        parts = urlsplit(target)
        self.target_host = parts.hostname
        self.target_port = parts.port
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                headers: dict[str, str] = {}
                for name, value in self.headers.items():
                    key = name.lower()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                record = RecordedRequest(self.command, self.path, headers, body)
                with recorder._lock:
                    recorder.requests.append(record)
                upstream = http.client.HTTPConnection(recorder.target_host, recorder.target_port, timeout=60)
                forward = {n: v for n, v in self.headers.items() if n.lower() not in _HOP_BY_HOP}
                forward["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=forward)
                response = upstream.getresponse()
                record.status = response.status
                record.response_headers = {n.lower(): v for n, v in response.getheaders()}
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    while chunk := response.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (http.client.IncompleteRead, ConnectionError):
                    pass  # upstream dropped the body: so do we
                finally:
                    upstream.close()

            def _read_chunked(self) -> bytes:
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.tls = tls is not None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)
