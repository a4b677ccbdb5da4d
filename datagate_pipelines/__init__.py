"""datagate-pipelines: HaloPSA → billing → QuickBooks Online, orchestrated by Dagster."""
