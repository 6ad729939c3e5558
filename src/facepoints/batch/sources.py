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

from ..errors import FacepointsError
from ..images import IMAGE_SUFFIXES

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
    pattern = None if cut is None else root + spec[len(base) :]
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
    """A Parquet SRC, checked before any work: `path` strings (the keys resuming and the output use), no
    null and no repeated key, `bytes` binary. Each problem is one line naming the file and the column."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
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
        path_type, bytes_type = schema.field("path").type, schema.field("bytes").type
        if pa.types.is_dictionary(path_type):  # pandas categoricals: strings all the same
            path_type = path_type.value_type
        if not (pa.types.is_string(path_type) or pa.types.is_large_string(path_type)):
            raise FacepointsError(f"{spec}: column path is {path_type}; it must be strings (each image's key)")
        if not (pa.types.is_binary(bytes_type) or pa.types.is_large_binary(bytes_type)):
            raise FacepointsError(
                f"{spec}: column bytes is {bytes_type}; it must be binary (each image's encoded file)"
            )
        column = pq.read_table(_open(spec), columns=["path"]).column("path")
    except (ArrowException, OSError) as e:
        raise FacepointsError(f"{spec}: not a readable Parquet file ({e})") from None
    if not len(column):
        raise FacepointsError(f"{spec}: holds no rows")
    if column.null_count:
        first = pc.index(pc.is_null(column), True).as_py()
        raise FacepointsError(
            f"{spec}: {column.null_count} rows have no path (null), the first is row {first}; every image needs a key"
        )
    paths = [str(p) for p in column.to_pylist()]
    if len(set(paths)) != len(paths):
        counts = pc.value_counts(column)
        twice = counts.filter(pc.greater(counts.field("counts"), 1))
        raise FacepointsError(
            f"{spec}: {len(twice)} paths appear more than once, e.g. {twice[0]['values'].as_py()!r} "
            f"({twice[0]['counts'].as_py()} times); each image needs its own key"
        )
    return Source(spec, paths, parquet=spec)
