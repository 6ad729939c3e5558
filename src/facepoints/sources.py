"""What `facepoints batch` reads: a folder, a glob, a Parquet file of encoded images, or an `s3://`/`gs://` URI.

Listed once, on the driver: the list is what the progress bar counts and what resuming subtracts the
finished paths from. URIs go through pyarrow's filesystems (S3, GCS, HDFS, `file://`), so the same
SRC works on a laptop and on a cluster whose workers read the bucket themselves.
"""

from __future__ import annotations

import fnmatch
import glob
from dataclasses import dataclass
from pathlib import Path

from .data import IMAGE_SUFFIXES
from .errors import FacepointsError

GLOB_CHARS = "*?["
PARQUET_COLUMNS = ("path", "bytes")  # what ray.data.read_binary_files(..., include_paths=True) writes


@dataclass(frozen=True)
class Source:
    """`paths`: every image's key (a local path or a URI); `parquet`: the file holding their bytes, if any."""

    spec: str
    paths: list[str]
    parquet: str | None = None

    def read_parquet(self, columns=PARQUET_COLUMNS, batch_size: int = 64):
        """Record batches of the Parquet source (pyarrow), `columns` only."""
        import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"

        return pq.ParquetFile(_open(self.parquet)).iter_batches(batch_size=batch_size, columns=list(columns))


def is_uri(spec: str) -> bool:
    return "://" in spec


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _open(spec: str):
    """A readable file for pyarrow: a local path as is, a URI through its filesystem."""
    if not is_uri(spec):
        return spec
    fs, path = _filesystem(spec)
    return fs.open_input_file(path)


def _filesystem(uri: str):
    from pyarrow import ArrowException, fs  # optional: pip install -e ".[batch]" or ".[ray]"

    try:
        return fs.FileSystem.from_uri(uri)
    except (ArrowException, OSError, ValueError) as e:
        raise FacepointsError(f"{uri}: cannot open ({e})") from None


def list_source(spec: str) -> Source:
    """The images of SRC; a one-line FacepointsError if there are none or SRC cannot be read."""
    if spec.lower().endswith(".parquet") and not any(c in spec for c in GLOB_CHARS):
        return _parquet_source(spec)
    paths = _list_uri(spec) if is_uri(spec) else _list_local(spec)
    if not paths:
        raise FacepointsError(f"{spec}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return Source(spec, paths)


def _list_local(spec: str) -> list[str]:
    if any(c in spec for c in GLOB_CHARS):
        return sorted(p for p in glob.glob(spec, recursive=True) if _is_image(p) and Path(p).is_file())
    p = Path(spec)
    if p.is_dir():
        return sorted(str(f) for f in p.rglob("*") if _is_image(f.name) and f.is_file())
    if p.is_file():
        if not _is_image(p.name):
            raise FacepointsError(f"{spec}: not a folder, a glob, an image or a .parquet file")
        return [str(p)]
    raise FacepointsError(f"{spec}: no such file or folder")


def _list_uri(spec: str) -> list[str]:
    """Files under a URI (recursively), filtered by its glob pattern if it has one, as URIs."""
    from pyarrow import ArrowException, fs  # optional: pip install -e ".[batch]" or ".[ray]"

    scheme = spec.split("://", 1)[0]
    cut = min((spec.index(c) for c in GLOB_CHARS if c in spec), default=None)
    base = spec if cut is None else spec[: spec.rindex("/", 0, cut)]
    filesystem, root = _filesystem(base)
    pattern = None if cut is None else root + spec[len(base):]
    try:
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.NotFound:
            raise FacepointsError(f"{spec}: no such file or folder")
        if info.type == fs.FileType.File:
            infos = [info]
        else:
            infos = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except (ArrowException, OSError) as e:
        raise FacepointsError(f"{spec}: cannot list ({e})") from None
    found = [
        i.path
        for i in infos
        if i.type == fs.FileType.File and _is_image(i.path) and (pattern is None or fnmatch.fnmatch(i.path, pattern))
    ]
    return sorted(f"{scheme}://{p}" for p in found)


def _parquet_source(spec: str) -> Source:
    import pyarrow.parquet as pq  # optional: pip install -e ".[batch]" or ".[ray]"
    from pyarrow import ArrowException

    if not is_uri(spec) and not Path(spec).is_file():
        raise FacepointsError(f"{spec}: no such file")
    try:
        schema = pq.read_schema(_open(spec))
        missing = [c for c in PARQUET_COLUMNS if c not in schema.names]
        if missing:
            raise FacepointsError(
                f"{spec}: a Parquet source needs the columns {' and '.join(PARQUET_COLUMNS)} (image key and "
                f"encoded image, as ray.data.read_binary_files(..., include_paths=True) writes); "
                f"missing {', '.join(missing)}"
            )
        paths = pq.read_table(_open(spec), columns=["path"]).column("path").to_pylist()
    except (ArrowException, OSError) as e:
        raise FacepointsError(f"{spec}: not a readable Parquet file ({e})") from None
    if not paths:
        raise FacepointsError(f"{spec}: holds no rows")
    return Source(spec, [str(p) for p in paths], parquet=spec)
