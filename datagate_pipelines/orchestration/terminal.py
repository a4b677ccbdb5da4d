"""The terminal logger of runs the CLI starts: the assets' own lines, not Dagster's events.

Dagster's console logger prints every framework event, and a failed step as its wrapper
plus a long traceback. A run started by `datagate sync|bill` shows the assets' progress
lines (and retries) instead; the CLI then prints the failure's root cause as one line
(run_failures.py). `DATAGATE_LOG_LEVEL=DEBUG` uses Dagster's console logger instead.
Runs launched by the daemon or the UI use Dagster's default loggers.
"""

from __future__ import annotations

import logging
import time

import dagster as dg

# Framework events worth a line: a step waiting to be retried looks hung otherwise.
SHOWN_EVENTS = frozenset({"STEP_UP_FOR_RETRY"})


class TerminalFormatter(logging.Formatter):
    """`16:13:58 products: portal demo: …`, with `warning:`/`error:` before the text."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        text = meta.get("orig_message") or record.getMessage()
        step = meta.get("step_key") or meta.get("resource_name") or meta.get("job_name") or "run"
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {step}: {level}{text}"


class OwnLines(logging.Filter):
    """Lets through the lines the run's code logs, and the events in SHOWN_EVENTS.

    Dagster also logs lines of its own without an event (e.g. "Dependencies for step …
    failed. Not executing.") for steps that never start, so a line counts only once its
    step has started (STEP_START, a DEBUG event: this filter sits on the logger, which sees
    DEBUG; its handler keeps the configured level).
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        if event is not None:
            if event.event_type_value == "STEP_START" and step:
                self.started.add(step)
            return event.event_type_value in SHOWN_EVENTS
        return step is None or step in self.started


@dg.logger(
    {
        "log_level": dg.Field(str, is_required=False, default_value="INFO"),
    },
    description="The assets' own log lines (and step retries) on stderr, without Dagster's "
    "framework events: what `datagate sync|bill` shows while a run works.",
)
def terminal_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = logging.getLevelName(str(init_context.logger_config["log_level"]).upper())
    logger = logging.Logger("datagate", level=logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setLevel(level if isinstance(level, int) else logging.INFO)
    handler.setFormatter(TerminalFormatter())
    logger.addFilter(OwnLines())
    logger.addHandler(handler)
    return logger
