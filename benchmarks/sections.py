"""BENCHMARKS.md, one `## ` section per benchmark: put a section in, replacing its old text."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(heading: str, text: str, path: Path = BENCHMARKS) -> None:
    """Replace the section that starts with `heading` by `text` (added at the end if new)."""
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    start = current.find(heading)
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(heading))
        updated = current[:start] + text + (current[end + 1 :] if end != -1 else "")
    path.write_text(updated.rstrip("\n") + "\n")
