"""`dagster dev` in a subprocess for end-to-end tests: start, GraphQL, runs, a clean stop.

The process is started in its own session, so everything it spawns (webserver, daemon,
code server, run workers) can be found by session id and stopped as a group; the stop
reports any process that outlived it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCATION = "datagate"
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

T = TypeVar("T")

RUN_FIELDS = "runId jobName status creationTime startTime endTime tags { key value }"

RUNS = f"""
query Runs($filter: RunsFilter, $limit: Int) {{
  runsOrError(filter: $filter, limit: $limit) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on Error {{ message }}
  }}
}}"""

RUN_FAILURES = """
query Failures($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message } }
        ... on RunFailureEvent { message }
        ... on EngineEvent { message error { message } }
      }
    }
  }
}"""

WORKSPACE = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}"""


SIGINT_DEFAULT_THEN_EXEC = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


class E2EError(AssertionError):
    """Something in the end-to-end stack did not happen (in time)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tag(run: Mapping[str, Any], key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


@dataclass
class DagsterDev:
    """A running `dagster dev` (webserver + daemon + code server) on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    home: Path
    log: Path
    http: httpx.Client = field(repr=False)
    stopped: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ polling

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise E2EError(
                f"dagster dev exited with status {self.process.returncode}; its log "
                f"({self.log}) ends with:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def wait_for(
        self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5
    ) -> T:
        """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            self.check_alive()
            try:
                last = probe()
            except httpx.TransportError as exc:  # the webserver is (re)starting
                last = exc
            if last and not isinstance(last, Exception):
                return last
            if time.monotonic() > deadline:
                raise E2EError(
                    f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
                )
            time.sleep(interval)

    # ------------------------------------------------------------------ GraphQL

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise E2EError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def wait_until_loaded(self, timeout: float) -> None:
        """The webserver answers and the code location has loaded without error."""

        def ready() -> bool:
            if self.http.get("/server_info").status_code != 200:
                return False
            entries = self.graphql(WORKSPACE)["workspaceOrError"].get("locationEntries") or []
            for entry in entries:
                if entry["name"] != LOCATION or entry["loadStatus"] != "LOADED":
                    continue
                loaded = entry["locationOrLoadError"]
                if loaded["__typename"] == "PythonError":
                    raise E2EError(f"code location failed to load: {loaded['message']}")
                return True
            return False

        self.wait_for("the webserver and the code location", ready, timeout)

    def runs(
        self,
        *,
        job: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_ids: Iterable[str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Runs, newest first."""
        run_filter: dict[str, Any] = {}
        if job:
            run_filter["pipelineName"] = job
        if tags:
            run_filter["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if run_ids is not None:
            run_filter["runIds"] = list(run_ids)
        result = self.graphql(RUNS, filter=run_filter, limit=limit)["runsOrError"]
        if result["__typename"] != "Runs":
            raise E2EError(f"runsOrError: {result}")
        return result["results"]

    def run(self, run_id: str) -> dict[str, Any]:
        (found,) = self.runs(run_ids=[run_id])
        return found

    def failure_summary(self, run_id: str) -> str:
        logs = self.graphql(RUN_FAILURES, runId=run_id)["logsForRun"]
        messages = []
        for event in logs.get("events", []):
            error = (event.get("error") or {}).get("message")
            if event["__typename"] == "ExecutionStepFailureEvent":
                messages.append(f"{event['stepKey']}: {error}")
            elif event["__typename"] == "RunFailureEvent" or error:
                messages.append(f"{event.get('message')} {error or ''}".strip())
        return "\n".join(messages) or "no failure events"

    def wait_for_run(self, run_id: str, status: str = "SUCCESS", timeout: float = 180) -> dict:
        """Wait until the run reaches `status`; a run that ends otherwise fails at once."""

        def reached() -> dict[str, Any] | None:
            run = self.run(run_id)
            if run["status"] == status:
                return run
            if run["status"] in FINISHED:
                raise E2EError(
                    f"run {run_id} ({run['jobName']}) ended {run['status']}, expected {status}:\n"
                    f"{self.failure_summary(run_id)}"
                )
            return None

        return self.wait_for(f"run {run_id} to reach {status}", reached, timeout)

    # ------------------------------------------------------------------ shutdown

    def processes(self) -> list[psutil.Process]:
        """Every live process started by this dagster dev: its session, or its DAGSTER_HOME."""
        found = []
        for proc in psutil.process_iter(["pid", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            try:
                if os.getsid(proc.pid) == self.process.pid or (
                    proc.environ().get("DAGSTER_HOME") == str(self.home)
                ):
                    found.append(proc)
            except (psutil.Error, ProcessLookupError, PermissionError):
                continue
        return found

    def stop(self, timeout: float = 60) -> list[str]:
        """SIGINT to the process group, then SIGKILL after `timeout`; returns what survived
        (described, then killed), so a test can assert that nothing did."""
        if self.stopped:
            return []
        self.stopped = True
        self.http.close()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        # Children get the same SIGINT and may finish a moment after their parent.
        deadline = time.monotonic() + 15
        survivors = self.processes()
        while survivors and time.monotonic() < deadline:
            time.sleep(0.5)
            survivors = [p for p in survivors if _alive(p)]
        described = []
        for proc in survivors:
            with contextlib.suppress(psutil.Error):
                described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}")
                proc.kill()
        return described


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def launch_dagster_dev(home: Path, env: Mapping[str, str], log: Path) -> DagsterDev:
    """Start `dagster dev -w workspace.yaml` on a free loopback port with DAGSTER_HOME=`home`;
    returns at once (see `DagsterDev.wait_until_loaded`)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as handle:
        # dagster dev stops cleanly on SIGINT, unless it inherits SIGINT ignored (pytest run
        # as a shell's background job): reset it before exec-ing (no preexec_fn: threads).
        process = subprocess.Popen(
            [sys.executable, "-c", SIGINT_DEFAULT_THEN_EXEC, *command],
            cwd=PROJECT_ROOT,
            env={**env, "DAGSTER_HOME": str(home), "PYTHONUNBUFFERED": "1"},
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return DagsterDev(
        process, port, home, log, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    )


def start_dagster_dev(
    home: Path, env: Mapping[str, str], log: Path, *, startup_timeout: float = 120
) -> DagsterDev:
    """`launch_dagster_dev`, then wait until its code location has loaded."""
    dev = launch_dagster_dev(home, env, log)
    try:
        dev.wait_until_loaded(startup_timeout)
    except BaseException:
        dev.stop()
        raise
    return dev
