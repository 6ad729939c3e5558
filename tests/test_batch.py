"""`facepoints batch` with the local engine and `LandmarkBatch` itself: rows equal to Landmarker.detect (0.0 px),
bad images as error rows, resuming, Parquet and URI sources, and the one-line errors.

Needs pyarrow (pip install -e ".[batch]" or ".[ray]"); skipped without it unless FACEPOINTS_REQUIRE_RAY=1
(set by .ci/run), which turns the skip into a failure so that CI always runs these tests.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("pyarrow") is None:
    if os.environ.get("FACEPOINTS_REQUIRE_RAY") == "1":
        raise RuntimeError('FACEPOINTS_REQUIRE_RAY=1 but pyarrow is not installed (pip install -e ".[ray]")')
    pytest.skip('pyarrow not installed (pip install -e ".[ray]")', allow_module_level=True)

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from facepoints.batch import COLUMNS, LandmarkBatch, rows_to_arrays  # noqa: E402
from facepoints.batch import run as batch_run  # noqa: E402
from facepoints.cli import main  # noqa: E402
from facepoints.config import LandmarkerOptions  # noqa: E402
from facepoints.landmarker import Landmarker  # noqa: E402

from .conftest import read_rows  # noqa: E402

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[1]


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
    "args, message, code",
    [
        (["nowhere/", "-o", "{tmp}/o.parquet"], "nowhere/: no such file or folder", 1),
        (["{tmp}/*.jpg", "-o", "{tmp}/o.parquet"], r"no images \(.jpg", 1),
        # a bad option value: exit code 2, as the README promises
        (["{photos}", "-o", "{tmp}/o.csv"], "needs the .parquet suffix", 2),
        (["{photos}", "-o", "{tmp}/o.txt"], "needs the .parquet suffix", 2),
        (["{photos}", "-o", "{tmp}/o.parquet", "--workers", "2"], "--workers is for --engine ray", 2),
        (["{photos}", "-o", "{tmp}/o.parquet", "--address", "x:1"], "--address is for --engine ray", 2),
        (["{tmp}/cols.parquet", "-o", "{tmp}/o.parquet"], "needs the columns path and bytes.*missing bytes", 1),
        (["{photos}", "-o", "{tmp}/o.parquet", "--model", "{tmp}/wrong.pt"], "do not fit architecture 'xception'", 1),
        (["{tmp}/not.parquet", "-o", "{tmp}/o.parquet"], "not a readable Parquet file", 1),
        (["{tmp}/cols.parquet", "-o", "{tmp}/cols.parquet"], "output would overwrite the input", 1),
        # Parquet sources: each mistake is one line before any work, never 0 images with rc 0 or a traceback
        (["{tmp}/int.parquet", "-o", "{tmp}/o.parquet"], "int.parquet: column path is int64; it must be strings", 1),
        (["{tmp}/str.parquet", "-o", "{tmp}/o.parquet"], "str.parquet: column bytes is string; it must be binary", 1),
        (["{tmp}/null.parquet", "-o", "{tmp}/o.parquet"], r"null.parquet: 1 rows have no path \(null\), the first", 1),
        (["{tmp}/dup.parquet", "-o", "{tmp}/o.parquet"], "dup.parquet: 1 paths appear more than once, e.g. 'a.jpg'", 1),
        # an image Parquet as -o: refused before any work (it used to run everything, then crash in merge)
        (["{photos}", "-o", "{tmp}/str.parquet"], "-o .*str.parquet: .* is not a facepoints batch output", 1),
    ],
)
def test_one_line_errors(args, message, code, photo_folder, tmp_path, capsys):
    import torch

    from facepoints.weights import resolve

    jpg = (photo_folder / "a" / "photo01.jpg").read_bytes()
    pq.write_table(pa.table({"path": ["a"]}), tmp_path / "cols.parquet")
    pq.write_table(pa.table({"path": [1, 2], "bytes": [jpg, jpg]}), tmp_path / "int.parquet")
    pq.write_table(pa.table({"path": ["a.jpg"], "bytes": ["not bytes"]}), tmp_path / "str.parquet")
    pq.write_table(pa.table({"path": ["a.jpg", None], "bytes": [jpg, jpg]}), tmp_path / "null.parquet")
    pq.write_table(pa.table({"path": ["a.jpg", "b.jpg", "a.jpg"], "bytes": [jpg] * 3}), tmp_path / "dup.parquet")
    (tmp_path / "not.parquet").write_bytes(b"PAR1 nope")
    payload = torch.load(resolve(None)[0], weights_only=True)
    payload["arch"], payload["model_kwargs"] = "xception", {}
    torch.save(payload, tmp_path / "wrong.pt")
    argv = [a.format(tmp=tmp_path, photos=photo_folder) for a in args]
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()}
    assert main(["batch", *argv]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("facepoints: error: ")
    assert re.search(message, err), err
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir() if f.is_file()} == before  # nothing written
    assert not any(f.name.startswith(".") for f in tmp_path.iterdir())  # no parts, no temporary file


KILLED = """
import os, sys, types
import pyarrow.parquet as pq
from facepoints.batch import run as batch_run
from facepoints.cli import main

batch_run.PART_ROWS = batch_run.BATCH_ROWS = 2
real_write, real_merge = pq.ParquetWriter.write_table, batch_run.merge


def write_then_die(self, table, *a, **k):  # the temporary file is half written, then the process is killed
    real_write(self, table, *a, **k)
    os._exit(9)


def merge_then_die(*a, **k):
    pq.ParquetWriter.write_table = write_then_die
    return real_merge(*a, **k)


where = sys.argv[1]
if where == "after-rename":  # OUT.parquet is in place, its parts not yet removed
    batch_run.shutil = types.SimpleNamespace(rmtree=lambda *a, **k: os._exit(9))
elif where == "part-write":
    pq.ParquetWriter.write_table = write_then_die
elif where == "final-write":
    batch_run.merge = merge_then_die
sys.exit(main(["batch", *sys.argv[2:]]))
"""


def killed_batch(where: str, *args) -> subprocess.CompletedProcess:
    """`facepoints batch ARGS` in a process killed (os._exit: no finally, no cleanup, as SIGKILL) at `where`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", KILLED, where, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def copy_photos(photo_folder, folder, n: int, start: int = 0) -> list:
    folder.mkdir(exist_ok=True)
    files = sorted((photo_folder / "a").glob("*.jpg"))[start : start + n]
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    return files


def hidden(folder) -> list[str]:
    """What a run leaves beside its output besides the output itself: parts, temporary files."""
    return sorted(str(f.relative_to(folder)) for f in folder.rglob(".*"))


def test_kill_after_the_final_rename_counts_nothing_twice(photo_folder, tmp_path, capsys):
    """Killed after OUT.parquet is in place but before its parts are removed: the rerun used to merge the
    parts in again ("8 images (0 this run, 8 before)" for 4, for good); each path lands once."""
    src, out = tmp_path / "src", tmp_path / "out.parquet"
    copy_photos(photo_folder, src, 4)
    proc = killed_batch("after-rename", src, "-o", out)
    assert proc.returncode == 9, proc.stderr
    assert len(pq.read_table(out)) == 4 and len(list(batch_run.parts_folder(out).glob("part-*.parquet"))) == 2
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert "4 images (0 this run, 4 before)" in capsys.readouterr().out
    assert len(read_rows(out)) == 4 and hidden(tmp_path) == []
    copy_photos(photo_folder, src, 2, start=4)
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert "6 images (2 this run, 4 before)" in capsys.readouterr().out
    assert len(read_rows(out)) == 6


def test_kill_during_a_write_leaves_no_temporary_file(photo_folder, tmp_path, capsys):
    """Killed while a part or OUT.parquet is half written: the rerun removes the temporary file and resumes
    from the last complete state (the parts), and nothing is left beside the output."""
    src, out = tmp_path / "src", tmp_path / "out.parquet"
    copy_photos(photo_folder, src, 4)
    assert killed_batch("part-write", src, "-o", out).returncode == 9
    assert [f for f in hidden(tmp_path) if f.endswith(".tmp.parquet")]  # a half-written part
    proc = killed_batch("final-write", src, "-o", out)
    assert proc.returncode == 9, proc.stderr
    assert not out.exists() and [f for f in hidden(tmp_path) if f.startswith(".out.parquet.")]  # OUT's temporary
    assert len(list(batch_run.parts_folder(out).glob("part-*.parquet"))) == 2
    assert main(["batch", str(src), "-o", str(out)]) == 0
    assert "4 images (0 this run, 4 before)" in capsys.readouterr().out  # the parts were complete: all kept
    assert len(read_rows(out)) == 4 and hidden(tmp_path) == []


class BuggyDetector:
    """A detector that fails on every image, as `--detector haar --det-threshold` did (a TypeError)."""

    def __new__(cls):
        from facepoints.detectors import Detector

        class Buggy(Detector):
            name = "retinaface"

            def _detect(self, rgb):
                raise TypeError("HaarDetector.__init__() got an unexpected keyword argument 'threshold'")

        return Buggy()


def test_a_model_error_stops_the_run_and_is_never_stored(photo_folder, tmp_path, capsys):
    """An exception from the models on a decoded image is the run's configuration (or a bug), not the image:
    one line, nothing stored, and the corrected rerun landmarks every image (it used to skip them as done)."""
    from facepoints.errors import FacepointsError

    src, out = tmp_path / "src", tmp_path / "out.parquet"
    copy_photos(photo_folder, src, 3)
    with pytest.raises(FacepointsError, match=r"photo\d+\.jpg: TypeError: HaarDetector.*not stored"):
        batch_run.run_batch(str(src), out, options={"detector": BuggyDetector()})
    assert not out.exists() and hidden(tmp_path) == []
    assert batch_run.run_batch(str(src), out).new == 3
    rows = read_rows(out)
    assert len(rows) == 3 and all(r["error"] is None and r["n_faces"] == 1 for r in rows.values())


def test_haar_with_a_threshold_never_stores_its_error_rows(photo_folder, tmp_path, capsys):
    """The CLI case of the issue: whatever `--detector haar --det-threshold` does, it stores no TypeError row,
    and a corrected rerun runs every image."""
    src, out = tmp_path / "src", tmp_path / "out.parquet"
    copy_photos(photo_folder, src, 3)
    code = main(["batch", str(src), "-o", str(out), "--detector", "haar", "--det-threshold", "3"])
    err = capsys.readouterr().err.strip()
    if code == 0:  # the option is supported: its rows are real results
        assert all(r["error"] is None for r in read_rows(out).values())
        return
    assert len(err.splitlines()) == 1 and err.startswith("facepoints: error: "), err
    assert not out.exists() and hidden(tmp_path) == []
    assert main(["batch", str(src), "-o", str(out), "--detector", "haar"]) == 0
    assert "3 images (3 this run, 0 before)" in capsys.readouterr().out


def test_settings_are_recorded_and_never_mixed(photo_folder, tmp_path, capsys):
    """The output records version, model checksum, detector and options; a rerun with other settings is one
    line and leaves the output as it was (it used to add rows of another model to it)."""
    from facepoints.version import __version__
    from facepoints.weights import resolve

    src, out = tmp_path / "src", tmp_path / "out.parquet"
    copy_photos(photo_folder, src, 2)
    assert main(["batch", str(src), "-o", str(out), "--model", "fast"]) == 0
    written = out.read_bytes()
    capsys.readouterr()
    for args, differ in [
        (["--model", "accurate"], r"model 'fast' \(sha256 \w{12}\); this run has model 'accurate'"),
        (["--detector", "haar"], "detector 'retinaface'; this run has detector 'haar'"),
        (["--no-pose"], "pose True; this run has pose False"),
        (["--det-max-side", "320"], "detector_max_side"),
        (["--det-coarse-side", "0"], "detector_coarse_side"),
    ]:
        model = [] if "--model" in args else ["--model", "fast"]
        assert main(["batch", str(src), "-o", str(out), *model, *args]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and re.search(differ, err) and "never mixed" in err, err
        assert out.read_bytes() == written and hidden(tmp_path) == []
    record = json.loads(pq.read_schema(out).metadata[b"facepoints.batch"])
    path, sha = resolve("fast")
    assert record["facepoints"] == __version__ and record["model"] == "fast" and record["model_sha256"] == sha
    assert record["detector"] == "retinaface" and record["pose"] is True and record["flip_test"] is False
    assert main(["batch", str(src), "-o", str(out), "--model", str(path)]) == 0  # the same weights by path
    assert "2 images (0 this run, 2 before)" in capsys.readouterr().out
    pq.write_table(pq.read_table(out).replace_schema_metadata(None), out)  # an output with no record (older)
    assert main(["batch", str(src), "-o", str(out)]) == 1
    assert "no record of the model and options" in capsys.readouterr().err


def test_an_unreadable_file_is_not_stored_and_a_rerun_retries_it(photo_folder, tmp_path, capsys):
    """A file that cannot be read says nothing about the image (missing, not mounted on this worker): not
    stored, a non-zero exit naming it, and the rerun landmarks it once it is there."""
    files = copy_photos(photo_folder, tmp_path / "photos", 4)
    later = tmp_path / "later.jpg"
    table = pa.table(
        {"path": [f.name for f in files[:3]] + [str(later)], "bytes": [f.read_bytes() for f in files[:3]] + [None]}
    )  # null bytes: read from path
    pq.write_table(table, tmp_path / "images.parquet")
    out = tmp_path / "out.parquet"
    assert main(["batch", str(tmp_path / "images.parquet"), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"1 of 4 images could not be read, the first: {later}: cannot open (No such file or directory)" in err
    assert sorted(read_rows(out)) == sorted(f.name for f in files[:3])
    later.write_bytes(files[3].read_bytes())
    assert main(["batch", str(tmp_path / "images.parquet"), "-o", str(out)]) == 0
    assert "4 images (1 this run, 3 before)" in capsys.readouterr().out
    assert read_rows(out)[str(later)]["n_faces"] == 1


def test_a_run_where_every_image_failed_is_non_zero(photo_folder, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("broken.jpg", "empty.png"):
        (src / name).write_bytes((photo_folder / "b" / name).read_bytes())
    assert main(["batch", str(src), "-o", str(tmp_path / "out.parquet")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert re.search(r"every one of the 2 images of this run failed, the first: .*(broken|empty)", err)


def test_ray_missing_is_one_line_with_the_install_hint(photo_folder, tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["batch", str(photo_folder / "a"), "-o", str(tmp_path / "o.parquet"), "--engine", "ray"]) == 1
    assert 'needs Ray: pip install "facepoints[ray]"' in capsys.readouterr().err
