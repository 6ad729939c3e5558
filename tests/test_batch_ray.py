"""`facepoints batch --engine ray` on a real local Ray cluster (2 CPUs, a 300 MB object store, no dashboard,
loopback only), against the local engine: the same rows, from folders and from a Parquet file of image bytes.

Needs Ray (pip install -e ".[ray]"); skipped without it unless FACEPOINTS_REQUIRE_RAY=1 (set by .ci/run), which
turns the skip into a failure so that CI always runs them. Marked `distributed`: .ci/run runs them as their own step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
    if os.environ.get("FACEPOINTS_REQUIRE_RAY") == "1":
        raise RuntimeError('FACEPOINTS_REQUIRE_RAY=1 but Ray is not installed (pip install -e ".[ray]")')
    pytest.skip('Ray not installed (pip install -e ".[ray]")', allow_module_level=True)

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: bind 127.0.0.1 only

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from facepoints.cli import main  # noqa: E402

from .test_batch import read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def assert_same_rows(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for path, row in want.items():
        differ = {k: (got[path][k], v) for k, v in row.items() if got[path][k] != v}
        assert not differ, (path, differ)


pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    for attempt in range(3):  # a starved machine can miss the raylet's fixed 15 s wait for its agent (Ray #65983)
        try:
            ray.init(num_cpus=2, object_store_memory=300 * 2**20, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_engine_rows_equal_the_local_engine(ray_cluster, photo_folder, tmp_path, capsys):
    assert ray_cluster.util.get_node_ip_address() == "127.0.0.1"
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert main(["batch", str(photo_folder), "-o", str(local)]) == 0
    assert main(["batch", str(photo_folder), "-o", str(remote), "--engine", "ray", "--workers", "2"]) == 0
    assert "42 images (42 this run, 0 before), 40 faces, 2 errors" in capsys.readouterr().out
    want, got = read_rows(local), read_rows(remote)
    assert len(got) == 42
    assert_same_rows(got, want)  # every column, every float: identical to Landmarker.detect's
    assert ray_cluster.is_initialized()  # a cluster the process already used is left running


def test_ray_engine_on_parquet_bytes_resumes(ray_cluster, photo_folder, tmp_path, capsys):
    files = sorted(photo_folder.rglob("*.jpg"))[:10] + [photo_folder / "b" / "broken.jpg"]
    src, half = tmp_path / "images.parquet", tmp_path / "half.parquet"
    table = pa.table({"path": [f.name for f in files], "bytes": [f.read_bytes() for f in files]})
    pq.write_table(table, src)
    pq.write_table(table.slice(0, 5), half)
    out, local = tmp_path / "out.parquet", tmp_path / "local.parquet"
    assert main(["batch", str(half), "-o", str(out)]) == 0  # 5 done by the local engine ...
    assert main(["batch", str(src), "-o", str(out), "--engine", "ray", "--workers", "1"]) == 0  # ... 6 by Ray
    assert "11 images (6 this run, 5 before)" in capsys.readouterr().out
    assert main(["batch", str(src), "-o", str(local)]) == 0
    assert_same_rows(read_rows(out), read_rows(local))
    assert read_rows(out)["broken.jpg"]["error"].startswith("broken.jpg: not a decodable image")


def test_unreachable_address_is_one_line(photo_folder, tmp_path):
    """In a fresh process (this one is connected already): nobody listens on port 1."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "facepoints", "batch", str(photo_folder / "a"), "-o", str(tmp_path / "o.parquet"),
         "--engine", "ray", "--address", "127.0.0.1:1"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 1
    err = [line for line in proc.stderr.splitlines() if line.startswith("facepoints:")]
    assert err == [err[0]] and "--address 127.0.0.1:1: no Ray cluster answers there" in err[0], proc.stderr
