"""The Ray engine of `facepoints batch`: a pool of Ray actors, one LandmarkBatch (one model) each, fed by the driver.

The driver (this process) lists SRC, hands out batches of BATCH_ROWS images (IN_FLIGHT per actor, so an actor
always has its next batch queued and never waits for the driver), keeps the progress bar and writes the Parquet
output, so the output is one file written atomically whatever the cluster. With a folder, glob or URI SRC the
workers read the images themselves (local paths on shared storage, or URIs) and send back only the rows
(~1 kB a face); a Parquet SRC is read by the driver, batch by batch as the actors need them, and its bytes
travel through the object store. Local paths go to the workers absolute (a worker runs in its own folder, not
the driver's) and come back as SRC listed them, so that the output's keys do not depend on the engine.

Why plain actors and not Ray Data (the first version): on a 2-core machine Ray Data's start-up (importing it
in the driver and in every worker, its helper actors) and its driver-side executor ate what a second worker
gains; `benchmarks/scale.py` measures both engines' start-up and steady state.

Without `--address` (and no RAY_ADDRESS) a one-machine cluster starts here and stops at the end: its
CPUs, an object store of LOCAL_OBJECT_STORE, no dashboard, bound to the loopback address. A process
that is already connected to Ray (a notebook, the tests) is used as it is; its actors are removed at the end.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
from collections.abc import Iterator

from ..errors import FacepointsError
from ..version import __version__
from .rows import BATCH_ROWS, LandmarkBatch
from .sources import Source, is_uri

LOCAL_OBJECT_STORE = 512 * 2**20  # bytes; batches of rows and (Parquet sources) encoded images, spilled beyond
CONNECT_TIMEOUT_S = 5.0
IN_FLIGHT = 2  # batches queued per actor: one running, the next already there when it finishes


def import_ray(local: bool):
    if local:  # Ray binds the machine's network address unless this is off (ray._private.services)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray  # optional: pip install -e ".[ray]"
    except ImportError:
        raise FacepointsError('--engine ray needs Ray: pip install "facepoints[ray]"') from None
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
    """Ray CPUs per actor: 1, or the cluster's share when more workers than CPUs are asked for (all of them
    must be placed, or the run waits for ever). Each actor runs one thread (rows.WORKER_THREADS)."""
    return max(0.01, min(1.0, math.floor(100 * cluster_cpus / workers) / 100))


class _Worker:
    """The actor: one LandmarkBatch, its models loaded by its first batch (queued as soon as the actor exists,
    so every actor loads them at once; a model that fails to load is then a task error that keeps its text)."""

    def __init__(self, options: dict):
        self.fn = LandmarkBatch(**options)

    def run(self, batch):
        return self.fn(batch)


def _batches(source: Source, todo: list[str]) -> Iterator:
    """The batches the actors get, read as they are handed out: paths (absolute: a worker runs in its own
    folder), or for a Parquet SRC its path and bytes columns, without the rows already done."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    if source.parquet is None:
        sent = [p if is_uri(p) else os.path.abspath(p) for p in todo]
        for i in range(0, len(sent), BATCH_ROWS):
            yield pa.table({"path": sent[i : i + BATCH_ROWS]})
        return
    wanted = set(todo)
    for batch in source.read_parquet(batch_size=BATCH_ROWS):
        keep = [p in wanted for p in batch.column("path").to_pylist()]
        if all(keep):
            yield pa.Table.from_batches([batch])
        elif any(keep):
            yield pa.Table.from_batches([batch.filter(pa.array(keep))])


def ray_results(
    source: Source, todo: list[str], done: set[str], options: dict, workers: int | None, address: str | None
) -> Iterator:
    """Result tables (pyarrow) as the actors finish them; removes its actors, and stops the cluster if it
    started it. `done` is already subtracted from `todo` (kept for the engines' common signature)."""
    ray, started = connect(address)
    pool: list = []
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1))
        workers = workers or max(1, math.floor(cpus))
        keys = {}  # worker path -> the output's key, where they differ
        if source.parquet is None:
            keys = {a: p for p in todo if not is_uri(p) and (a := os.path.abspath(p)) != p}
        actor = ray.remote(num_cpus=actor_cpus(cpus, workers), max_restarts=1, max_task_retries=1)(_Worker)
        kwargs = {**options, "unread": True, "version": __version__}
        pool = [actor.remote(kwargs) for _ in range(workers)]
        batches = _batches(source, todo)
        pending: dict = {}  # result ref -> the actor computing it

        def send(worker) -> None:
            batch = next(batches, None)
            if batch is not None:
                pending[worker.run.remote(batch)] = worker

        for _ in range(IN_FLIGHT):
            for worker in pool:
                send(worker)
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                worker = pending.pop(ref)
                table = ray.get(ref)
                send(worker)  # before the driver's own work on this table: the actor stays fed
                yield _rekey(table, keys) if keys else table
        except ray.exceptions.RayError as e:
            raise FacepointsError(_job_error(e)) from None
    finally:
        for worker in pool:  # a shared cluster gets its CPUs back now, not when this process exits
            try:
                ray.kill(worker)
            except Exception:  # noqa: BLE001 - a cluster that is gone: nothing to give back, the error is the run's
                pass
        if started:
            ray.shutdown()


def _rekey(table, keys: dict[str, str]):
    """Rows back under the keys SRC listed (and the local engine writes): `photos/a.jpg`, not `/home/.../a.jpg`."""
    import pyarrow as pa  # optional: pip install -e ".[batch]" or ".[ray]"

    paths = [keys.get(p, p) for p in table.column("path").to_pylist()]
    return table.set_column(table.column_names.index("path"), "path", pa.array(paths, pa.string()))


def _job_error(error: Exception) -> str:
    """One line for a failed Ray job: our own error (a RunError from a worker, say) as it was raised, else the
    worker's original exception. Ray's RayTaskError is also an instance of the worker's exception class, with
    the whole traceback as its text: its `cause` is the exception as raised. Where Ray kept only the text (Ray
    Data's UserCodeException), the last line that names an exception."""
    e, seen = error, 0
    while e is not None and seen < 10:
        cause = getattr(e, "cause", None)
        if isinstance(e, FacepointsError) and not isinstance(cause, BaseException):
            return str(e)
        e, seen = cause if isinstance(cause, BaseException) else e.__cause__, seen + 1
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
