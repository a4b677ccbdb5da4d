"""Benchmark of the command line's start: `--help` and the read-only commands, each a fresh process.

    .venv/bin/python benchmarks/bench_cli.py                # print the Markdown block
    .venv/bin/python benchmarks/bench_cli.py --write        # and record it in BENCHMARKS.md
    .venv/bin/python benchmarks/bench_cli.py --ref main     # also time another git ref's CLI

Set-up (not timed), in a temporary folder: a generated HaloPSA tenant served by the
simulator on loopback, a portals.yaml pointing at it, a SQLite warehouse and the local
Dagster instance (deploy/dagster.yaml); one sync and the drafts of one period through
`launch.run_sync` / `launch.run_billing`, so `invoices` has invoices to print, `requests` a
request log and `portals status` runs to read.

Timed: every command `--runs` times, each run a new `python -m datagate_pipelines.cli …`
process, in rounds (each round runs every command once, the baseline included), so a
change in the shared machine's load touches all of them alike. Reported: the median wall
time and the median CPU time (the child's user + system) per command, and their ratio to
the baseline measured in the same rounds: `python -c pass`, a Python that starts and
imports nothing. Whether a command loaded Dagster or pandas comes from one more run with
`-X importtime`.

Python normally caches compiled modules (`__pycache__`); this sandbox sets
PYTHONDONTWRITEBYTECODE=1, so every process would compile every module again. The timed
processes use a cache of their own instead (PYTHONPYCACHEPREFIX in the temporary folder,
filled by one warm-up run per command: nothing is written into .venv), as an installed
package's users have; `--no-cache` times them compiling everything. With `--ref REF`, the
package of that git ref (`git archive`) is timed the same way with the same environment, as
the "before" of a change.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import write_section  # noqa: E402

SECTION_TITLE = "## Command line"
PORTAL_ID = "bench"
PERIOD = date(2026, 7, 1)
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret-value"
SEED = 7
COMMANDS: dict[str, list[str]] = {
    "datagate --help": ["--help"],
    "datagate portals status": ["portals", "status"],
    "datagate invoices": ["invoices", "--portal", PORTAL_ID, "--period", f"{PERIOD:%Y-%m}"],
    "datagate requests": ["requests"],
}
BASELINE = "python -c pass"
HEAVY = ("dagster", "pandas")
PORTALS_YAML = f"""portals:
  - id: {PORTAL_ID}
    name: Bench Telecom
    billing_start: {PERIOD:%Y-%m}
    halopsa:
      client_id_env: BENCH_HALO_CLIENT_ID
      client_secret_env: BENCH_HALO_CLIENT_SECRET
      tenant: bench
      authorization_server: {{base}}/auth
      resource_server: {{base}}/api
"""


@dataclass
class Variant:
    """One package to time: this checkout's, or another git ref's."""

    name: str
    pythonpath: str | None = None
    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    loaded: dict[str, list[str]] = field(default_factory=dict)


def set_up(folder: Path, customers: int) -> dict[str, str]:
    """A synced and billed portal in `folder`; the environment the commands run with."""
    from datagate_pipelines.orchestration.instance import instance
    from datagate_pipelines.orchestration.launch import run_billing, run_sync
    from datagate_simulators.halopsa.generator import generate_tenant
    from datagate_simulators.halopsa.testing import make_sim

    sim = make_sim(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, tenant="bench")
    generate_tenant(sim.backend, customers=customers, seed=SEED)
    environment = {
        "DAGSTER_HOME": str(folder / "dagster"),
        "DATAGATE_DATABASE_URL": f"sqlite:///{folder / 'warehouse.db'}",
        "DATAGATE_PORTALS_FILE": str(folder / "portals.yaml"),
        "BENCH_HALO_CLIENT_ID": CLIENT_ID,
        "BENCH_HALO_CLIENT_SECRET": CLIENT_SECRET,
    }
    saved = dict(os.environ)
    try:
        with sim.serve() as server:
            (folder / "portals.yaml").write_text(PORTALS_YAML.format(base=server.base_url))
            os.environ.update(environment)
            dagster = instance()
            run_sync(dagster, PORTAL_ID)
            run_billing(dagster, PORTAL_ID, PERIOD)
    finally:  # this process's environment as it was
        os.environ.clear()
        os.environ.update(saved)
    return environment


@contextmanager
def ref_package(ref: str, folder: Path) -> Iterator[str]:
    """The package (and deploy/) of git ref `ref`, unpacked under `folder`; its path."""
    archive = subprocess.run(
        ["git", "archive", ref, "datagate_pipelines", "deploy"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    target = folder / f"ref-{ref.replace('/', '_')}"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    yield str(target)


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One process: (wall seconds, CPU seconds of the child). It runs in the folder of
    DATAGATE_PORTALS_FILE: not in the checkout, whose package would shadow PYTHONPATH's."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=errors, cwd=_folder(env)
        )
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            raise RuntimeError(f"{shlex.join(argv)} exited {process.returncode}: {text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def loaded_modules(argv: list[str], env: dict[str, str]) -> list[str]:
    """Which of HEAVY the command imported (one run with -X importtime)."""
    result = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        cwd=_folder(env),
        check=True,
    )
    top_level = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    return [name for name in HEAVY if name in top_level]


def _folder(env: dict[str, str]) -> Path:
    return Path(env["DATAGATE_PORTALS_FILE"]).parent


def benchmark(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        environment = set_up(folder, args.customers)
        base_env = {**os.environ, **environment}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        if args.no_cache:
            base_env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            base_env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
        variants = [Variant("this checkout")]
        unpacked = ref_package(args.ref, folder) if args.ref else nullcontext(None)
        with unpacked as ref_path:
            if ref_path:
                variants.append(Variant(args.ref, ref_path))
            cli = [sys.executable, "-m", "datagate_pipelines.cli"]
            for variant in variants:
                env = _env(base_env, variant)
                for name, command in COMMANDS.items():  # warm-up: fills the bytecode cache
                    run_once([*cli, *command], env)
                    variant.loaded[name] = loaded_modules([*cli, *command], env)
            baseline_wall: list[float] = []
            baseline_cpu: list[float] = []
            for _round in range(args.runs):
                wall, cpu = run_once([sys.executable, "-c", "pass"], base_env)
                baseline_wall.append(wall)
                baseline_cpu.append(cpu)
                for variant in variants:
                    env = _env(base_env, variant)
                    for name, command in COMMANDS.items():
                        wall, cpu = run_once([*cli, *command], env)
                        variant.wall.setdefault(name, []).append(wall)
                        variant.cpu.setdefault(name, []).append(cpu)
    return {
        "baseline": {"wall": baseline_wall, "cpu": baseline_cpu},
        "variants": variants,
        "machine": _machine(),
        "load": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def _env(base: dict[str, str], variant: Variant) -> dict[str, str]:
    if variant.pythonpath is None:
        return base
    return {**base, "PYTHONPATH": variant.pythonpath}


def _machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{cpus} CPU(s)"
    )


def markdown(results: dict, command: str, args: argparse.Namespace) -> str:
    base_wall = statistics.median(results["baseline"]["wall"])
    base_cpu = statistics.median(results["baseline"]["cpu"])
    variants: list[Variant] = results["variants"]
    cache = (
        "no bytecode cache (every module compiled at each start)"
        if args.no_cache
        else "bytecode cached (a warm-up run per command filled it)"
    )
    lines = [
        SECTION_TITLE,
        "",
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}; {results['date']}; load average when the runs ended: "
        f"{results['load']} (the machine is shared: compare the ratios). Each figure is the "
        f"median of {args.runs} runs, each a new process, {cache}; the portal has "
        f"{args.customers} generated customers, synced and billed for {PERIOD:%Y-%m}.",
        "",
    ]
    header, rule = "| command |", "|---|"
    for variant in variants:
        prefix = "" if variant is variants[0] else f"{variant.name}: "
        header += f" {prefix}wall | {prefix}CPU | {prefix}wall ÷ baseline | {prefix}loads |"
        rule += "---:|---:|---:|---|"
    lines += [
        header,
        rule,
        f"| `{BASELINE}` (baseline) | {base_wall:.3f} s | {base_cpu:.3f} s | 1.0 | — |"
        + " — | — | — | — |" * (len(variants) - 1),
    ]
    for name in COMMANDS:
        row = "".join(_cells(variant, name, base_wall) for variant in variants)
        lines.append(f"| `{name}` |{row}")
    lines += [
        "",
        "`wall`: from starting the process to its end, waiting for a CPU included (on a shared "
        "machine whose load is above its CPU count, most of the difference to `CPU`); `CPU`: "
        "the process's user + system time, what the command itself costs. `wall ÷ baseline`: "
        f"against `{BASELINE}` in the same rounds. "
        "`loads`: Dagster or pandas imported by the command (from `-X importtime`). The "
        "read-only commands import neither; the subcommands' modules are imported only when "
        "they run (cli.py), `portals status` reads the last runs from the local instance's "
        "run storage without Dagster (orchestration/run_history.py), and the warehouse loads "
        "Alembic only when it must migrate (warehouse/db.py).",
        "",
    ]
    return "\n".join(lines)


def _cells(variant: Variant, name: str, base_wall: float) -> str:
    wall = statistics.median(variant.wall[name])
    cpu = statistics.median(variant.cpu[name])
    loads = ", ".join(variant.loaded[name]) or "neither"
    return f" {wall:.3f} s | {cpu:.3f} s | {wall / base_wall:.1f} | {loads} |"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs of each command")
    parser.add_argument("--customers", type=int, default=200, help="size of the tenant")
    parser.add_argument("--ref", help="also time the CLI of this git ref (e.g. main)")
    parser.add_argument(
        "--no-cache", action="store_true", help="time without a bytecode cache (cold compiles)"
    )
    parser.add_argument("--write", action="store_true", help="record the section in BENCHMARKS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    results = benchmark(args)
    command = " ".join([".venv/bin/python benchmarks/bench_cli.py", *argv])
    results["markdown"] = markdown(results, command, args)
    print(results["markdown"])
    if args.write:
        write_section(SECTION_TITLE, results["markdown"])
    return results


if __name__ == "__main__":
    main()
