"""CSV imports an operator runs: tax rates, product templates, usage charges."""
