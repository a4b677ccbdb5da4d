"""Simulators of the services the pipeline talks to (HaloPSA, QuickBooks Online).

Each simulator is a backend (state and rules in plain Python) plus a thin Starlette app.
``server`` hosts an app on loopback (``serve_in_thread``) or in-process
(``SyncASGITransport``); ``faults`` injects errors, delays and dropped connections.
"""
