"""Serve the HaloPSA simulator on loopback.

    python -m datagate_simulators.halopsa --port 0 --customers 200 --seed 7 \\
        --client-id my-id --client-secret my-secret --tenant acme --rate-limit 300/300

The first line on stdout is the base URL (``http://127.0.0.1:PORT``); everything else goes to
stderr. Serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

from datagate_simulators.faults import (
    FaultPlan,
    add_fault_arguments,
    apply_fault_arguments,
)
from datagate_simulators.halopsa.app import create_app
from datagate_simulators.halopsa.backend import HaloPSABackend
from datagate_simulators.halopsa.generator import (
    bayside_dental,
    generate_purchasing,
    generate_tenant,
)
from datagate_simulators.halopsa.throttle import RateLimit
from datagate_simulators.server import run_server


def _malformed(value: str) -> tuple[str, str, str | None, int]:
    parts = value.split(":")
    if len(parts) < 2:
        raise argparse.ArgumentTypeError("expected RESOURCE:MODE[:FIELD[:COUNT]]")
    field = parts[2] if len(parts) > 2 and parts[2] else None
    return parts[0], parts[1], field, int(parts[3]) if len(parts) > 3 else 1


def _between_pages(value: str) -> tuple[str, int, int]:
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("expected RESOURCE:AFTER_PAGE[:RECORDS]")
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datagate_simulators.halopsa", description="HaloPSA simulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (default)")
    parser.add_argument(
        "--customers", type=int, default=25, help="customers to generate (default 25; 0 = none)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=None,
        help="generator reference date YYYY-MM-DD (default: 1st of this month)",
    )
    parser.add_argument("--lines-per-customer", type=int, default=10)
    parser.add_argument(
        "--suppliers", type=int, default=0, help="suppliers to generate (default 0)"
    )
    parser.add_argument(
        "--purchase-orders", type=int, default=0, help="purchase orders to generate (default 0)"
    )
    parser.add_argument(
        "--bayside", action="store_true", help="also add the Bayside Dental fixture"
    )
    parser.add_argument("--client-id", default="datagate-sim")
    # The environment keeps a real-looking secret out of the process list.
    parser.add_argument(
        "--client-secret",
        default=os.environ.get("HALOPSA_SIM_CLIENT_SECRET", "datagate-sim-secret"),
    )
    parser.add_argument("--tenant", default="datagate")
    parser.add_argument(
        "--token-ttl", type=int, default=3600, help="expires_in of issued tokens, seconds"
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=None,
        help="tokens really stop working after this many seconds (early expiry fault)",
    )
    parser.add_argument(
        "--rate-limit",
        default="300/300",
        help="REQUESTS/SECONDS per application, or 'off' (default 300/300)",
    )
    parser.add_argument(
        "--no-retry-after", action="store_true", help="do not send Retry-After on 429"
    )
    parser.add_argument("--page-cap", type=int, default=100)
    parser.add_argument("--default-page-size", type=int, default=50)
    parser.add_argument(
        "--unpaged-limit",
        type=int,
        default=None,
        help="rows returned without paging or count (default: all)",
    )
    parser.add_argument("--malformed", type=_malformed, action="append", default=[], metavar="RESOURCE:MODE[:FIELD[:COUNT]]",
                        help="spoil list rows: MODE is missing_field, wrong_type or duplicate_id")  # fmt: skip
    parser.add_argument(
        "--delete-between-pages",
        type=_between_pages,
        action="append",
        default=[],
        metavar="RESOURCE:AFTER_PAGE[:RECORDS]",
    )
    parser.add_argument(
        "--add-between-pages",
        type=_between_pages,
        action="append",
        default=[],
        metavar="RESOURCE:AFTER_PAGE[:RECORDS]",
    )
    parser.add_argument("--log-level", default="warning")
    add_fault_arguments(parser)
    return parser


def build_backend(args: argparse.Namespace) -> HaloPSABackend:
    backend = HaloPSABackend(
        tenant=args.tenant,
        token_ttl=args.token_ttl,
        rate_limit=RateLimit.parse(args.rate_limit, retry_after=not args.no_retry_after),
        page_cap=args.page_cap,
        default_page_size=args.default_page_size,
        unpaged_limit=args.unpaged_limit,
    )
    backend.add_application(args.client_id, args.client_secret)
    if args.customers:
        generate_tenant(
            backend,
            customers=args.customers,
            seed=args.seed,
            as_of=args.as_of,
            lines_per_customer=args.lines_per_customer,
        )
    if args.suppliers:
        generate_purchasing(
            backend,
            suppliers=args.suppliers,
            purchase_orders=args.purchase_orders,
            seed=args.seed,
            as_of=args.as_of,
        )
    if args.bayside:
        bayside_dental(backend)
    if args.token_lifetime is not None:
        backend.set_token_lifetime(args.token_lifetime)
    for resource, mode, field, count in args.malformed:
        backend.malform_rows(resource, mode, field, count=count)
    for resource, after_page, records in args.delete_between_pages:
        backend.delete_between_pages(resource, after_page, records)
    for resource, after_page, records in args.add_between_pages:
        backend.add_between_pages(resource, after_page, records)
    return backend


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        backend = build_backend(args)
    except (ValueError, KeyError) as exc:
        print(f"halopsa simulator: {exc}", file=sys.stderr)
        return 2
    plan = FaultPlan()
    apply_fault_arguments(plan, args)
    app = create_app(backend, faults=plan)

    def ready(base_url: str) -> None:
        print(base_url, flush=True)
        counts = backend.stats()["records"]
        print(
            f"HaloPSA simulator on {base_url} (tenant {backend.tenant!r}, {counts['Client']} clients); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )

    run_server(app, args.host, args.port, on_ready=ready, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
