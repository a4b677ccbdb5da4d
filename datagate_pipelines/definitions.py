"""The Dagster entry point: assembles assets, checks, jobs, resources, schedules and sensors."""

import dagster as dg

defs = dg.Definitions(
    assets=[],
)
