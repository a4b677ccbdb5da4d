"""Asset tests use the loopback stacks in tests/stacks.py (registered in tests/conftest.py)."""
