"""BENCHMARKS.md: one section per benchmark, each starting with its `## Title` line."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(section: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section whose title is `section`'s first line (or append it); the other
    sections stay as they are."""
    title = section.split("\n", 1)[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    start = text.find(title + "\n")
    if start >= 0:
        following = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if following < 0 else text[following:])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")
