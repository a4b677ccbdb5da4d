"""Simulators of the services the pipeline talks to (HaloPSA, QuickBooks Online).

Every service has the same shape (moto's), in a package of its own (``halopsa``, ``qbo``):

- ``backend/``    the state and rules, plain Python, no HTTP (a module per entity family);
- ``app.py``      the thin HTTP layer: routes → backend calls, errors → the service's bodies;
- ``errors.py``   the service's errors and the bodies it really answers with;
- ``oauth.py``    the token endpoints' rules and the API applications;
- ``generator.py`` deterministic seeded data;
- ``faults.py``   the service's fault switches over the shared ``faults``;
- ``testing.py``  in-process helpers for tests;
- ``__main__.py`` serves the service on loopback (``python -m datagate_simulators.<service>``).

Shared here: ``server`` hosts an app on loopback (``serve_in_thread``) or in-process
(``SyncASGITransport``); ``faults`` injects errors, delays and dropped connections and serves
``/_sim``; ``testing`` is the base of the services' test handles.
"""
