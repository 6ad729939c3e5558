"""`facepoints batch SRC -o OUT.parquet`: landmark a whole dataset, in this process or on a Ray cluster.

Resuming: results are written as they come in part files beside the output
(`.OUT.parquet.parts/part-NNNNNN.parquet`, each written atomically), and OUT.parquet is written once,
atomically, at the end, from the previous OUT.parquet (if any) and the parts. A rerun after a kill, or
on a SRC that has grown, lands only the paths in neither; an image whose row has `error` set counts as
done (delete its row, or the output, to retry it). Rows are in the order they finished: sort by `path`
if order matters (the Ray engine finishes batches out of order).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .batch import BATCH_ROWS, LandmarkBatch, schema
from .errors import FacepointsError
from .io_utils import atomic_path, check_outputs
from .sources import Source, is_uri, list_source

PART_ROWS = 512  # rows per part file: what a kill can lose at most, and the resume granularity


@dataclass(frozen=True)
class BatchSummary:
    images: int  # rows in the output
    new: int  # images landmarked by this run
    faces: int  # faces found by this run
    errors: int  # of this run's images, how many gave an error row
    seconds: float

    def line(self, out: Path) -> str:
        rate = self.new / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{out}: {self.images} images ({self.new} this run, {self.images - self.new} before), "
            f"{self.faces} faces, {self.errors} errors, {rate:.1f} images/s"
        )


def parts_folder(out: Path) -> Path:
    return out.with_name(f".{out.name}.parts")


def require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise FacepointsError('batch needs pyarrow: pip install -e ".[ray]" (or pip install pyarrow)') from None


def done_paths(out: Path) -> set[str]:
    """Paths already landmarked: in a previous OUT.parquet and in the parts of an unfinished run."""
    import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"

    files = ([out] if out.exists() else []) + sorted(parts_folder(out).glob("part-*.parquet"))
    done: set[str] = set()
    for f in files:
        try:
            done.update(pq.read_table(f, columns=["path"]).column("path").to_pylist())
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a file that is not ours
            raise FacepointsError(f"{f}: not a readable facepoints batch output ({e.__class__.__name__})") from None
    return done


class PartWriter:
    """Collects result tables; every PART_ROWS rows (and at the end) one part file, written atomically."""

    def __init__(self, folder: Path):
        self.folder, self.pending, self.rows = folder, [], 0
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
            pq.write_table(pa.concat_tables(self.pending), tmp)
        self.pending, self.rows = [], 0


def merge(out: Path) -> int:
    """OUT.parquet <- the previous OUT.parquet + the parts, atomically and streaming (one file in memory at a
    time); removes the parts; returns the rows written."""
    import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"

    parts = parts_folder(out)
    files = ([out] if out.exists() else []) + sorted(parts.glob("part-*.parquet"))
    rows = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema()) as writer:
        for f in files:
            table = pq.read_table(f).cast(schema())
            writer.write_table(table)
            rows += table.num_rows
    shutil.rmtree(parts, ignore_errors=True)
    return rows


def local_results(source: Source, todo: list[str], options: dict) -> Iterator:
    """The plain engine: one LandmarkBatch in this process, batches in SRC's order."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    fn = LandmarkBatch(**options)
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
    require_pyarrow()
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise FacepointsError(f"-o {out}: the output is a Parquet file and needs the .parquet suffix")
    check_outputs([out])  # not inputs=[SRC]: the output may sit beside a Parquet SRC, and is this verb's to extend
    if not is_uri(src) and (Path(src).resolve() == out.resolve() or (out.exists() and out.samefile(src))):
        raise FacepointsError(f"-o {out}: output would overwrite the input {src}; choose another output path")
    if engine == "local" and (workers or 1) > 1:
        raise FacepointsError("--workers is for --engine ray; the local engine is one process (one worker)")
    if engine == "local" and address:
        raise FacepointsError("--address is for --engine ray")
    options = dict(options or {})
    from .weights import load_model  # torch: loaded only when a batch runs

    load_model(options.get("model"))  # on the driver: a bad --model is one line before any cluster starts
    source = list_source(src)
    done = done_paths(out)
    todo = [p for p in source.paths if p not in done]
    if engine == "ray":
        from .batch_ray import ray_results  # optional: pip install -e ".[ray]"

        results = ray_results(source, todo, done, options, workers, address) if todo else iter(())
    else:
        results = local_results(source, todo, options) if todo else iter(())
    writer = PartWriter(parts_folder(out))
    t0, new, faces, errors = time.perf_counter(), 0, 0, 0
    bar = tqdm(total=len(todo), desc="landmarking", unit="img", disable=None)
    try:
        for table in results:
            writer.add(table)
            new += table.num_rows
            faces += sum(table.column("n_faces").to_pylist())
            errors += table.num_rows - table.column("error").null_count
            bar.update(table.num_rows)
            bar.set_postfix(faces=faces, errors=errors)
    except KeyboardInterrupt:
        raise FacepointsError(f"interrupted after {new} images; rerun the same command to continue") from None
    finally:
        bar.close()
        writer.flush()  # what finished is kept, whatever stopped the run: a rerun resumes after it
    seconds = time.perf_counter() - t0
    rows = merge(out)
    summary = BatchSummary(rows, new, faces, errors, seconds)
    print(summary.line(out))
    return summary
