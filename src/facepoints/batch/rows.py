"""`LandmarkBatch`: a batch of images (paths, URIs or encoded bytes) -> one row of landmarks per image.

Engine-agnostic on purpose: it is a plain callable on a column batch, so Ray Data's `map_batches`
(`batch_format="pyarrow"` or `"pandas"`), Spark's `mapInPandas` and Dask's `map_partitions` all run
the same code, and `facepoints batch` runs it in a plain loop too. Each worker process builds one
Landmarker on its first batch: the models load where they run and are never pickled.

What is stored is what belongs to the image: its faces, or why its bytes are no image (empty, not
decodable, too large). A file that cannot be read (missing, no permission, a worker that does not see
the storage) says nothing about the image, and an exception from the models on a decoded image comes
from the run's configuration (model, detector options) or a bug: the first is flagged (`unread=True`)
so that `facepoints batch` does not store it as done, the second stops the job (`RunError`).

Rows keep the faces as nested lists of plain floats (`boxes`, `points`, `pose`, `visibility`, `uncertainty`
one inner list per face; `presence` one value per face), not JSON strings: Parquet stores them as typed
columns that pyarrow, pandas, Spark and DuckDB read without parsing, and float32 points round-trip bit for
bit. `rows_to_arrays` turns one row back into the arrays `Landmarker.detect` gives.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LandmarkerOptions
from ..errors import FacepointsError, quiet_third_party
from ..images import decode_image

COLUMNS = ("path", "n_faces", "boxes", "scores", "points", "pose", "presence", "visibility", "uncertainty", "error")
BATCH_ROWS = 16  # images per call in `facepoints batch`: small, so a slow image holds up few others
WORKER_THREADS = 1  # one thread per worker: engines scale by processes, and results do not depend on the count


def schema():
    """The output columns as a pyarrow schema (pyarrow is imported only here, by who needs it)."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    f32 = pa.list_(pa.float32())
    f32_lists = pa.list_(f32)
    return pa.schema(
        [
            ("path", pa.string()),
            ("n_faces", pa.int32()),
            ("boxes", pa.list_(f32)),  # per face: x1, y1, x2, y2 (the detector's box, as Face.box)
            ("scores", pa.list_(pa.float64())),
            ("points", pa.list_(f32)),  # per face: 136 values x0, y0, ..., x67, y67 (the CSV's order)
            ("pose", pa.list_(pa.list_(pa.float64()))),  # per face: yaw, pitch, roll; null where no rigid fit
            # how far to trust each face and point (Face.presence, .visibility, .uncertainty in image px); null
            # per face for a model without trust heads
            ("presence", pa.list_(pa.float32())),
            ("visibility", f32_lists),  # per face: 68 values in [0, 1]
            ("uncertainty", f32_lists),  # per face: 68 values, image pixels
            ("error", pa.string()),  # null, or why this image gave no result (unreadable, not an image ...)
        ]
    )


_FILESYSTEMS: dict = {}  # per worker process: one pyarrow filesystem per scheme and bucket


def read_uri(uri: str) -> bytes:
    """The bytes of `s3://...`, `gs://...` or `file://...`, through pyarrow's filesystems."""
    from pyarrow import fs  # optional: pip install -e ".[batch]" or ".[ray]"

    scheme, _, path = uri.partition("://")
    key = f"{scheme}://{path.split('/', 1)[0]}"
    if key not in _FILESYSTEMS:
        _FILESYSTEMS[key] = fs.FileSystem.from_uri(uri)[0]
    with _FILESYSTEMS[key].open_input_stream(path) as f:
        return f.read()


def face_row(path: str, result) -> dict:
    """One image's LandmarkResult as a row (see `schema`)."""
    faces = result.faces
    return {
        "path": path,
        "n_faces": len(faces),
        "boxes": [f.box.astype(np.float32).tolist() for f in faces],
        "scores": [float(f.score) for f in faces],
        "points": [f.points.astype(np.float32).reshape(-1).tolist() for f in faces],
        "pose": [None if f.pose is None else [f.pose.yaw, f.pose.pitch, f.pose.roll] for f in faces],
        "presence": [f.presence for f in faces],
        "visibility": [None if f.visibility is None else f.visibility.astype(np.float32).tolist() for f in faces],
        "uncertainty": [None if f.uncertainty is None else f.uncertainty.astype(np.float32).tolist() for f in faces],
        "error": None,
    }


class RunError(FacepointsError):
    """The models failed on a decoded image: the run's configuration or a bug, not the image; stops the job."""


def error_row(path: str, error: Exception) -> dict:
    message = str(error) if isinstance(error, FacepointsError) else f"{error.__class__.__name__}: {error}"
    return {
        "path": path,
        "n_faces": 0,
        "boxes": [],
        "scores": [],
        "points": [],
        "pose": [],
        "presence": [],
        "visibility": [],
        "uncertainty": [],
        "error": message,
    }


def rows_to_arrays(row: dict) -> dict[str, np.ndarray]:
    """A row back as arrays: boxes (N, 4) float32, scores (N,), points (N, 68, 2) float32, pose (N, 3) (NaN: none),
    presence (N,), visibility and uncertainty (N, 68) float32 (NaN: a model without trust heads)."""
    n = int(row["n_faces"])
    pose = [[np.nan] * 3 if p is None else list(p) for p in row["pose"]]

    def per_face(key) -> list:
        values = row.get(key)
        return [None] * n if values is None or len(values) == 0 else list(values)

    def per_point(key):
        return np.asarray([[np.nan] * 68 if v is None else list(v) for v in per_face(key)], np.float32).reshape(n, 68)

    return {
        "boxes": np.asarray([list(b) for b in row["boxes"]], np.float32).reshape(n, 4),
        "scores": np.asarray(list(row["scores"]), np.float64).reshape(n),
        "points": np.asarray([list(p) for p in row["points"]], np.float32).reshape(n, 68, 2),
        "pose": np.asarray(pose, np.float64).reshape(n, 3),
        "presence": np.asarray([np.nan if v is None else v for v in per_face("presence")], np.float32).reshape(n),
        "visibility": per_point("visibility"),
        "uncertainty": per_point("uncertainty"),
    }


class LandmarkBatch:
    """Callable: a batch with a `path` column (and optionally `bytes`, the encoded image) -> the rows of
    `schema()`, one per image, in the batch's own kind: a pyarrow Table (or RecordBatch), a pandas
    DataFrame, or a dict of columns (numpy arrays or lists).

    An image that cannot be read or decoded becomes a row with `error` set: one bad file never fails
    a job of millions. Without `bytes`, a local path is handed to `Landmarker.detect` as is and a URI
    (`s3://`, `gs://`, `file://`) is read through pyarrow's filesystems; either way the points are those
    `Landmarker.detect` gives for the same options (tests/test_batch.py checks 0.0 px)."""

    def __init__(self, model: str | None = None, unread: bool = False, version: str | None = None, **options: Any):
        """unread: add a bool column `unread`, True where the file could not be read (its error is no
        property of the image: `facepoints batch` does not store those rows, so a rerun retries them).
        version: the driver's facepoints version; a worker that runs another one refuses to work, as its
        rows would not be those the output's settings record names."""
        options.setdefault("threads", WORKER_THREADS)
        self.options = replace(LandmarkerOptions(model=model), **options)
        self.unread, self.version = unread, version
        self._landmarker = None

    @property
    def landmarker(self):
        if self._landmarker is None:  # once per worker process, on its first batch
            from ..landmarker import Landmarker  # the models: in the worker, on its first batch
            from ..version import __version__

            quiet_third_party()  # a worker's stderr reaches the driver's: facepoints' lines only
            if self.version is not None and self.version != __version__:
                raise FacepointsError(
                    f"a worker runs facepoints {__version__}, the driver {self.version}: install the same version "
                    "on every node"
                )

            self._landmarker = Landmarker(self.options)
        return self._landmarker

    def __getstate__(self):  # shipped to workers (Spark, Dask) without the loaded models
        return {"options": asdict(self.options), "unread": self.unread, "version": self.version, "_landmarker": None}

    def __setstate__(self, state):
        self.options = LandmarkerOptions(**{k: v for k, v in state["options"].items() if k != "video"})
        self.unread, self.version = state.get("unread", False), state.get("version")
        self._landmarker = None

    def one(self, path: str, data: bytes | None = None) -> dict:
        """The row of one image: from `data` when given, else read from `path`. Raises RunError when the
        models fail on a decoded image (see the module docstring)."""
        landmarker = self.landmarker  # outside the try: a model that does not load fails the job, not a row
        try:
            if data is None:
                data = read_uri(path) if "://" in path else Path(path).read_bytes()
        except Exception as e:  # noqa: BLE001 - missing, no permission, storage not mounted here, network
            why = e.strerror if isinstance(e, OSError) and e.strerror else f"{e.__class__.__name__}: {e}"
            return {**error_row(path, FacepointsError(f"{path}: cannot open ({why})")), "unread": True}
        try:
            image = decode_image(data, path)  # the decoder Landmarker.detect(path) uses: the same pixels
        except Exception as e:  # noqa: BLE001 - the bytes are no image: that is the image's row
            return error_row(path, e)
        try:
            return face_row(path, landmarker.detect(image))
        except Exception as e:
            raise RunError(
                f"{path}: {e if isinstance(e, FacepointsError) else f'{e.__class__.__name__}: {e}'} (the image "
                "decoded, so this comes from the run's model or detector options, or a bug; not stored)"
            ) from e

    def __call__(self, batch):
        paths, blobs = _columns(batch)
        rows = [self.one(p, b) for p, b in zip(paths, blobs)]
        if self.unread:
            rows = [{**r, "unread": r.get("unread", False)} for r in rows]
        return _like(batch, rows, self.unread)


def _columns(batch) -> tuple[list[str], list]:
    if hasattr(batch, "column_names") and hasattr(batch, "num_rows"):  # pyarrow Table or RecordBatch
        names = batch.column_names
        get = lambda c: batch.column(c).to_pylist()  # noqa: E731
    elif hasattr(batch, "columns") and hasattr(batch, "iloc"):  # pandas DataFrame
        names = list(batch.columns)
        get = lambda c: batch[c].tolist()  # noqa: E731
    else:  # a dict of numpy arrays or lists (Ray's "numpy" batches)
        names = list(batch)
        get = lambda c: list(batch[c])  # noqa: E731
    if "path" not in names:
        raise FacepointsError(f"LandmarkBatch: the batch needs a 'path' column, got {', '.join(map(str, names))}")
    paths = [str(p) for p in get("path")]
    blobs = get("bytes") if "bytes" in names else [None] * len(paths)
    return paths, [None if b is None else bytes(b) for b in blobs]


def _like(batch, rows: list[dict], unread: bool = False):
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    columns = schema().append(pa.field("unread", pa.bool_())) if unread else schema()
    table = pa.Table.from_pylist(rows, schema=columns)
    if hasattr(batch, "column_names") and hasattr(batch, "num_rows"):
        return table
    if hasattr(batch, "columns") and hasattr(batch, "iloc"):
        return table.to_pandas()
    out = {}
    for c in table.column_names:
        values = table.column(c).to_pylist()
        out[c] = np.empty(len(values), object)  # 1-D of lists: np.asarray would make equal-length lists 2-D
        for i, v in enumerate(values):
            out[c][i] = v
    out["n_faces"] = out["n_faces"].astype(np.int32)
    return out
