"""BENCHMARKS.md: each benchmark owns one `## ` section and rewrites only that one."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(title: str, section: str, path: Path = BENCHMARKS) -> None:
    """Replace the section headed `title` (e.g. "## Billing engine") with `section`, or
    append it; the other sections stay as they are, one blank line between sections."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    body = section.strip("\n") + "\n"
    start = text.find(title + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        following = text.find("\n## ", start + len(title))
        rest = "" if following < 0 else "\n" + text[following + 1 :]
        text = text[:start] + body + rest
    path.write_text(text.rstrip("\n") + "\n")
