"""The billing package loads its names when first used: month arithmetic and labels come
without numpy and pandas (the command line labels periods), the engine when it is asked for."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import datagate_pipelines.billing as billing


def test_every_exported_name_is_its_modules_own():
    for name in billing.__all__:
        module = importlib.import_module(f"datagate_pipelines.billing.{billing._EXPORTS[name]}")
        assert getattr(billing, name) is getattr(module, name), name
    assert sorted(billing.__all__) == sorted(billing._EXPORTS)


LIGHT = """
import json, sys
from datagate_pipelines.billing import period_label
from datagate_pipelines.billing.periods import add_months, invoice_date
light = sorted(m for m in ("numpy", "pandas") if m in sys.modules)
from datagate_pipelines.billing import bill_period
print(json.dumps([light, sorted(m for m in ("numpy", "pandas") if m in sys.modules)]))
"""


def test_periods_load_without_numpy_and_pandas():
    result = subprocess.run(
        [sys.executable, "-c", LIGHT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [[], ["numpy", "pandas"]]
