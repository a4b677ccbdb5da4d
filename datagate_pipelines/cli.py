"""`datagate`: the operators' command line.

Expected failures (bad configuration, an unknown portal, an unreachable service) print one
line and exit non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import click

from datagate_pipelines.commands import demo, imports, portals, qbo, reports, runs
from datagate_pipelines.commands.payments import payments, webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Datagate billing sync: HaloPSA → invoices → HaloPSA and QuickBooks Online."""


main.add_command(portals.portals)
main.add_command(runs.sync)
main.add_command(runs.bill)
main.add_command(runs.force_sync)
main.add_command(imports.import_)
main.add_command(reports.invoices)
main.add_command(reports.requests)
main.add_command(reports.prune_requests)
main.add_command(demo.simulators)
main.add_command(demo.demo)
main.add_command(demo.ui)
main.add_command(qbo.qbo)
main.add_command(payments)
main.add_command(webhooks)


if __name__ == "__main__":
    main()
