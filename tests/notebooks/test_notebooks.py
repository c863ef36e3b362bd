"""Every notebook in ``notebooks/`` runs top to bottom against a fresh synthetic demo database.

They share one database (loaded once); a notebook that creates campaigns leaves them there.

The notebooks check their key results with assertions of their own; a failing cell fails here.
The kernel is this virtualenv's Python; it reads the database from ``HEXCAST_DATABASE_URL``.
Each notebook gets 60 s in all (a deadline shared by its cells).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from hexcast.core.settings import load_settings
from hexcast.ops import demo_data
from hexcast.synth import SynthParams
from hexcast.testing import create_database, drop_database, dsn

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))
BUDGET_S = 60.0
KERNEL = "hexcast-test"


@pytest.fixture(scope="module")
def demo_database() -> Iterator[str]:
    """A new database with the default synthetic dataset (as `hexcast demo-data` loads it)."""
    name = asyncio.run(create_database(migrate=False))
    url = dsn(name)
    until = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    started = time.monotonic()
    summary = asyncio.run(demo_data(load_settings(database_url=url), SynthParams(until=until)))
    print(f"demo data {summary.counts} loaded in {time.monotonic() - started:.1f} s")
    yield url
    asyncio.run(drop_database(name))


def _kernel_dir(root: Path, env: dict[str, str]) -> Path:
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hexcast (test venv)", "language": "python", "env": env,
    }))
    return spec.parent


EXPECTED = {"visit_heatmap", "interest_segments", "holiday_campaign_planning", "campaign_results"}


def test_there_are_notebooks() -> None:
    assert {p.stem for p in NOTEBOOKS} == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, demo_database: str, tmp_path: Path) -> None:
    env = {"HEXCAST_DATABASE_URL": demo_database, "HEXCAST_STATE_DIR": str(tmp_path / "state"),
           "MPLBACKEND": "Agg"}
    km = KernelManager(kernel_name=KERNEL,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(_kernel_dir(tmp_path, env))]))
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + BUDGET_S
    client = NotebookClient(
        nb, km=km, resources={"metadata": {"path": str(tmp_path)}},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
    )
    started = time.monotonic()
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    print(f"{path.name}: {time.monotonic() - started:.1f} s")
    executed = [c for c in nb.cells if c.cell_type == "code"]
    assert executed
    assert all(c.execution_count is not None for c in executed)
    errors = [o for c in executed for o in c.outputs if o.output_type == "error"]
    assert errors == []
    if path.stem == "visit_heatmap":
        out = tmp_path / "state" / "notebooks"
        assert {"visit_heatmap.html", "visit_heatmap.png", "store_funnel.png"} <= {p.name for p in out.iterdir()}
