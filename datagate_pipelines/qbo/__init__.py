"""Everything QuickBooks Online, in plain Python (no Dagster).

- `client`: `QBOClient`, one company (realm) through the v3 Accounting API — queries,
  reads, writes, lookups;
- `batch`: batch items and how their answers are read;
- `oauth`: Intuit's token endpoint (`QBOAuthClient`) and access-token sources;
- `token_store`: the rotating refresh-token store, encrypted in the warehouse;
- `connect`: the authorization-code flow that connects a portal's company;
- `errors`, `request_ids`, `exact_json`: typed faults, idempotent request ids, exact JSON.

Exports to QBO live in `datagate_pipelines.exporting`; the Dagster resource in
`datagate_pipelines.resources.qbo`.
"""
