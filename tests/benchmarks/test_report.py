"""BENCHMARKS.md keeps every benchmark's section: one rewritten, the others untouched."""

from __future__ import annotations

from benchmarks.report import write_section


def test_a_section_is_replaced_in_place_and_the_others_are_kept(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## A\n\nold a\n\n## B\n\nold b\n")
    write_section("## A", "## A\n\nnew a\n", path)
    write_section("## C", "## C\n\nc\n", path)
    write_section("## B", "## B\n\nnew b", path)
    assert path.read_text() == "# Benchmarks\n\n## A\n\nnew a\n\n## B\n\nnew b\n\n## C\n\nc\n"
