"""The Dagster entry point: assembles assets, checks, jobs, resources, schedules and sensors."""

import dagster as dg

from datagate_pipelines.assets import (
    billing,
    catalog,
    exports,
    halopsa,
    payments,
    purchasing,
    review,
    sql,
)
from datagate_pipelines.orchestration.approval import approve_period
from datagate_pipelines.orchestration.credit_invoice import credit_invoice
from datagate_pipelines.orchestration.jobs import billing as billing_job
from datagate_pipelines.orchestration.jobs import exports as exports_job
from datagate_pipelines.orchestration.jobs import finalize_approved, portal_sync, sql_models
from datagate_pipelines.orchestration.jobs import payments as payments_job
from datagate_pipelines.orchestration.schedules import (
    nightly_billing,
    nightly_payments,
    nightly_sync,
)
from datagate_pipelines.orchestration.terminal import terminal_logger
from datagate_pipelines.orchestration.void_invoice import void_invoice
from datagate_pipelines.resources.halopsa import HaloPSAResource
from datagate_pipelines.resources.notifier import NotifierResource
from datagate_pipelines.resources.portals import PortalsResource
from datagate_pipelines.resources.qbo import QBOResource
from datagate_pipelines.resources.warehouse import WarehouseResource
from datagate_pipelines.sensors.approvals import approvals
from datagate_pipelines.sensors.force_sync import force_sync
from datagate_pipelines.sensors.notifications import approval_reminders, run_failure_notices
from datagate_pipelines.sensors.portals import portal_registry
from datagate_pipelines.sensors.qbo_webhooks import qbo_webhooks

defs = dg.Definitions(
    assets=[
        *dg.load_assets_from_modules(
            [halopsa, purchasing, catalog, billing, review, exports, payments]
        ),
        # One asset per SQL model in dbt_like_sql/, its dependencies parsed from the SQL.
        *sql.sql_model_assets(),
        billing.tax_rates,
        billing.product_templates,
        billing.usage_charges,
    ],
    jobs=[
        portal_sync,
        billing_job,
        exports_job,
        finalize_approved,
        approve_period,
        credit_invoice,
        void_invoice,
        payments_job,
        sql_models,
    ],
    schedules=[nightly_sync, nightly_billing, nightly_payments],
    sensors=[
        portal_registry,
        force_sync,
        approvals,
        approval_reminders,
        run_failure_notices,
        qbo_webhooks,
    ],
    resources={
        "portals": PortalsResource(),
        "warehouse": WarehouseResource(),
        "halopsa": HaloPSAResource(),
        "qbo": QBOResource(),
        "notifier": NotifierResource(),
    },
    # Runs without logger config (daemon, UI) use Dagster's console logger; runs the CLI
    # starts pick "terminal" (the assets' own lines) or "console" (--verbose).
    loggers={"console": dg.colored_console_logger, "terminal": terminal_logger},
    # Steps of one portal run one after another and mostly wait on HTTP or the database;
    # one process per run avoids paying Python start-up for every step.
    executor=dg.in_process_executor,
)
