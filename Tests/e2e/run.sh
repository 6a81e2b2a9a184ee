#!/usr/bin/env bash
# End-to-end suite: the real clients (openai, boto3, anthropic, Claude Code, Codex, curl) against the real
# `sluice serve` binary with its built-in Bedrock simulator upstream.
#
#   bash Tests/e2e/run.sh [pytest args…]
#
# Environment:
#   SLUICE_BIN         server binary (default .build/debug/sluice; built with `swift build --product sluice`
#                      when it is missing)
#   SLUICE_E2E_TOKEN   client token the clients send (default: a dummy; no client auth exists yet)
#   SLUICE_E2E_VENV    virtualenv to use/create (default .venv-e2e/ at the repository root)
#   PYTHON             interpreter for the virtualenv (default python3, 3.10 or later)
#
# Exits with pytest's status; "no tests ran" (5) is a failure too. pytest's summary line is the last
# line printed (CI reads it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

bin="${SLUICE_BIN:-.build/debug/sluice}"
if [[ ! -x "$bin" ]]; then
    if [[ -n "${SLUICE_BIN:-}" ]]; then
        echo "SLUICE_BIN=$SLUICE_BIN is not an executable" >&2
        exit 2
    fi
    echo "== building sluice ($bin is missing)" >&2
    swift build --product sluice >&2
fi

venv="${SLUICE_E2E_VENV:-$root/.venv-e2e}"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "== preparing $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" >&2
    echo "$wanted" > "$stamp"
fi

cd "$here"
status=0
"$venv/bin/python" -m pytest -q -rA -p no:cacheprovider "$@" || status=$?
# 5 = no tests were collected: a suite that runs nothing must not pass.
exit "$status"
