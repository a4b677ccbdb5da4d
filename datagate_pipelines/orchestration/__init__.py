"""Running the pipeline on Dagster: partitions, jobs, the nightly schedules, the instance,
and launching runs from the CLI and the demo."""
