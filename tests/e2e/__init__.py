"""End-to-end tests: `dagster dev`, the simulators and a browser, all on loopback."""
