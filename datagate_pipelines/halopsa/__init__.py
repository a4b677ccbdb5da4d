"""Everything HaloPSA, in plain Python (no Dagster): the API client (`client`) and its typed
errors (`errors`). The sync (HaloPSA → warehouse) lives in `datagate_pipelines.sync`, the
invoice export in `datagate_pipelines.exporting`, the Dagster resource in
`datagate_pipelines.resources.halopsa`."""
