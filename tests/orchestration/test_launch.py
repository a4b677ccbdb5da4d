"""Launching runs the CLI and the demo make: the SQL models job builds every view."""

from __future__ import annotations

from sqlalchemy import inspect

from datagate_pipelines.orchestration.launch import run_sql_models
from datagate_pipelines.warehouse.sql_models import discover


def test_the_sql_models_job_builds_every_model(engine, engine_url, instance):
    outcome = run_sql_models(instance, resources={"warehouse": {"database_url": engine_url}})
    assert outcome.job == "sql_models" and outcome.partition is None
    built = set(inspect(engine).get_view_names()) | set(inspect(engine).get_table_names())
    assert {model.name for model in discover()} <= built
    run = instance.get_run_by_id(outcome.run_id)
    assert run is not None and run.is_success
