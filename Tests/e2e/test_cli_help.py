"""Every `--help` reads as ArgumentParser lays it out in an 80-column terminal: its prose is wrapped by
ArgumentParser, not cut by line breaks in the source, and no example line is wrapped in two."""
import subprocess

import pytest

from conftest import sluice_binary
from test_load import load_binary

COMMANDS = [
    [], ["serve"], ["simulate"], ["token"], ["token", "create"], ["token", "list"], ["token", "revoke"],
    ["token", "print"], ["usage"], ["login"],
]
WIDTH = 80


def help_text(command: list[str]) -> str:
    # Standard output is a pipe: ArgumentParser lays the text out for 80 columns.
    completed = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=30)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def layout_problems(text: str) -> list[str]:
    """Lines of the overview and discussion (the text before USAGE:) that show a break in the source:
    a prose line that had room for its paragraph's next word, or an indented example
    line whose end was wrapped onto a line of its own."""
    prose = text.split("\nUSAGE:", 1)[0].splitlines()
    problems = []
    for line, following in zip(prose, prose[1:]):
        if not following.strip() or following.startswith(" "):
            continue
        if line.startswith(" ") and line.strip():
            problems.append(f"example wrapped: {line!r} / {following!r}")
        elif line.strip() and not line.endswith(":") and len(line) + 1 + len(following.split()[0]) < WIDTH:
            # ArgumentParser would have put the next word on this line.
            problems.append(f"paragraph cut: {line!r} / {following!r}")
    return problems


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "sluice")
def test_sluice_help_is_laid_out_by_argument_parser(command):
    text = help_text([str(sluice_binary())] + command)
    assert "USAGE:" in text
    assert layout_problems(text) == []


@pytest.mark.skipif(not load_binary().exists(), reason=f"sluice-load not built at {load_binary()}")
def test_load_help_is_laid_out_by_argument_parser():
    assert layout_problems(help_text([str(load_binary())])) == []


def test_the_check_sees_a_cut():
    # What the check is for: `sluice login --help` as it printed before its source's breaks went.
    before = ("OVERVIEW: Sign in.\n\n"
              "The gateway's GET /.well-known/sluice names the issuer and the public client;\n"
              "the issuer's\n"
              "discovery document names its device and token endpoints.\n"
              "  sluice token print          # a valid access token, refreshed when\n"
              "needed\n\nUSAGE: sluice login\n")
    assert [p.split(":")[0] for p in layout_problems(before)] == ["paragraph cut", "example wrapped"]
    after = before.replace("issuer's\ndiscovery", "issuer's discovery").replace("when\nneeded", "when needed")
    assert layout_problems(after) == []
