"""Outputs: decided before any work (never over an input or each other), then written atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import FacepointsError, UsageError

# errors that say the output could not be written, whatever the code inside the `with` was doing
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
TEMP_GLOB = ".*.tmp*"  # what atomic_path names its temporary files: .<name>.<pid>.<random>.tmp<suffix>


def _identity(path: str, folders: dict[str, str]) -> tuple[str, tuple[int, int] | None, bool]:
    """A path's resolved form (symlinks and `..` undone), its (device, inode) if it exists, and whether it is a
    folder: two paths name the same file when either of the first two matches, so a hard link counts too.
    Each folder is resolved once (`folders` caches them); the file itself then costs an lstat and a stat.
    Plain strings, not pathlib: 10,000 paths through pathlib took seconds."""
    head, name = os.path.split(path)
    if name in ("", ".", ".."):
        resolved = os.path.realpath(path)
    else:
        parent = folders.get(head)
        if parent is None:
            parent = folders[head] = os.path.realpath(head or ".")
        resolved = os.path.join(parent, name)
        try:
            if stat.S_ISLNK(os.lstat(resolved).st_mode):
                resolved = os.path.realpath(resolved)
        except OSError:
            pass
    try:
        st = os.stat(resolved)
    except OSError:
        return resolved, None, False
    return resolved, (st.st_dev, st.st_ino), stat.S_ISDIR(st.st_mode)


def _path(p: str | Path) -> Path:
    return p if isinstance(p, Path) else Path(p)  # Path(a_path) parses it again: 10,000 times adds up


def _below(path: str, folder: str) -> bool:
    """`path` is `folder` or inside it (both resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outputs(
    outputs: Iterable[str | Path | tuple[str | Path, str] | None],
    inputs: Iterable[str | Path] = (),
    read_folders: Iterable[str | Path] = (),
    read_suffixes: tuple[str, ...] = (),
    skip: str | Path | None = None,
) -> list[Path]:
    """Decide, before any work starts, that every output of one run is safe to write; one line if not.

    Every verb calls this with all it will write and all it reads, so none can forget a case:
    - an output may not be an existing folder;
    - an output may not be an input or another output of the run (resolved paths, so symlinks and
      `..` count, and inodes, so hard links count);
    - in a folder that holds inputs an output may add a file but never replace one: a user's own
      `a.json` beside `a.jpg` is theirs, and a rerun there says so rather than guessing;
    - inside `read_folders` (walked recursively for `read_suffixes`, except `skip`, the run's own
      output folder) an output may not have such a suffix: the next run would read it as an input.
    An output may come as (path, what writes it), to name both writers when two collide.
    Each path is resolved and stat'ed once and compared through dicts, so time grows linearly with the
    number of files (a pairwise comparison made 800 photos wait 54 s).
    Returns the output paths (None entries dropped)."""
    outs = [
        (_path(o[0]), o[1]) if isinstance(o, tuple) else (_path(o), None)
        for o in outputs
        if o is not None and not (isinstance(o, tuple) and o[0] is None)
    ]
    by_path: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    parents: dict[str, str] = {}
    for i in map(_path, inputs):
        resolved, inode, _ = _identity(str(i), parents)
        by_path.setdefault(resolved, i)
        if inode is not None:
            by_inode.setdefault(inode, i)
    input_dirs = {os.path.dirname(r) for r in by_path}
    folders = [(os.path.realpath(f), f) for f in read_folders]
    skip_resolved = os.path.realpath(skip) if skip is not None else None
    read_suffixes = tuple(x.lower() for x in read_suffixes)
    blockers: dict[str, Path | None] = {}
    seen_path: dict[str, tuple[Path, str | None]] = {}
    seen_inode: dict[tuple[int, int], tuple[Path, str | None]] = {}
    for out, writer in outs:
        resolved, inode, is_dir = _identity(str(out), parents)
        if is_dir:
            raise UsageError(f"{out}: is a folder; give a file name for this output")
        head = os.path.dirname(str(out))
        if head not in blockers:
            blockers[head] = _file_in_the_way(out.parent)
        if blockers[head] is not None:
            raise UsageError(f"{out}: cannot be written, {blockers[head]} is a file, not a folder")
        same_input = by_path.get(resolved) or (by_inode.get(inode) if inode is not None else None)
        if same_input is not None:
            raise UsageError(f"{out}: output would overwrite the input {same_input}; choose another output path")
        other = seen_path.get(resolved) or (seen_inode.get(inode) if inode is not None else None)
        if other is not None:
            other_writer = other[1]
            both = f"both {other_writer} and {writer}" if writer and other_writer else "two outputs of this run"
            raise UsageError(f"{out}: {both} would write this file; results must not be lost, so nothing was done")
        if inode is not None and os.path.dirname(resolved) in input_dirs:
            raise UsageError(
                f"{out}: already exists in a folder of inputs; facepoints adds files there "
                "but never replaces one (move it away or choose another output path)"
            )
        if os.path.splitext(str(out))[1].lower() in read_suffixes and not (
            skip_resolved and _below(resolved, skip_resolved)
        ):
            for folder, given in folders:
                if _below(resolved, folder):
                    raise UsageError(
                        f"{out}: inside the input folder {given}, where the next run would read "
                        "it as an input; choose another output path"
                    )
        seen_path[resolved] = (out, writer)
        if inode is not None:
            seen_inode[inode] = (out, writer)
    return [o for o, _ in outs]


def _file_in_the_way(folder: Path) -> Path | None:
    """The existing file, if any, that stands where `folder` or one of the folders above it should be."""
    for p in [folder, *folder.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_output_folder(folder: str | Path, option: str) -> Path:
    """A folder the run will write into: it may exist, but not as a file (nor below one)."""
    folder = Path(folder)
    blocker = _file_in_the_way(folder)
    if blocker is not None:
        raise UsageError(f"{folder}: {option} needs a folder, but {blocker} is an existing file")
    return folder


def remove_stale_temps(folder: str | Path, shared: bool = False) -> int:
    """Delete temporary files a killed run left in `folder` (atomic_path's names); returns how many.

    `shared`: the folder is shared by concurrent runs (the crop cache), so only files whose writer process
    is gone are removed (atomic_path puts the writer's pid in the name); a run's own folder has one writer."""
    n = 0
    for tmp in Path(folder).glob(TEMP_GLOB):
        if tmp.is_file() and not (shared and _writer_alive(tmp.name)):
            tmp.unlink(missing_ok=True)
            n += 1
    return n


def _writer_alive(name: str) -> bool:
    """Whether the process that named this temporary file (.<name>.<pid>.<random>.tmp<suffix>) still runs."""
    match = re.search(r"\.(\d+)\.[^.]+\.tmp[^/]*$", name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process (or an odd name): leave it
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    A full disk (or a read-only or over-quota one) becomes one FacepointsError naming `path`,
    and the temporary file is removed: no partial output, no traceback."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as e:
        raise FacepointsError(f"{path}: cannot write here ({e.strerror or e})") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in WRITE_ERRNOS:
            raise FacepointsError(f"{path}: cannot write ({os.strerror(e.errno)}); nothing was written") from None
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_cache_dir() -> Path:
    """Where crops and exported graphs are cached: $FACEPOINTS_CACHE, else ~/.cache/facepoints."""
    return Path(os.environ.get("FACEPOINTS_CACHE", Path.home() / ".cache" / "facepoints"))
