"""The warehouse connection: Alembic is loaded only when the warehouse must be migrated."""

from __future__ import annotations

import json
import subprocess
import sys

from datagate_pipelines.warehouse.db import head_from_files, head_revision

OPEN = """
import json, sys
from sqlalchemy import text
from datagate_pipelines.warehouse.db import warehouse_engine
with warehouse_engine().connect() as c:
    version = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
print(json.dumps([version, "alembic" in sys.modules]))
"""


def test_the_head_read_from_the_files_is_alembics():
    assert head_from_files() == head_revision()


def test_alembic_runs_only_for_a_warehouse_behind_the_head(database_url):
    def open_warehouse() -> list:
        result = subprocess.run(
            [sys.executable, "-c", OPEN],
            env={"DATAGATE_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    assert open_warehouse() == [head_revision(), True]  # new: migrated by Alembic
    assert open_warehouse() == [head_revision(), False]  # at the head: Alembic not loaded
