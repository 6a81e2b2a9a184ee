"""Several replicas on one PostgreSQL behind nginx (README, "Several replicas"; deploy/): three `sluice serve`
processes on a new database of the server SLUICE_TEST_POSTGRES names, and nginx with deploy/nginx/sluice.conf
(its ports and log path rewritten) in front of them.

Needs SLUICE_TEST_POSTGRES (a URL whose user may create databases), and for the restart test
SLUICE_TEST_POSTGRES_DIR and SLUICE_TEST_POSTGRES_PORT (the cluster Tests/support/postgres.sh started);
`.ci/run` sets all three. Without them the tests fail: CI must never skip them silently."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import openai
import pytest

from conftest import MODEL, REPO_ROOT, SluiceProcess, free_port, server_env, sluice_binary

POSTGRES = os.environ.get("SLUICE_TEST_POSTGRES", "")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def postgres_url(database: str) -> str:
    """SLUICE_TEST_POSTGRES with its database replaced."""
    return re.sub(r"(postgres(?:ql)?://[^/]+)/[^?]*", rf"\1/{database}", POSTGRES)


def psql(sql: str, database: str = "") -> str:
    url = postgres_url(database) if database else POSTGRES
    completed = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


class Cluster:
    def __init__(self, home: Path, database: str):
        self.home = home
        self.database = database
        self.url = postgres_url(database)
        self.replicas: list[SluiceProcess] = []
        self.nginx: subprocess.Popen | None = None
        self.port = free_port()

    @property
    def front(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"SLUICE_DB": self.url, "SLUICE_RESPONSES_KEY": "e2e-replicas-shared-key-0123456789abcdef"}

    def cli(self, *args: str) -> str:
        completed = subprocess.run([str(sluice_binary()), *args], capture_output=True, text=True, timeout=60,
                                   env={**server_env(self.home), **self.env()}, cwd=self.home)
        assert completed.returncode == 0, completed.stderr
        return completed.stdout

    def token(self, identity: str, groups: list[str]) -> str:
        command = ["token", "create", "--identity", identity, "--ttl", "1d"]
        for group in groups:
            command += ["--group", group]
        return self.cli(*command).strip().splitlines()[-1]

    def start_replica(self, index: int, port: int | None = None) -> SluiceProcess:
        port = port or free_port()
        config = self.home / f"replica{index}.json"
        config.write_text(json.dumps({
            "server": {"host": "127.0.0.1", "port": port, "drainSeconds": 2},
            "upstream": {"simulator": True},
            "policies": [{"source": "group:admins"}, {"source": "group:eng", "limits": {"requestsPerMinute": 10}}],
        }))
        process = SluiceProcess(["serve", "--config", str(config)], port, self.home, env=self.env())
        process.start("/healthz")
        return process

    def start_nginx(self) -> None:
        conf = (REPO_ROOT / "deploy" / "nginx" / "sluice.conf").read_text()
        servers = "\n".join(f"    server 127.0.0.1:{replica.port} max_fails=1 fail_timeout=2s;" for replica in self.replicas)
        conf = re.sub(r"(?m)^    server 127\.0\.0\.1:808[123][^\n]*\n", "", conf)
        conf = conf.replace("upstream sluice {\n", "upstream sluice {\n" + servers + "\n", 1)
        conf = re.sub(r"listen 80 default_server;", f"listen 127.0.0.1:{self.port} default_server;", conf)
        conf = re.sub(r"access_log /var/log/nginx/sluice.access.log", f"access_log {self.home}/nginx-access.log", conf)
        (self.home / "sluice.conf").write_text(conf)
        (self.home / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {self.home}/nginx.pid;
error_log {self.home}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {self.home}/nginx-body;
    proxy_temp_path {self.home}/nginx-proxy;
    fastcgi_temp_path {self.home}/nginx-fastcgi;
    uwsgi_temp_path {self.home}/nginx-uwsgi;
    scgi_temp_path {self.home}/nginx-scgi;
    include {self.home}/sluice.conf;
}}
""")
        self.nginx = subprocess.Popen([NGINX, "-p", str(self.home), "-c", str(self.home / "nginx.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.front + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not come up: {(self.home / 'nginx-error.log').read_text()}")

    def stop(self) -> None:
        if self.nginx and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(timeout=10)
        for replica in self.replicas:
            replica.stop()


@pytest.fixture(scope="module")
def cluster(workdir):
    assert POSTGRES, "SLUICE_TEST_POSTGRES is not set: start a cluster with Tests/support/postgres.sh (.ci/run does)"
    assert Path(NGINX).exists(), "nginx is not installed (apt-get install nginx-light)"
    home = workdir / "replicas"
    home.mkdir()
    database = "sluice_e2e_" + uuid.uuid4().hex[:12]
    psql(f"CREATE DATABASE {database}")
    cluster = Cluster(home, database)
    try:
        cluster.admin = cluster.token("ops", ["admins"])
        cluster.replicas = [cluster.start_replica(index) for index in range(3)]
        cluster.start_nginx()
        yield cluster
    finally:
        cluster.stop()
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def chat(base: str, token: str, prompt: str = "hi [[sim chunks=3]]", request_id: str | None = None) -> str:
    client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0,
                           default_headers={"X-Request-Id": request_id} if request_id else None)
    stream = client.chat.completions.create(model=MODEL, stream=True, messages=[{"role": "user", "content": prompt}])
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def admin_get(base: str, path: str, token: str):
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def ledger_request_ids(cluster: Cluster) -> set[str]:
    return set(psql("SELECT request_id FROM usage", cluster.database).split())


def ledger_story(cluster: Cluster, missing: set[str]) -> str:
    """What each replica's log says about its ledger, for a failure's message: which of the missing
    requests it served, how many of its rows were queued, and its store and backlog lines."""
    story = []
    for replica in cluster.replicas:
        log = replica.log()
        served = sorted(request_id for request_id in missing if f'"{request_id}"' in log)
        lines = [line[:300] for line in log.splitlines() if '"logger":"sluice.ledger"' in line or "backlog" in line
                 or ("postgres" in line.lower() and '"level":"info"' not in line)]
        queued = log.count('"ledger":"queued"')
        exited = replica.proc.poll() if replica.proc else None
        if exited is not None:
            lines.append(f"EXITED with status {exited}; its log ends: " + " | ".join(log.splitlines()[-5:])[-1500:])
        story.append(f"replica :{replica.port}: served {len(served)} of the missing {served[:3]}, {queued} rows queued; "
                     f"its ledger and store lines (last 15 of {len(lines)}):\n  " + "\n  ".join(lines[-15:]))
    return "\n".join(story)


def test_one_token_works_on_every_replica_and_usage_counts_everything(cluster):
    token = cluster.token("jane", ["admins"])
    for replica in cluster.replicas:
        assert chat(replica.url, token)
    # Through nginx, round robin over the three.
    ids = [f"rr-{uuid.uuid4().hex[:8]}-{index}" for index in range(9)]
    for request_id in ids:
        assert chat(cluster.front, token, request_id=request_id)
    assert set(ids) <= ledger_request_ids(cluster)
    served = re.findall(r"up=127\.0\.0\.1:(\d+)", (cluster.home / "nginx-access.log").read_text())
    assert {int(port) for port in served} == {replica.port for replica in cluster.replicas}, "nginx spread the requests"
    # `sluice usage` and every replica's admin API count all twelve of jane's requests.
    table = {line.split()[0]: line.split()[1] for line in cluster.cli("usage", "--by", "identity").splitlines()[1:]}
    assert table["jane"] == "12"
    for replica in cluster.replicas:
        rows = admin_get(replica.url, "/admin/api/usage?by=identity", cluster.admin)["rows"]
        assert {row["key"]: row["requests"] for row in rows}["jane"] == 12


def test_a_group_limit_holds_across_replicas(cluster):
    """A 10 requests/minute group limit, counted in PostgreSQL: 30 requests sent at once through nginx
    to the three replicas (and straight to each) get exactly 10 answers and 20 refusals."""
    tokens = [cluster.token(f"eng{index}", ["eng"]) for index in range(3)]
    statuses: list[int] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        base = cluster.front if index % 2 == 0 else cluster.replicas[index % 3].url
        client = openai.OpenAI(base_url=base + "/v1", api_key=tokens[index % 3], max_retries=0)
        try:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi [[sim chunks=2]]"}])
            status = 200
        except openai.RateLimitError as error:
            assert "requests-per-minute limit (10)" in str(error)
            status = 429
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 10 + [429] * 20, statuses


def test_a_revoked_token_is_refused_by_every_replica_within_two_seconds(cluster):
    token = cluster.token("leaver", ["admins"])
    for replica in cluster.replicas:
        assert chat(replica.url, token)
    prefix = token[len("sk-sluice-"):][:8]
    request = urllib.request.Request(cluster.replicas[0].url + f"/admin/api/tokens/{prefix}", method="DELETE",
                                     headers={"Authorization": f"Bearer {cluster.admin}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    revoked_at = time.monotonic()
    refused: dict[int, float] = {}
    while len(refused) < 3 and time.monotonic() - revoked_at < 5:
        for replica in cluster.replicas:
            if replica.port in refused:
                continue
            try:
                chat(replica.url, token)
            except openai.AuthenticationError:
                refused[replica.port] = time.monotonic() - revoked_at
        time.sleep(0.05)
    assert len(refused) == 3, refused
    assert max(refused.values()) < 2, refused


def test_kill_9_of_a_replica_loses_no_finished_request(cluster):
    token = cluster.token("streamer", ["admins"])
    finished: list[str] = []
    failed: list[str] = []

    def stream(index: int) -> None:
        request_id = f"k9-{uuid.uuid4().hex[:8]}-{index}"
        try:
            chat(cluster.front, token, "go [[sim chunks=40 gap_ms=25]]", request_id=request_id)
            finished.append(request_id)
        except Exception:  # noqa: BLE001 - a stream cut by the kill is expected
            failed.append(request_id)

    threads = [threading.Thread(target=stream, args=(index,)) for index in range(24)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    time.sleep(0.4)
    victim = cluster.replicas[1]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    for thread in threads:
        thread.join(timeout=60)
    assert finished, "no stream finished"
    assert failed, "the kill cut no stream: the test proved nothing"
    missing = set(finished) - ledger_request_ids(cluster)
    assert not missing, f"finished requests without a usage row: {missing}"
    # Back in service on the same port, from the same database.
    cluster.replicas[1] = cluster.start_replica(1, port=victim.port)
    assert chat(cluster.replicas[1].url, token)


def test_postgres_restart_loses_no_finished_request_and_replicas_recover(cluster):
    folder, port = os.environ.get("SLUICE_TEST_POSTGRES_DIR"), os.environ.get("SLUICE_TEST_POSTGRES_PORT")
    assert folder and port, "SLUICE_TEST_POSTGRES_DIR and SLUICE_TEST_POSTGRES_PORT name the cluster to restart (.ci/run sets them)"
    token = cluster.token("during-restart", ["admins"])
    stop = threading.Event()
    finished: list[str] = []

    def traffic(worker: int) -> None:
        index = 0
        while not stop.is_set():
            request_id = f"pg-{worker}-{index}-{uuid.uuid4().hex[:6]}"
            index += 1
            try:
                chat(cluster.front, token, "x [[sim chunks=4 gap_ms=20]]", request_id=request_id)
                finished.append(request_id)
            except Exception:  # noqa: BLE001 - refusals while the database is away are allowed
                time.sleep(0.05)

    workers = [threading.Thread(target=traffic, args=(worker,)) for worker in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    before = len(finished)
    script = str(REPO_ROOT / "Tests" / "support" / "postgres.sh")
    # Down for four seconds: longer than a connection attempt waits, so rows must wait in the queue.
    subprocess.run(["bash", script, "stop", folder, port], check=True, timeout=120)
    time.sleep(4)
    subprocess.run(["bash", script, "restart", folder, port], check=True, timeout=120)
    time.sleep(3)
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert before > 0 and len(finished) > before, (before, len(finished))
    # Rows queued while the database was away are written once it is back.
    deadline = time.monotonic() + 20
    missing = set(finished)
    while time.monotonic() < deadline:
        missing = set(finished) - ledger_request_ids(cluster)
        if not missing:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} finished requests without a usage row: {sorted(missing)[:5]}\n" + ledger_story(cluster, missing)
    queued = sum(replica.log().count('"ledger":"queued"') for replica in cluster.replicas)
    print(f"{len(finished)} requests finished, {queued} of their rows waited in a replica's queue for the restart")
    assert queued > 0, "no row waited for the database: the outage was not exercised"
    # Each replica works again on its own: a token made after the restart, on every replica.
    fresh = cluster.token("after-restart", ["admins"])
    for replica in cluster.replicas:
        assert chat(replica.url, fresh)
