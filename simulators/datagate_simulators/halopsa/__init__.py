"""A HaloPSA simulator: the client-credentials token endpoint and the REST API (``/api``).

Shaped like every simulator here (moto's shape): ``backend`` holds the state and rules in
plain Python, ``app`` maps HTTP onto it, ``errors`` are the service's errors and their real
bodies, ``oauth`` its token endpoints and applications, ``generator`` deterministic seeded
data, ``faults`` its fault switches, ``testing`` in-process helpers; ``python -m
datagate_simulators.halopsa`` serves it on loopback.

Typical test use::

    sim = make_sim(tenant="acme")
    generate_tenant(sim.backend, customers=50, seed=7)
    with sim.authed_client() as http:
        ...
"""

from datagate_simulators.halopsa.app import create_app
from datagate_simulators.halopsa.backend import HaloPSABackend, ListResult
from datagate_simulators.halopsa.conventions import NO_DATE, NO_END, UNSET
from datagate_simulators.halopsa.generator import (
    GeneratedTenant,
    bayside_dental,
    generate_tenant,
)
from datagate_simulators.halopsa.oauth import Application
from datagate_simulators.halopsa.testing import IN_PROCESS_URL, HaloSim, make_sim
from datagate_simulators.halopsa.throttle import RateLimit

__all__ = [
    "IN_PROCESS_URL",
    "NO_DATE",
    "NO_END",
    "UNSET",
    "Application",
    "GeneratedTenant",
    "HaloPSABackend",
    "HaloSim",
    "ListResult",
    "RateLimit",
    "bayside_dental",
    "create_app",
    "generate_tenant",
    "make_sim",
]
