"""Docs that lie are bugs: every command they show parses, every section the code cites
exists, the layout they describe is the one on disk, and nothing points outside the
repository."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import click
import pytest

from datagate_pipelines.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


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


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    suffixes = {".py", ".md", ".sql", ".yaml", ".toml", ".txt", ".cfg", ".ini", ""}
    return [ROOT / n for n in names if Path(n).suffix in suffixes and (ROOT / n).is_file()]


# Spelled in two halves so that this file does not match itself.
OUTSIDE = re.compile("(?:\\.\\./|/work/)" + "shared/")


def test_nothing_points_outside_the_repository():
    outside = [
        str(path.relative_to(ROOT))
        for path in tracked_text_files()
        if OUTSIDE.search(path.read_text(errors="replace"))
    ]
    assert outside == []


CITATION = re.compile(r"docs/([a-z0-9-]+\.md)(?:,?\s*§\s*([A-Z]?\d+(?:\.\d+)?))?")


def _headings(doc: Path) -> list[str]:
    return [
        line.lstrip("#").strip() for line in doc.read_text().splitlines() if line.startswith("#")
    ]


def test_every_cited_doc_and_section_exists():
    missing = []
    for path in tracked_text_files():
        if path.suffix not in {".py", ".sql", ".yaml", ".toml"}:
            continue
        for name, section in CITATION.findall(path.read_text(errors="replace")):
            doc = ROOT / "docs" / name
            if not doc.exists():
                missing.append(f"{path.relative_to(ROOT)}: docs/{name}")
            elif section and not any(
                re.match(rf"{re.escape(section)}[.\s]", heading + " ") for heading in _headings(doc)
            ):
                missing.append(f"{path.relative_to(ROOT)}: docs/{name} §{section}")
    assert missing == []


def test_the_readme_layout_lists_every_folder():
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("```")[1]
    listed = {line.split()[0].rstrip("/") for line in layout.splitlines() if line.strip()}
    package = ROOT / "datagate_pipelines"
    folders = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    top = {
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name not in {"test-output"}
    }
    tracked = {Path(str(f.relative_to(ROOT))).parts[0] for f in tracked_text_files()}
    assert folders <= listed, folders - listed
    assert (top & tracked) <= listed, (top & tracked) - listed
