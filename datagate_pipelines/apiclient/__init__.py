"""The HTTP core every outbound API client shares (plain Python, no Dagster).

`base.ApiClientBase` applies, to every request: the portal's rate limiter (`rate_limit`),
the retry policy (`retries`), the request record (`records`), typed errors (`errors`) and
redaction of secrets (`redaction`). The clients themselves live with their service:
`datagate_pipelines.halopsa`, `datagate_pipelines.qbo`.
"""
