"""`datagate`: the operators' command line.

Expected failures (bad configuration, an unknown portal, an unreachable service, a failed
run) print one `error:` line and exit non-zero; tracebacks are for bugs only, and
`--verbose` adds the details (a failed run's id and trace).

The subcommands are imported only when one of them runs: their modules import Dagster,
pandas or HTTP clients, which `datagate --help` and the read-only commands must not wait
for. Add a command to `COMMANDS` with its module, its attribute and its short help (a test
checks that the help matches the command's own).
"""

from __future__ import annotations

import importlib

import click

# name: (module under datagate_pipelines.commands, attribute, short help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "bill": (
        "runs",
        "bill",
        "Build draft invoices for a period (or --from/--to, in period order); with --export, "
        "finalize, number and export them to HaloPSA and QBO, retrying the exports that failed "
        "before.",
    ),
    "credit": (
        "corrections",
        "credit",
        "A credit note against a final invoice — whole, chosen lines, or an amount before tax "
        "— numbered from the portal's sequence and exported to HaloPSA and QBO (applied there "
        "to the invoice while it is open).",
    ),
    "demo": (
        "demo",
        "demo",
        "Simulators + a demo portal + sync + billing + export, a summary, then the Dagster UI.",
    ),
    "force-sync": (
        "runs",
        "force_sync",
        "File a force-sync request; the force_sync sensor runs it at the top of the queue.",
    ),
    "import": (
        "imports",
        "import_",
        "Import CSV files: product templates, tax rates, usage charges (a file with a bad "
        "row is refused whole).",
    ),
    "accounts": (
        "accounts",
        "accounts",
        "Every nominal code in use (items, item groups, purchase-order lines) and its QBO "
        "account; a document that needs an unmapped code fails its export with that "
        "reason.",
    ),
    "invoices": (
        "reports",
        "invoices",
        "Each invoice of the period: number, customer, agreement, totals, status (draft, "
        "held + reasons, final, exported, paid, voided) and, per target, its export (the "
        "record's id, or why it failed); credit notes name the invoice they credit.",
    ),
    "payments": (
        "payments",
        "payments",
        "Payments read back from QBO: each application to an invoice (amount, date, method, "
        "reference) and whether HaloPSA has it.",
    ),
    "portals": ("portals", "portals", "Portal configuration, account access and health."),
    "prune-requests": (
        "reports",
        "prune_requests",
        "Keep the request log to a retention: it grows by one row per API call.",
    ),
    "qbo": ("qbo", "qbo", "QuickBooks Online: connect and disconnect portals."),
    "review": (
        "review",
        "review",
        "What changed since the previous period, invoice by invoice and line by line, the flagged "
        "invoices with their reasons, and the drafts' fingerprint to approve them with.",
    ),
    "approve": (
        "review",
        "approve",
        "Approve a closed period's drafts: they are finalized, numbered and exported by a run the "
        "approvals sensor launches at the top of the queue (refused, naming what changed, if the "
        "drafts change before it runs).",
    ),
    "hold": (
        "review",
        "hold",
        "Hold a draft invoice: no number, no export, and its agreement's later invoices wait too "
        "(docs/billing.md rules 4 and 5), until `datagate release`.",
    ),
    "release": (
        "review",
        "release",
        "Release an invoice's manual hold: it is a draft again (unless its data still holds it), "
        "to be finalized with the next approval.",
    ),
    "audit": (
        "review",
        "audit",
        "The portal's audit trail, oldest first: approvals, holds, releases, finalizations, "
        "exports (and credits and voids), with who, when, what and the run.",
    ),
    "requests": (
        "reports",
        "requests",
        "The request log: every call to HaloPSA and QBO (no secrets are ever stored in it).",
    ),
    "simulators": (
        "demo",
        "simulators",
        "Start the HaloPSA and QBO simulators on loopback with demo data, until Ctrl-C.",
    ),
    "sync": (
        "runs",
        "sync",
        "HaloPSA → customers, sites, products and agreements for one portal (a portal_sync run).",
    ),
    "void": (
        "corrections",
        "void",
        "Void an exported invoice with no payment, in QBO and HaloPSA; its number is never "
        "reused, and its agreement's next invoice bills its service months again.",
    ),
    "webhooks": ("payments", "webhooks", "The QBO webhook receiver."),
    "usage": (
        "usage",
        "usage",
        "Usage import batches: list them, take one back while the period is draft.",
    ),
    "ui": ("demo", "ui", "The Dagster UI (and daemon) on the configured instance, until Ctrl-C."),
}


class LazyGroup(click.Group):
    """A group whose `COMMANDS` are imported when they run; its help lists them unimported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute, _help = COMMANDS[cmd_name]
        command = getattr(
            importlib.import_module(f"datagate_pipelines.commands.{module}"), attribute
        )
        return command if isinstance(command, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                short = click.utils.make_default_short_help(COMMANDS[name][2], limit)
            else:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                short = command.get_short_help_str(limit)
            rows.append((name, short))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="On a failed run, also print its run id (to open in the Dagster UI) and the trace.",
)
def main(verbose: bool) -> None:
    """Datagate billing sync: HaloPSA → invoices → HaloPSA and QuickBooks Online."""


if __name__ == "__main__":
    main()
