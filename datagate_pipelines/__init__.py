"""datagate-pipelines: HaloPSA → billing → QuickBooks Online, orchestrated by Dagster.

The package root holds the entry points only (`definitions`, `cli`, `config`) and the one
error class every layer shares.
"""


class DatagateError(Exception):
    """Base class for expected failures: the CLI prints them as one line, without a traceback."""
