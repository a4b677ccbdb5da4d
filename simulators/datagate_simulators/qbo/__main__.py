"""Serve the QBO simulator on loopback.

    python -m datagate_simulators.qbo --port 0 --realm 9130350000000000 \\
        --client-id X --client-secret Y --refresh-token R

The first line on stdout is the base URL (``http://127.0.0.1:PORT``); it serves until
SIGINT/SIGTERM. More companies can be seeded at runtime with ``POST /_sim/qbo/companies``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from datagate_simulators.faults import add_fault_arguments, apply_fault_arguments
from datagate_simulators.server import run_server

from .app import create_app
from .backend import QBOBackend
from .clock import FakeClock, SystemClock
from .settings import OAuthSettings, QBOSettings, ThrottleSettings


def _throttle(value: str) -> tuple[int, float]:
    try:
        count, _, seconds = value.partition("/")
        return int(count), float(seconds or 60)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected COUNT/SECONDS, e.g. 500/60, not {value!r}"
        ) from None


def _tax_code(value: str) -> dict[str, object]:
    name, _, rate = value.rpartition(":")
    try:
        return {"name": name, "rate": Decimal(rate)}
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"expected NAME:RATE_PERCENT, not {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datagate_simulators.qbo",
        description="QuickBooks Online simulator (OAuth 2.0 + v3 Accounting API) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    company = parser.add_argument_group("the company and the OAuth app connected to it")
    company.add_argument("--realm", default="9130350000000000", help="company (realm) id")
    company.add_argument("--company-name", default=None)
    company.add_argument("--client-id", required=True)
    # Secrets may come from the environment instead, out of the process list.
    company.add_argument(
        "--client-secret",
        default=os.environ.get("QBO_SIM_CLIENT_SECRET"),
        required="QBO_SIM_CLIENT_SECRET" not in os.environ,
    )
    company.add_argument(
        "--refresh-token",
        default=os.environ.get("QBO_SIM_REFRESH_TOKEN"),
        required="QBO_SIM_REFRESH_TOKEN" not in os.environ,
        help="the app's first refresh token",
    )
    company.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="registered redirect URI (repeatable; none = accept any)",
    )
    company.add_argument(
        "--custom-txn-numbers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Preferences.SalesFormsPrefs.CustomTxnNumbers",
    )
    company.add_argument(
        "--using-sales-tax",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Preferences.TaxPrefs.UsingSalesTax",
    )
    company.add_argument(
        "--tax-code",
        type=_tax_code,
        action="append",
        default=[],
        metavar="NAME:RATE",
        help="a TaxCode with one rate, e.g. CA:8.25",
    )
    limits = parser.add_argument_group("limits and quirks")
    limits.add_argument(
        "--throttle",
        type=_throttle,
        default=(500, 60.0),
        metavar="N/SECONDS",
        help="requests per rolling window per company (default 500/60)",
    )
    limits.add_argument(
        "--concurrent", type=int, default=10, help="concurrent requests per company (default 10)"
    )
    limits.add_argument(
        "--batch-throttle",
        type=_throttle,
        default=(40, 60.0),
        metavar="N/SECONDS",
        help="batch requests per window (default 40/60)",
    )
    limits.add_argument("--batch-max", type=int, default=30, help="items per batch (default 30)")
    limits.add_argument(
        "--shuffle-batch", action="store_true", help="answer batch items in random order"
    )
    limits.add_argument(
        "--xml-throttle",
        action="store_true",
        help="429 bodies in XML, as QBO has been seen to send",
    )
    limits.add_argument(
        "--lowercase-gateway-faults",
        action="store_true",
        help='401/403/429 as {"fault":{"error":[…]}} (gateway shape)',
    )
    tokens = parser.add_argument_group("OAuth tokens")
    tokens.add_argument("--access-token-ttl", type=float, default=3600)
    tokens.add_argument(
        "--rotate-after-seconds",
        type=float,
        default=24 * 3600,
        help="a refresh token older than this is replaced on refresh",
    )
    tokens.add_argument(
        "--grace-seconds",
        type=float,
        default=24 * 3600,
        help="how long a replaced refresh token keeps working",
    )
    tokens.add_argument("--code-ttl", type=float, default=600)
    hooks = parser.add_argument_group("webhooks (docs/qbo-api.md §6.2–§6.3)")
    hooks.add_argument("--webhook-url", help="POST change notifications here")
    hooks.add_argument(
        "--webhook-verifier-token",
        default=os.environ.get("QBO_SIM_WEBHOOK_VERIFIER_TOKEN", ""),
        help="the app's verifier token that signs them (or QBO_SIM_WEBHOOK_VERIFIER_TOKEN)",
    )
    hooks.add_argument("--webhook-format", choices=("cloudevents", "legacy"), default="cloudevents")
    hooks.add_argument(
        "--webhook-delay", type=float, default=0.0, help="seconds events wait before sending"
    )
    parser.add_argument(
        "--fake-clock",
        action="store_true",
        help="a clock that moves only via POST /_sim/qbo/clock/advance",
    )
    parser.add_argument("--log-level", default="warning")
    add_fault_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = QBOSettings(
        batch_max_items=args.batch_max,
        shuffle_batch=args.shuffle_batch,
        xml_throttle=args.xml_throttle,
        lowercase_gateway_faults=args.lowercase_gateway_faults,
        oauth=OAuthSettings(
            access_token_ttl=args.access_token_ttl,
            rotate_after=args.rotate_after_seconds,
            grace=args.grace_seconds,
            code_ttl=args.code_ttl,
        ),
        throttle=ThrottleSettings(
            limit=args.throttle[0],
            window=args.throttle[1],
            max_concurrent=args.concurrent,
            batch_limit=args.batch_throttle[0],
            batch_window=args.batch_throttle[1],
        ),
    )
    backend = QBOBackend(settings, clock=FakeClock() if args.fake_clock else SystemClock())
    backend.seed_company(
        args.realm,
        client_id=args.client_id,
        client_secret=args.client_secret,
        refresh_token=args.refresh_token,
        company_name=args.company_name,
        custom_txn_numbers=args.custom_txn_numbers,
        using_sales_tax=args.using_sales_tax,
        tax_codes=args.tax_code,
        redirect_uris=args.redirect_uri,
    )
    if args.webhook_url:
        backend.webhooks.configure(
            url=args.webhook_url,
            verifier_token=args.webhook_verifier_token,
            format=args.webhook_format,
            delay=args.webhook_delay,
        )
        backend.webhooks.start()
    app = create_app(backend)
    apply_fault_arguments(app.state.fault_plan, args)

    def ready(base_url: str) -> None:
        print(base_url, flush=True)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal with the
    # handlers found at start: these make that re-raise a clean exit instead of a kill.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_quietly)
    run_server(app, args.host, args.port, on_ready=ready, log_level=args.log_level)
    return 0


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
