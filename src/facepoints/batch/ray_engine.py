"""The Ray engine of `facepoints batch`: Ray Data streams SRC through a pool of actors, one LandmarkBatch each.

The driver (this process) lists SRC, keeps the progress bar and writes the Parquet output, so the
output is one file written atomically whatever the cluster; the workers read the images themselves
(local paths on shared storage, or URIs), run the models and send back only the rows (~1 kB a face).
Local paths go to the workers absolute (a worker runs in its own folder, not the driver's) and come
back as SRC listed them, so that the output's keys do not depend on the engine.

Without `--address` (and no RAY_ADDRESS) a one-machine cluster starts here and stops at the end: its
CPUs, an object store of LOCAL_OBJECT_STORE, no dashboard, bound to the loopback address. A process
that is already connected to Ray (a notebook, the tests) is used as it is.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import warnings
from collections.abc import Iterator

from ..errors import FacepointsError
from ..version import __version__
from .rows import BATCH_ROWS, LandmarkBatch
from .sources import Source, is_uri

LOCAL_OBJECT_STORE = 512 * 2**20  # bytes; batches of rows and (Parquet sources) encoded images, spilled beyond
CONNECT_TIMEOUT_S = 5.0
READ_CPUS = 0.25  # Ray CPUs kept free for the read/filter tasks: 1-CPU actors filling the cluster hang it


def import_ray(local: bool):
    if local:  # Ray binds the machine's network address unless this is off (ray._private.services)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray  # optional: pip install -e ".[ray]"
        import ray.data
    except ImportError:
        raise FacepointsError('--engine ray needs Ray: pip install "facepoints[ray]"') from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts images
    ctx.print_on_execution_start = False
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def _check_reachable(address: str, what: str) -> None:
    """A `host:port` address that nobody answers on is one line in seconds, not Ray's endless retry loop
    (what: `--address ...` or `RAY_ADDRESS=...`, as the user gave it). Ray itself replaces a loopback
    host by this machine's address unless RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: that one is checked too."""
    target = _host_port(address)
    if target is None:
        return  # "auto", a name Ray resolves itself
    try:
        from ray._private.services import canonicalize_bootstrap_address  # where Ray will really connect

        used = _host_port(canonicalize_bootstrap_address(address.removeprefix("ray://")) or "") or target
    except Exception:  # noqa: BLE001 - a private helper: without it, the address as given
        used = target
    for host, port in dict.fromkeys([target, used]):
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            via = "" if (host, port) == target else f"Ray connects to {host}:{port} for it, "
            raise FacepointsError(f"{what}: no Ray cluster answers there ({via}{e.strerror or e})") from None


def _connect_error(what: str, error: Exception) -> str:
    """One line for a failed ray.init; for a cluster with token authentication (the default of `ray start`
    since Ray 2.5x once a token exists), how to authenticate."""
    chain, e = [], error
    while e is not None and len(chain) < 5:
        chain.append(f"{e.__class__.__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = " ".join(chain)
    if "InvalidAuthToken" in text or "AuthenticationError" in text:
        where = "~/.ray/auth_token (copy it from the head node), RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN"
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            return f"{what}: the Ray cluster requires token authentication: set RAY_AUTH_MODE=token, token in {where}"
        return f"{what}: the Ray cluster refused this token (RAY_AUTH_MODE=token): give the cluster's token in {where}"
    return f"{what}: cannot start or reach Ray: {str(error).strip().splitlines()[0] if str(error).strip() else text}"


def connect(address: str | None):
    """(ray, whether this call started the cluster); a cluster this process already uses is kept."""
    env = os.environ.get("RAY_ADDRESS")
    local = not address and not env
    ray = import_ray(local)
    if ray.is_initialized():
        return ray, False
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    what = f"--address {address}" if address else f"RAY_ADDRESS={env}" if env else "a local Ray cluster"
    if not local:
        _check_reachable(address or env, what)
    try:
        if local:
            ray.init(num_cpus=os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as e:  # noqa: BLE001 - Ray raises bare Exception when its processes do not come up
        ray.shutdown()
        raise FacepointsError(_connect_error(what, e)) from None
    return ray, True


def actor_cpus(cluster_cpus: float, workers: int) -> float:
    """Ray CPUs per actor: 1, or less so that READ_CPUS stay free for the read and filter tasks (two 1-CPU
    actors on a 2-CPU machine leave none, and the pipeline waits forever). Each actor runs one thread."""
    return max(0.05, min(1.0, math.floor(100 * (cluster_cpus - READ_CPUS) / workers) / 100))


def ray_results(
    source: Source, todo: list[str], done: set[str], options: dict, workers: int | None, address: str | None
) -> Iterator:
    """Result tables (pyarrow) as the actors finish them; stops the cluster if it started it."""
    ray, started = connect(address)
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        workers = workers or max(1, math.floor(cpus))
        keys = None  # worker path -> the output's key, where they differ
        if source.parquet is None:
            blocks = max(1, min(len(todo), math.ceil(len(todo) / BATCH_ROWS)))
            sent = [p if is_uri(p) else os.path.abspath(p) for p in todo]
            keys = {s: p for s, p in zip(sent, todo) if s != p}
            ds = ray.data.from_items([{"path": p} for p in sent], override_num_blocks=blocks)
        else:
            path = source.parquet if is_uri(source.parquet) else os.path.abspath(source.parquet)
            with warnings.catch_warnings():  # columns= is deprecated for select_columns, which adds an operator
                warnings.simplefilter("ignore", DeprecationWarning)
                ds = ray.data.read_parquet(path, columns=["path", "bytes"], num_cpus=READ_CPUS)
            if done:
                ds = ds.map_batches(_Skip(done), batch_format="pyarrow", num_cpus=READ_CPUS)
        ds = ds.map_batches(
            LandmarkBatch,
            fn_constructor_kwargs={**options, "unread": True, "version": __version__},
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=actor_cpus(cpus, workers),
            batch_size=BATCH_ROWS,
            batch_format="pyarrow",
        )
        try:
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                yield _rekey(table, keys) if keys else table
        except ray.exceptions.RayError as e:
            raise FacepointsError(_job_error(e)) from None
    finally:
        if started:
            ray.shutdown()


def _rekey(table, keys: dict[str, str]):
    """Rows back under the keys SRC listed (and the local engine writes): `photos/a.jpg`, not `/home/.../a.jpg`."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    paths = [keys.get(p, p) for p in table.column("path").to_pylist()]
    return table.set_column(table.column_names.index("path"), "path", pa.array(paths, pa.string()))


def _job_error(error: Exception) -> str:
    """One line for a failed Ray job: our own error (a RunError from a worker, say) as it was raised, else the
    worker's original exception. Ray Data keeps them only as text (a UserCodeException without a cause)."""
    e, seen = error, 0
    while e is not None and seen < 10:
        if isinstance(e, FacepointsError):
            return str(e)
        e, seen = getattr(e, "cause", None) or e.__cause__, seen + 1
    text = str(error)
    ours = re.findall(r"^facepoints\.[\w.]*Error: (.+)$", text, re.MULTILINE)
    if ours:
        return ours[-1]
    raised = [
        m
        for m in re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception): .+)$", text, re.MULTILINE)
        if not m.startswith("ray.")
    ]
    return f"the Ray job failed: {raised[0] if raised else text.strip().splitlines()[-1]}"


class _Skip:
    """Drops the rows of a Parquet source already in the output (resuming)."""

    def __init__(self, done: set[str]):
        self.done = sorted(done)

    def __call__(self, batch):
        import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"
        import pyarrow.compute as pc

        paths = pc.cast(batch["path"], pa.string())
        return batch.filter(pc.invert(pc.is_in(paths, value_set=pa.array(self.done, pa.string()))))
