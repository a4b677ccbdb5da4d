"""What every command shares: one-line errors, the instance, the warehouse, periods.

`PROJECT_ROOT`, `dagster_home` and `instance` come from `orchestration.instance`.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from datagate_pipelines import DatagateError

#: Exit statuses of every command (docs/operations.md): 0 done, 1 an error (one line,
#: nothing written), 3 finished, but some exports failed (listed, the first 20).
EXIT_ERROR = 1
EXIT_FAILED_EXPORTS = 3
#: Failures listed one per line before the rest is counted.
MAX_LISTED = 20


def verbose() -> bool:
    """Whether `datagate --verbose` was given."""
    context = click.get_current_context(silent=True)
    return bool(context and context.find_root().params.get("verbose"))


def expected_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """DatagateError → `error: <message>` on stderr and exit status 1, no traceback; with
    `--verbose`, the error's `detail()` (a failed run's id and trace) follows."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DatagateError as exc:
            click.echo(f"error: {exc}", err=True)
            detail = getattr(exc, "detail", None)
            if verbose() and callable(detail):
                click.echo(detail(), err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


def operator_name() -> str:
    """Who runs the command, for the records that keep it: DATAGATE_OPERATOR, else the login."""
    return os.environ.get("DATAGATE_OPERATOR") or getpass.getuser()


def engine() -> Any:
    from datagate_pipelines.warehouse.db import warehouse_engine

    return warehouse_engine()


def parse_period(value: str) -> date:
    """YYYY-MM (or YYYY-MM-01) → the period's first day."""
    match = re.fullmatch(r"(\d{4})-(\d{2})(?:-01)?", value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise click.BadParameter(f"{value!r} is not a billing period (YYYY-MM)")
    return date(int(match.group(1)), int(match.group(2)), 1)


class Period(click.ParamType):
    name = "YYYY-MM"

    def convert(self, value: Any, param: Any, ctx: Any) -> date:
        if isinstance(value, date):
            return value
        try:
            return parse_period(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


PERIOD = Period()


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def portal_option(required: bool = True) -> Callable[..., Any]:
    return click.option(
        "--portal", "portal_id", required=required, help="Portal id (from portals.yaml)."
    )
