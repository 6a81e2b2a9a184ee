"""`sluice serve` that cannot serve says why and stops before it starts anything: a port already in use
(sluice run twice, or something else on 8080) and TLS files it cannot read."""
import socket
import subprocess
from pathlib import Path

from conftest import server_env, sluice_binary


def serve(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(sluice_binary()), "serve", "--db", str(tmp_path / "sluice.db"), *arguments],
                          capture_output=True, text=True, timeout=60, env=server_env(tmp_path), cwd=tmp_path)


def started_nothing(stderr: str) -> bool:
    # Neither the simulator's warning nor the store's line: the check came first.
    return "SIMULATOR" not in stderr and '"store"' not in stderr and "crashed" not in stderr


def test_a_port_in_use_is_named_with_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = serve(tmp_path, "--port", str(port))
    assert completed.returncode == 64, completed.stderr
    assert f"127.0.0.1:{port} is in use" in completed.stderr and "--port" in completed.stderr, completed.stderr
    assert "bind(descriptor" not in completed.stderr
    assert started_nothing(completed.stderr), completed.stderr


def test_an_unreadable_tls_file_stops_start_up_naming_it(tmp_path):
    missing = tmp_path / "missing.pem"
    completed = serve(tmp_path, "--port", "0", "--tls-cert", str(missing), "--tls-key", str(missing))
    assert completed.returncode == 64, completed.stderr
    assert f"configuration error in {missing}, key 'server.tls.certificateFile'" in completed.stderr, completed.stderr
    # A debug build asserted here: the store was opened before the TLS files were read, and not closed.
    assert started_nothing(completed.stderr), completed.stderr


def test_a_store_it_cannot_use_is_named_with_why(tmp_path):
    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("not a database, but long enough to be read as a header\n" * 4)
    for store, why in [(tmp_path, "it cannot be opened"), (not_a_database, "the file is not a SQLite database")]:
        completed = subprocess.run([str(sluice_binary()), "serve", "--port", "0", "--db", str(store)], capture_output=True,
                                   text=True, timeout=60, env=server_env(tmp_path), cwd=tmp_path)
        assert completed.returncode == 64, completed.stderr
        assert f"cannot use the SQLite store {store}: {why}" in completed.stderr, completed.stderr
        assert "SIMULATOR" not in completed.stderr and "crashed" not in completed.stderr, completed.stderr
