"""`facepoints batch SRC -o OUT.parquet`: landmark a whole dataset, in this process or on a Ray cluster.

Resuming: results are written as they come in part files beside the output
(`.OUT.parquet.parts/part-NNNNNN.parquet`, each written atomically), and OUT.parquet is written once,
atomically, at the end, from the previous OUT.parquet (if any) and the parts; a path already written
is never written twice, so a kill between that rename and the removal of the parts costs nothing.
A rerun after a kill, or on a SRC that has grown, lands only the paths in neither; temporary files
of a killed write are removed first. An image whose row has `error` set (its bytes are no image)
counts as done (delete its row, or the output, to retry it); a file that could not be read is not
stored (a rerun retries it) and makes the exit non-zero, and so does a run whose every image failed.
Every file carries the settings that made its rows (facepoints version, model checksum, detector and
result-changing options) in its Parquet metadata: a rerun with other settings is refused, not mixed.
Rows are in the order they finished: sort by `path` if order matters (the Ray engine finishes
batches out of order).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import FacepointsError, UsageError
from ..io_utils import atomic_path, check_outputs
from ..model_files import DEFAULT_MODEL, resolve, sha256_file
from ..version import __version__
from .rows import BATCH_ROWS, COLUMNS, LandmarkBatch, schema
from .sources import Source, is_uri, list_source

PART_ROWS = 512  # rows per part file: what a kill can lose at most, and the resume granularity


@dataclass(frozen=True)
class BatchSummary:
    images: int  # rows in the output
    new: int  # images landmarked by this run
    faces: int  # faces found by this run
    errors: int  # of this run's images, how many gave an error row
    seconds: float
    # (seconds since run_batch was called, images landmarked) as each batch of results came in: start-up and
    # steady rate apart (benchmarks/scale.py)
    progress: tuple[tuple[float, int], ...] = ()

    def line(self, out: Path) -> str:
        rate = self.new / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{out}: {self.images} images ({self.new} this run, {self.images - self.new} before), "
            f"{self.faces} faces, {self.errors} errors, {rate:.1f} images/s"
        )


def parts_folder(out: Path) -> Path:
    return out.with_name(f".{out.name}.parts")


def require_pyarrow(engine: str = "local"):
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        if engine == "ray":
            raise FacepointsError('--engine ray needs Ray and pyarrow: pip install "facepoints[ray]"') from None
        raise FacepointsError('batch needs pyarrow: pip install "facepoints[batch]" (or "facepoints[ray]")') from None


META_KEY = b"facepoints.batch"  # the Parquet metadata key of the settings record (see `run_record`)
RESULT_OPTIONS = (  # LandmarkerOptions fields that change a row; threads and video do not
    "detector",
    "detector_threshold",
    "detector_max_side",
    "detector_coarse_side",
    "upright",
    "backend",
    "flip_test",
    "min_score",
    "max_faces",
    "pose",
)


def run_record(options: dict) -> dict:
    """What decides the rows: facepoints version, the model (its weights' sha256: the same file under
    another name is the same model, a retrained file at the same path is not) and the result-changing
    options. Stored in every file of the output, so that a rerun with other settings cannot mix rows."""
    path, sha = resolve(options.get("model"))
    opts = LandmarkBatch(**options).options  # the defaults filled in, as the workers will see them
    record = {
        "facepoints": __version__,
        "model": options.get("model") or DEFAULT_MODEL,
        "model_sha256": sha or sha256_file(path),
    }
    for name in RESULT_OPTIONS:
        value = getattr(opts, name)
        record[name] = (
            value
            if value is None or isinstance(value, (str, int, float, bool))
            else (
                f"{type(value).__module__}.{type(value).__qualname__}"  # a Detector object: its class
            )
        )
    return record


def _describe(record: dict, key: str) -> str:
    if key == "model_sha256":
        return f"model {record.get('model')!r} (sha256 {str(record.get(key))[:12]})"
    return f"{key} {record.get(key)!r}"


def output_files(out: Path) -> list[Path]:
    """The files whose rows are done: a previous OUT.parquet and the parts of an unfinished run."""
    return ([out] if out.exists() else []) + sorted(parts_folder(out).glob("part-*.parquet"))


def check_existing(out: Path, record: dict) -> None:
    """Refuse, in one line and before any work, an OUT that is not a facepoints batch output (an image
    Parquet, say) or whose rows were made with other settings: rerunning must never mix two runs' rows."""
    import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"

    for f in output_files(out):
        try:
            found = pq.read_schema(f)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a file that is not ours
            raise FacepointsError(f"-o {out}: {f} is not a readable Parquet file ({e.__class__.__name__})") from None
        if found.names != list(COLUMNS):
            raise FacepointsError(
                f"-o {out}: {f} is not a facepoints batch output (its columns: {', '.join(found.names)}); "
                "choose another output path"
            )
        meta = (found.metadata or {}).get(META_KEY)
        try:
            theirs = json.loads(meta) if meta else None
        except ValueError:
            theirs = None
        if not isinstance(theirs, dict):
            raise FacepointsError(
                f"-o {out}: {f} holds rows with no record of the model and options that made them (an older "
                "facepoints?); choose another output path, or delete it to start over"
            )
        differ = [k for k in record if k != "model" and theirs.get(k) != record[k]]
        if differ:
            was = ", ".join(_describe(theirs, k) for k in differ)
            now = ", ".join(_describe(record, k) for k in differ)
            raise FacepointsError(
                f"-o {out}: {f} holds rows made with {was}; this run has {now}. Rows of two settings are never "
                "mixed: rerun with the same options, or choose another output path"
            )


def done_paths(out: Path) -> set[str]:
    """Paths already landmarked: in a previous OUT.parquet and in the parts of an unfinished run."""
    import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"

    done: set[str] = set()
    for f in output_files(out):
        try:
            done.update(pq.read_table(f, columns=["path"]).column("path").to_pylist())
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a file that is not ours
            raise FacepointsError(f"{f}: not a readable facepoints batch output ({e.__class__.__name__})") from None
    return done


def remove_leftovers(out: Path) -> list[Path]:
    """Delete the temporary files of a write that a kill interrupted (atomic_path's `.NAME.*.tmp.parquet`,
    beside OUT and in the parts folder): never complete, so the run resumes from the parts and OUT, the
    last complete state. Returns what was removed."""
    removed = []
    for folder, prefix in ((out.parent, f".{out.name}."), (parts_folder(out), ".part-")):
        if folder.is_dir():
            for f in folder.iterdir():
                if f.name.startswith(prefix) and f.name.endswith(".tmp.parquet") and f.is_file():
                    f.unlink()
                    removed.append(f)
    return removed


def metadata(record: dict) -> dict:
    return {META_KEY: json.dumps(record, sort_keys=True).encode()}


class PartWriter:
    """Collects result tables; every PART_ROWS rows (and at the end) one part file, written atomically,
    with the run's settings record in its metadata."""

    def __init__(self, folder: Path, record: dict):
        self.folder, self.pending, self.rows, self.meta = folder, [], 0, metadata(record)
        self.index = len(list(folder.glob("part-*.parquet"))) if folder.is_dir() else 0

    def add(self, table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= PART_ROWS:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"
        import pyarrow.parquet as pq

        if not self.rows:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        while (path := self.folder / f"part-{self.index:06d}.parquet").exists():
            self.index += 1
        with atomic_path(path) as tmp:
            pq.write_table(pa.concat_tables(self.pending).replace_schema_metadata(self.meta), tmp)
        self.pending, self.rows = [], 0


def merge(out: Path, record: dict) -> int:
    """OUT.parquet <- the previous OUT.parquet + the parts, atomically and streaming (one file in memory at a
    time); removes the parts; returns the rows written. A path already written is skipped: after a kill
    between the rename and the removal of the parts, OUT holds the parts' rows already (idempotent)."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"
    import pyarrow.parquet as pq

    parts = parts_folder(out)
    rows, seen = 0, set()
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema().with_metadata(metadata(record))) as writer:
        for f in output_files(out):
            table = pq.read_table(f).cast(schema())
            keep = []
            for p in table.column("path").to_pylist():
                keep.append(p not in seen)
                seen.add(p)
            if not all(keep):
                table = table.filter(pa.array(keep))
            writer.write_table(table)
            rows += table.num_rows
    shutil.rmtree(parts, ignore_errors=True)
    return rows


def local_results(source: Source, todo: list[str], options: dict) -> Iterator:
    """The plain engine: one LandmarkBatch in this process, batches in SRC's order."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    fn = LandmarkBatch(unread=True, **options)
    fn.landmarker  # noqa: B018 - load the models now: a bad --model fails before the first image
    if source.parquet is None:
        for i in range(0, len(todo), BATCH_ROWS):
            yield fn(pa.table({"path": todo[i : i + BATCH_ROWS]}))
        return
    wanted = set(todo)
    for batch in source.read_parquet(batch_size=BATCH_ROWS):
        keep = [p in wanted for p in batch.column("path").to_pylist()]
        if any(keep):
            yield fn(batch.filter(pa.array(keep)))


def run_batch(
    src: str,
    out: str | Path,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    options: dict | None = None,
) -> BatchSummary:
    """Landmark every image of `src` into the Parquet file `out` (see the module docstring); prints a
    progress bar and a summary line."""
    called = time.perf_counter()
    require_pyarrow(engine)
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise UsageError(f"-o {out}: the output is a Parquet file and needs the .parquet suffix")
    if engine == "local" and (workers or 1) > 1:
        raise UsageError("--workers is for --engine ray; the local engine is one process (one worker)")
    if engine == "local" and address:
        raise UsageError("--address is for --engine ray")
    check_outputs([out])  # not inputs=[SRC]: the output may sit beside a Parquet SRC, and is this verb's to extend
    if not is_uri(src) and (Path(src).resolve() == out.resolve() or (out.exists() and out.samefile(src))):
        raise FacepointsError(f"-o {out}: output would overwrite the input {src}; choose another output path")
    options = dict(options or {})
    from ..predictor import LandmarkPredictor  # ONNX Runtime: loaded only when a batch runs

    # on the driver: a bad --model (or a .pt without torch) is one line before any cluster starts
    LandmarkPredictor(options.get("model"), backend=options.get("backend", "auto"), threads=1)
    record = run_record(options)
    path, sha = resolve(options.get("model"))
    if sha is None:  # a weights file: its absolute path, which a Ray worker in another folder finds too
        options["model"] = str(path.resolve())
    check_existing(out, record)
    remove_leftovers(out)
    source = list_source(src)
    done = done_paths(out)
    todo = [p for p in source.paths if p not in done]
    if engine == "ray":
        from .ray_engine import ray_results  # optional: pip install -e ".[ray]"

        results = ray_results(source, todo, done, options, workers, address) if todo else iter(())
    else:
        results = local_results(source, todo, options) if todo else iter(())
    import pyarrow.compute as pc  # optional: pip install -e ".[batch]" or ".[ray]"

    writer = PartWriter(parts_folder(out), record)
    t0, new, faces, errors, unread = time.perf_counter(), 0, 0, 0, 0
    first_error = first_unread = None
    progress: list[tuple[float, int]] = []
    bar = tqdm(total=len(todo), desc="landmarking", unit="img", disable=None)
    try:
        for table in results:
            bar.update(table.num_rows)
            failed = table.filter(table.column("error").is_valid())
            if failed.num_rows and first_error is None:
                first_error = failed.column("error")[0].as_py()
            lost = table.filter(table.column("unread"))  # not the image's fault: not stored, a rerun retries it
            if lost.num_rows:
                unread += lost.num_rows
                first_unread = first_unread or lost.column("error")[0].as_py()
            table = table.filter(pc.invert(table.column("unread"))).drop_columns(["unread"])
            writer.add(table)
            new += table.num_rows
            faces += sum(table.column("n_faces").to_pylist())
            errors += table.num_rows - table.column("error").null_count
            bar.set_postfix(faces=faces, errors=errors + unread)
            progress.append((time.perf_counter() - called, new + unread))
    except KeyboardInterrupt:
        raise FacepointsError(f"interrupted after {new} images; rerun the same command to continue") from None
    finally:
        bar.close()
        writer.flush()  # what finished is kept, whatever stopped the run: a rerun resumes after it
    seconds = time.perf_counter() - t0
    rows = merge(out, record)
    summary = BatchSummary(rows, new, faces, errors, seconds, tuple(progress))
    print(summary.line(out))
    ran = new + unread
    if ran and errors + unread == ran:
        kept = f"; the {unread} unread are not stored, a rerun retries them" if unread else ""
        raise FacepointsError(f"every one of the {ran} images of this run failed, the first: {first_error}{kept}")
    if unread:
        raise FacepointsError(
            f"{unread} of {ran} images could not be read, the first: {first_unread}; they are not stored in "
            f"{out}, a rerun retries them"
        )
    return summary
