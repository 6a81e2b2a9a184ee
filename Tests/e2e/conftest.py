"""End-to-end fixtures: the real `sluice serve` binary, with its built-in Bedrock simulator upstream,
driven by the real clients (openai, boto3, anthropic, Claude Code, curl).

Environment:
  SLUICE_BIN        the server binary (default: .build/debug/sluice under the repository root)
  SLUICE_E2E_TOKEN  the client token every client sends as its API key / bearer token. Default:
                    when the binary has `sluice token create`, a fresh token in the test's own store;
                    otherwise a dummy (a Sluice without client tokens accepts any request).

Servers run with HOME (and SLUICE_DB) in a temporary folder and without AWS credentials, so they can
only ever talk to the simulator.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recorder import Recorder

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKEN = "sk-sluice-e2e-dummy"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS_MODEL = "us.anthropic.claude-opus-4-1-20250805-v1:0"
HAIKU_MODEL = "us.anthropic.claude-haiku-4-5-20251001-v1:0"

# Variables that would make the server (or a client) talk to real AWS, or that could steer it.
_AWS_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

# Loopback traffic must never go through a proxy a CI machine may have configured.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sluice_binary() -> Path:
    path = Path(os.environ.get("SLUICE_BIN", ".build/debug/sluice"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _AWS_CREDENTIAL_VARS and not k.startswith("SLUICE_")}
    env["HOME"] = str(home)  # no ~/.aws, no ~/.local/share/sluice of the machine running the tests
    env["SLUICE_DB"] = str(home / "sluice.db")  # the token store, once the binary has one
    return env


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if pytest dies without tearing it down."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def has_token_commands() -> bool:
    """Whether this sluice binary has client tokens (`sluice token create`)."""
    try:
        completed = subprocess.run([str(sluice_binary()), "token", "create", "--help"], capture_output=True,
                                   text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    # Without the subcommand, ArgumentParser may still print some help; only `token create`'s has --identity.
    return completed.returncode == 0 and "--identity" in completed.stdout + completed.stderr


def create_token(workdir: Path, identity: str, groups: list[str]) -> str:
    command = [str(sluice_binary()), "token", "create", "--identity", identity, "--ttl", "1d", "--label", "e2e"]
    for group in groups:
        command += ["--group", group]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=30, env=server_env(workdir),
                               cwd=workdir)
    if completed.returncode != 0:
        raise RuntimeError(f"`sluice token create` failed ({completed.returncode}): {completed.stderr}")
    token = completed.stdout.strip().splitlines()[-1]  # printed once, as the last line
    assert token.startswith("sk-sluice-"), completed.stdout
    return token


@dataclass
class SluiceProcess:
    """One running `sluice` subprocess (serve or simulate)."""

    args: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)
    scheme: str = "http"
    env: dict[str, str] = field(default_factory=dict)  # on top of server_env (e.g. SLUICE_RESPONSES_STORE)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / f"sluice-{self.port}.log"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, ready_path: str, timeout: float = 30.0, any_status: bool = False) -> None:
        """Starts the process and waits until `ready_path` answers 200 (or any HTTP status when
        `any_status`: the simulator has no health route)."""
        binary = sluice_binary()
        if not binary.exists():
            pytest.exit(f"sluice binary not found at {binary}: run `swift build --product sluice` or set SLUICE_BIN",
                        returncode=3)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen([str(binary), *self.args], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env={**server_env(self.workdir), **self.env}, cwd=self.workdir,
                                     preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sluice exited with status {self.proc.returncode}:\n{self.log()}")
            try:
                # A self-signed certificate on `sluice serve --tls-cert`: readiness only, not trust.
                context = ssl._create_unverified_context() if self.scheme == "https" else None
                with urllib.request.urlopen(self.url + ready_path, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as error:
                if any_status:
                    return
                last_error = error
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                last_error = error
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"sluice did not answer {ready_path} within {timeout}s ({last_error}):\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@dataclass
class Gateway:
    url: str
    process: SluiceProcess
    upstream_recorder: Recorder | None = None

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    @property
    def bedrock_base(self) -> str:
        return self.url + "/bedrock"

    def simulator_url(self) -> str | None:
        # Text logs say `simulator.endpoint=http://…`, JSON logs `"simulator.endpoint":"http://…"`.
        match = re.search(r'simulator\.endpoint"?[=:]"?(http://[0-9.:]+)', self.process.log())
        return match.group(1) if match else None


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="sluice-e2e-") as path:
        yield Path(path)


@dataclass
class Auth:
    """How clients authenticate. `enforced`: the binary has client tokens (then Sluice refuses unknown
    ones). `token` is what every client sends as its API key / bearer token."""
    enforced: bool
    token: str
    unprivileged_token: str | None = None  # a valid token that no policy grants anything


@pytest.fixture(scope="session")
def auth(workdir) -> Auth:
    """The one place the client token comes from: SLUICE_E2E_TOKEN if set; else, when the binary has
    `sluice token create`, a fresh token in the test's own store (group `admins`, which the built-in
    policy allows every model); else a dummy, since Sluice without tokens accepts any request."""
    enforced = has_token_commands()
    unprivileged = create_token(workdir, "sluice-e2e-nobody", []) if enforced else None
    token = os.environ.get("SLUICE_E2E_TOKEN")
    if not token:
        token = create_token(workdir, "sluice-e2e", ["admins"]) if enforced else DEFAULT_TOKEN
    return Auth(enforced, token, unprivileged)


@pytest.fixture(scope="session")
def token(auth) -> str:
    return auth.token


@pytest.fixture(scope="session")
def sluice(workdir, auth):
    """`sluice serve` with the built-in simulator upstream, on a free loopback port."""
    port = free_port()
    process = SluiceProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--simulator"], port, workdir)
    process.start("/healthz")
    try:
        yield Gateway(process.url, process)
    finally:
        process.stop()
        if os.environ.get("SLUICE_E2E_SHOW_LOG"):
            print(process.log())


@pytest.fixture(scope="session")
def recorded_sluice(workdir, auth):
    """`sluice serve` whose upstream is `sluice simulate` seen through a recording proxy, so tests can
    check what the gateway sends upstream (headers, paths, bodies)."""
    sim_port = free_port()
    simulator = SluiceProcess(["simulate", "--host", "127.0.0.1", "--port", str(sim_port)], sim_port, workdir)
    simulator.start("/", any_status=True)
    recorder = Recorder(simulator.url)
    recorder.start()
    port = free_port()
    gateway = SluiceProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--no-simulator",
                             "--upstream", recorder.url], port, workdir)
    try:
        gateway.start("/healthz")
        yield Gateway(gateway.url, gateway, upstream_recorder=recorder)
    finally:
        gateway.stop()
        recorder.stop()
        simulator.stop()


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (certificate file, key file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sluice-e2e")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "e2e-cert.pem", directory / "e2e-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@dataclass
class TLSFront:
    """HTTPS in front of the gateway (Sluice itself serves plain HTTP), recording what clients send."""
    url: str
    ca_file: str
    recorder: Recorder

    @property
    def bedrock_base(self) -> str:
        return self.url + "/bedrock"


@pytest.fixture(scope="session")
def certificate(workdir) -> tuple[str, str]:
    return make_certificate(workdir)


@dataclass
class HTTPSGateway:
    """`sluice serve --tls-cert … --tls-key …`: Sluice terminating TLS itself (HTTP/2 by ALPN)."""
    url: str
    ca_file: str
    process: SluiceProcess

    @property
    def bedrock_base(self) -> str:
        return self.url + "/bedrock"


@pytest.fixture(scope="session")
def https_sluice(workdir, auth, certificate):
    """boto3 sends a Bedrock API key (bearer token) only to an https:// endpoint: Sluice serves TLS
    itself with --tls-cert/--tls-key (same store, so the same tokens)."""
    port = free_port()
    process = SluiceProcess(["serve", "--host", "127.0.0.1", "--port", str(port), "--simulator",
                             "--tls-cert", certificate[0], "--tls-key", certificate[1]], port, workdir, scheme="https")
    process.start("/healthz")
    try:
        yield HTTPSGateway(process.url, certificate[0], process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def tls_sluice(sluice, certificate):
    """A recording TLS terminator in front of plain-HTTP Sluice: for the tests that check what a
    client itself puts on the wire (Sluice's own TLS is `https_sluice`)."""
    recorder = Recorder(sluice.url, tls=certificate)
    recorder.start()
    try:
        yield TLSFront(recorder.url, certificate[0], recorder)
    finally:
        recorder.stop()


@pytest.fixture(scope="session")
def tls_recorded_sluice(recorded_sluice, certificate):
    """HTTPS in front of `recorded_sluice` (whose upstream hop is recorded)."""
    recorder = Recorder(recorded_sluice.url, tls=certificate)
    recorder.start()
    try:
        yield TLSFront(recorder.url, certificate[0], recorder)
    finally:
        recorder.stop()


@pytest.fixture
def openai_client(sluice, token):
    import openai

    return openai.OpenAI(base_url=sluice.openai_base, api_key=token, max_retries=0, timeout=30)


@pytest.fixture
def bedrock_runtime(https_sluice, token, monkeypatch):
    """boto3 bedrock-runtime with the token as Bedrock API key, through HTTPS in front of Sluice."""
    return make_bedrock_runtime(https_sluice.bedrock_base, monkeypatch, token=token, verify=https_sluice.ca_file)


def isolate_aws_env(monkeypatch, token: str | None = None) -> None:
    """No credentials or config of the machine running the tests; the token as Bedrock API key."""
    for name in _AWS_CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/e2e-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/e2e-aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if token is not None:
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)


def make_bedrock_runtime(endpoint: str, monkeypatch, token: str | None = None, verify: str | bool = True,
                         sigv4_key: tuple[str, str] | None = None):
    """A boto3 bedrock-runtime client authenticating with a Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`,
    needs HTTPS) or with SigV4 (`sigv4_key` = access key id, secret)."""
    import boto3
    from botocore.config import Config

    isolate_aws_env(monkeypatch, token)
    credentials = {}
    if sigv4_key is not None:
        credentials = {"aws_access_key_id": sigv4_key[0], "aws_secret_access_key": sigv4_key[1]}
    session = boto3.session.Session(region_name="us-east-1", **credentials)
    return session.client(
        "bedrock-runtime",
        endpoint_url=endpoint,
        verify=verify,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30),
    )


@pytest.fixture
def anthropic_bedrock(sluice, token):
    from anthropic import AnthropicBedrock

    # api_key makes the SDK send `Authorization: Bearer <token>` instead of SigV4 (see its _prepare_request).
    return AnthropicBedrock(api_key=token, aws_region="us-east-1", base_url=sluice.bedrock_base,
                            max_retries=0, timeout=30)
