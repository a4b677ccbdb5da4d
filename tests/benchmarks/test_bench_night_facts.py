"""The night benchmark's judgements, on hand-made run facts (no daemon needed)."""

from __future__ import annotations

from benchmarks.bench_night import budget_floor, max_queue_depth, outcome, overlaps


def run(run_id, portal, start, end, *, status="SUCCESS", parent=None, **times):
    return {"run_id": run_id, "portal": portal, "start": start, "end": end,
            "status": status, "parent": parent, **times}  # fmt: skip


def test_runs_of_one_portal_that_overlap_are_named_others_are_not():
    runs = [
        run("a1", "acme", 0, 10),
        run("a2", "acme", 10, 20),  # starts as a1 ends: fine
        run("a3", "acme", 19, 30),  # starts before a2 ended
        run("g1", "globex", 5, 25),  # another portal at the same time: fine
        run("q", "acme", None, None, status="FAILURE"),  # never started
    ]
    assert overlaps(runs) == [("acme", "a2", "a3")]


def test_the_queue_depth_counts_runs_between_enqueued_and_dequeued():
    runs = [
        run("1", "a", 3, 4, enqueued=0, dequeued=2),
        run("2", "b", 5, 6, enqueued=1, dequeued=4),
        run("3", "c", 7, 8, enqueued=1.5, dequeued=5),
        run("4", "d", 9, 9, enqueued=4.5, dequeued=6),
    ]
    assert max_queue_depth(runs) == 3


def test_a_failed_run_counts_as_recovered_only_when_its_retries_end_in_success():
    runs = [
        run("s1", "a", 0, 1, status="FAILURE"),
        run("s2", "a", 2, 3, status="FAILURE", parent="s1"),
        run("s3", "a", 4, 5, parent="s2"),
        run("b1", "b", 0, 1, status="FAILURE"),
    ]
    assert outcome(runs) == {"failed": 3, "retries": 2, "unrecovered": ["b1"]}


def test_the_api_floor_is_one_window_per_full_budget_after_the_first():
    assert budget_floor(300, (300, 30.0)) == 0
    assert budget_floor(301, (300, 30.0)) == 30.0
    assert budget_floor(900, (300, 30.0)) == 60.0
    assert budget_floor(0, (300, 30.0)) == 0
