"""Every command the docs show exists and parses: docs that lie are bugs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from datagate_pipelines.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md"]


def shown_commands(prefix: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        if not doc.exists():
            continue
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.splitlines():
                command = line.split("#", 1)[0].strip()
                if command.startswith(prefix):
                    found.append((doc.name, command))
    return found


def parse(command: click.Command, name: str, args: list[str]) -> None:
    """Parse like click would when running, without running: raises on a bad command line."""
    context = command.make_context(name, list(args))
    if isinstance(command, click.Group):
        sub_name, sub, rest = command.resolve_command(
            context, [*context._protected_args, *context.args]
        )
        assert sub is not None, f"unknown command {sub_name}"
        parse(sub, sub_name, rest)


@pytest.mark.parametrize(("doc", "line"), shown_commands("datagate "))
def test_documented_datagate_commands_parse(doc, line):
    parse(main, "datagate", shlex.split(line)[1:])


@pytest.mark.parametrize(("doc", "line"), shown_commands("make "))
def test_documented_make_targets_exist(doc, line):
    target = shlex.split(line)[1]
    assert re.search(rf"^{re.escape(target)}:", (ROOT / "Makefile").read_text(), flags=re.M), line


def test_the_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text().split("\n## ", 1)[0]
    assert "make demo" in head and "make test" in head
