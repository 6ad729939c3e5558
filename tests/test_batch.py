"""`facepoints batch` with the local engine and `LandmarkBatch` itself: rows equal to Landmarker.detect (0.0 px),
bad images as error rows, resuming, Parquet and URI sources, and the one-line errors.

Needs pyarrow (pip install -e ".[batch]" or ".[ray]"); skipped without it unless FACEPOINTS_REQUIRE_RAY=1
(set by .ci/run), which turns the skip into a failure so that CI always runs these tests.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re

import numpy as np
import pytest

if importlib.util.find_spec("pyarrow") is None:
    if os.environ.get("FACEPOINTS_REQUIRE_RAY") == "1":
        raise RuntimeError('FACEPOINTS_REQUIRE_RAY=1 but pyarrow is not installed (pip install -e ".[ray]")')
    pytest.skip('pyarrow not installed (pip install -e ".[ray]")', allow_module_level=True)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from facepoints import batch_run  # noqa: E402
from facepoints.batch import COLUMNS, LandmarkBatch, rows_to_arrays  # noqa: E402
from facepoints.cli import main  # noqa: E402
from facepoints.config import LandmarkerOptions  # noqa: E402
from facepoints.landmarker import Landmarker  # noqa: E402

pytestmark = pytest.mark.timeout(600)


def read_rows(path) -> dict[str, dict]:
    rows = pq.read_table(path).to_pylist()
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a path landed twice"
    return by_path


def assert_rows_equal_detect(rows: dict[str, dict], landmarker: Landmarker, key=lambda p: p) -> int:
    """Every row equals Landmarker.detect on the same image, to the bit; returns the faces compared."""
    faces = 0
    for path, row in rows.items():
        if row["error"] is not None:
            continue
        result = landmarker.detect(key(path))
        got = rows_to_arrays(row)
        assert row["n_faces"] == len(result.faces)
        for i, face in enumerate(result.faces):
            assert np.abs(got["points"][i] - face.points).max() == 0.0, path  # 0.0 px
            assert np.array_equal(got["boxes"][i], face.box) and got["scores"][i] == face.score
            assert np.array_equal(got["pose"][i], [face.pose.yaw, face.pose.pitch, face.pose.roll])
            faces += 1
    return faces


@pytest.fixture(scope="module")
def reference():
    """What a user's own loop would get: a Landmarker with the batch workers' options (1 thread)."""
    return Landmarker(LandmarkerOptions(threads=1))


@pytest.fixture(scope="module")
def local_output(photo_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "all.parquet"
    assert main(["batch", str(photo_folder), "-o", str(out)]) == 0
    return out


def test_local_engine_rows_equal_detect(local_output, reference, capsys):
    rows = read_rows(local_output)
    assert len(rows) == 42 and pq.read_schema(local_output).names == list(COLUMNS)
    errors = {os.path.basename(p): r["error"] for p, r in rows.items() if r["error"] is not None}
    assert set(errors) == {"broken.jpg", "empty.png"}
    assert "not a decodable image" in errors["broken.jpg"] and "empty file" in errors["empty.png"]
    assert all(r["n_faces"] == 0 and r["points"] == [] for r in rows.values() if r["error"] is not None)
    assert sum(r["n_faces"] for r in rows.values()) == 40  # one face on each photo
    assert assert_rows_equal_detect(rows, reference) == 40
    assert not batch_run.parts_folder(local_output).exists()


def test_summary_line(photo_folder, tmp_path, capsys):
    out = tmp_path / "one.parquet"
    assert main(["batch", str(photo_folder / "b" / "*.png"), "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    n = len(list((photo_folder / "b").glob("*.png")))
    assert line.startswith(f"{out}: {n} images ({n} this run, 0 before), {n - 1} faces, 1 errors, ")
    assert line.endswith(" images/s")


def test_resume_after_a_kill_and_on_a_grown_source(photo_folder, tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    src.mkdir()
    files = sorted((photo_folder / "a").glob("*.jpg"))[:10]
    for f in files[:6]:
        (src / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "out.parquet"
    monkeypatch.setattr(batch_run, "PART_ROWS", 2)
    monkeypatch.setattr(batch_run, "BATCH_ROWS", 2)
    real, calls = LandmarkBatch.__call__, {"n": 0}

    def killed_on_third_batch(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(LandmarkBatch, "__call__", killed_on_third_batch)
    assert main(["batch", str(src), "-o", str(out)]) == 1
    assert "interrupted after 4 images; rerun the same command" in capsys.readouterr().err
    assert not out.exists() and len(list(batch_run.parts_folder(out).glob("part-*.parquet"))) == 2
    monkeypatch.setattr(LandmarkBatch, "__call__", real)
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert "6 images (2 this run, 4 before)" in capsys.readouterr().out
    for f in files[6:]:  # the source grows: only the new images run
        (src / f.name).write_bytes(f.read_bytes())
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert "10 images (4 this run, 6 before)" in capsys.readouterr().out
    rows = read_rows(out)
    assert sorted(rows) == sorted(str(src / f.name) for f in files)
    assert main(["batch", str(src), "-o", str(out)]) == 0  # nothing left: the file is rewritten unchanged
    assert "10 images (0 this run, 10 before)" in capsys.readouterr().out


def test_parquet_of_bytes_and_file_uri(photo_folder, local_output, tmp_path):
    """Other SRC kinds give the same rows: a Parquet file of encoded images, and a file:// URI glob."""
    files = sorted(photo_folder.rglob("*.jpg"))[:8]
    src = tmp_path / "images.parquet"
    pq.write_table(pa.table({"path": [f.name for f in files], "bytes": [f.read_bytes() for f in files]}), src)
    out = tmp_path / "from_parquet.parquet"
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert main(["batch", str(src), "-o", str(out)]) == 0  # beside its Parquet source, an output is resumed too
    folder_rows = read_rows(local_output)
    for f in files:
        want, got = folder_rows[str(f)], read_rows(out)[f.name]
        assert {**got, "path": None} == {**want, "path": None}
    out = tmp_path / "from_uri.parquet"
    assert main(["batch", f"file://{photo_folder}/a/*.jpg", "-o", str(out)]) == 0
    uri_rows = read_rows(out)
    assert len(uri_rows) == len(list((photo_folder / "a").glob("*.jpg")))
    for path, row in uri_rows.items():
        assert {**row, "path": None} == {**folder_rows[path.removeprefix("file://")], "path": None}


def test_landmark_batch_in_pandas_and_numpy_batches(photo_folder, local_output):
    """The Spark (mapInPandas) and Dask (map_partitions) shape: a pandas DataFrame in, one out; after pickling."""
    pd = pytest.importorskip("pandas")
    paths = [str(p) for p in sorted((photo_folder / "b").iterdir())][:4]
    fn = pickle.loads(pickle.dumps(LandmarkBatch()))
    df = fn(pd.DataFrame({"path": paths}))
    assert list(df.columns) == list(COLUMNS) and len(df) == 4
    want = read_rows(local_output)
    for row in df.to_dict("records"):
        arrays, ref = rows_to_arrays(row), rows_to_arrays(want[row["path"]])
        assert all(np.array_equal(arrays[k], ref[k], equal_nan=True) for k in ref)
    assert pickle.loads(pickle.dumps(fn))._landmarker is None  # a used instance ships without its models
    numpy_out = fn({"path": np.asarray(paths[:2])})
    assert numpy_out["n_faces"].dtype == np.int32 and numpy_out["points"].shape == (2,)


@pytest.mark.parametrize(
    "args, message",
    [
        (["nowhere/", "-o", "{tmp}/o.parquet"], "nowhere/: no such file or folder"),
        (["{tmp}/*.jpg", "-o", "{tmp}/o.parquet"], r"no images \(.jpg"),
        (["{photos}", "-o", "{tmp}/o.csv"], "needs the .parquet suffix"),
        (["{photos}", "-o", "{tmp}/o.parquet", "--workers", "2"], "--workers is for --engine ray"),
        (["{tmp}/cols.parquet", "-o", "{tmp}/o.parquet"], "needs the columns path and bytes.*missing bytes"),
        (["{photos}", "-o", "{tmp}/o.parquet", "--model", "{tmp}/wrong.pt"], "do not fit architecture 'xception'"),
        (["{tmp}/not.parquet", "-o", "{tmp}/o.parquet"], "not a readable Parquet file"),
        (["{tmp}/cols.parquet", "-o", "{tmp}/cols.parquet"], "output would overwrite the input"),
    ],
)
def test_one_line_errors(args, message, photo_folder, tmp_path, capsys):
    import torch

    from facepoints.weights import resolve

    pq.write_table(pa.table({"path": ["a"]}), tmp_path / "cols.parquet")
    (tmp_path / "not.parquet").write_bytes(b"PAR1 nope")
    payload = torch.load(resolve(None)[0], weights_only=True)
    payload["arch"], payload["model_kwargs"] = "xception", {}
    torch.save(payload, tmp_path / "wrong.pt")
    argv = [a.format(tmp=tmp_path, photos=photo_folder) for a in args]
    assert main(["batch", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("facepoints: error: ")


    assert re.search(message, err), err


def test_ray_missing_is_one_line_with_the_install_hint(photo_folder, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["batch", str(photo_folder / "a"), "-o", str(tmp_path / "o.parquet"), "--engine", "ray"]) == 1
    assert 'needs Ray: pip install -e ".[ray]"' in capsys.readouterr().err
