"""The Ray engine of `facepoints batch`: Ray Data streams SRC through a pool of actors, one LandmarkBatch each.

The driver (this process) lists SRC, keeps the progress bar and writes the Parquet output, so the
output is one file written atomically whatever the cluster; the workers read the images themselves
(local paths on shared storage, or URIs), run the models and send back only the rows (~1 kB a face).

Without `--address` (and no RAY_ADDRESS) a one-machine cluster starts here and stops at the end: its
CPUs, an object store of LOCAL_OBJECT_STORE, no dashboard, bound to the loopback address. A process
that is already connected to Ray (a notebook, the tests) is used as it is.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from collections.abc import Iterator

from .batch import BATCH_ROWS, LandmarkBatch
from .errors import FacepointsError
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
        raise FacepointsError('--engine ray needs Ray: pip install -e ".[ray]"') from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts images
    ctx.print_on_execution_start = False
    return ray


def _check_reachable(address: str) -> None:
    """A `host:port` address that nobody answers on is one line in seconds, not Ray's long retry loop."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", a name Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise FacepointsError(f"--address {address}: no Ray cluster answers there ({e.strerror or e})") from None


def connect(address: str | None):
    """(ray, whether this call started the cluster); a cluster this process already uses is kept."""
    local = not address and not os.environ.get("RAY_ADDRESS")
    ray = import_ray(local)
    if ray.is_initialized():
        return ray, False
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    try:
        if local:
            ray.init(num_cpus=os.cpu_count(), object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False, **quiet)
        else:
            if address:
                _check_reachable(address)
            ray.init(address=address, **quiet)
    except Exception as e:  # noqa: BLE001 - Ray raises bare Exception when its processes do not come up
        ray.shutdown()
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise FacepointsError(f"cannot start or reach Ray ({where}): {str(e).splitlines()[0]}") from None
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
        if source.parquet is None:
            blocks = max(1, min(len(todo), math.ceil(len(todo) / BATCH_ROWS)))
            ds = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=blocks)
        else:
            path = source.parquet if is_uri(source.parquet) else os.path.abspath(source.parquet)
            with warnings.catch_warnings():  # columns= is deprecated for select_columns, which adds an operator
                warnings.simplefilter("ignore", DeprecationWarning)
                ds = ray.data.read_parquet(path, columns=["path", "bytes"], num_cpus=READ_CPUS)
            if done:
                ds = ds.map_batches(_Skip(done), batch_format="pyarrow", num_cpus=READ_CPUS)
        ds = ds.map_batches(
            LandmarkBatch,
            fn_constructor_kwargs=options,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=actor_cpus(cpus, workers),
            batch_size=BATCH_ROWS,
            batch_format="pyarrow",
        )
        try:
            yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
        except ray.exceptions.RayError as e:
            raise FacepointsError(f"the Ray job failed: {str(e).strip().splitlines()[-1]}") from None
    finally:
        if started:
            ray.shutdown()


class _Skip:
    """Drops the rows of a Parquet source already in the output (resuming)."""

    def __init__(self, done: set[str]):
        self.done = sorted(done)

    def __call__(self, batch):
        import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"
        import pyarrow.compute as pc

        paths = pc.cast(batch["path"], pa.string())
        return batch.filter(pc.invert(pc.is_in(paths, value_set=pa.array(self.done, pa.string()))))
