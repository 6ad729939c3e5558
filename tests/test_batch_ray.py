"""`facepoints batch --engine ray` on a real local Ray cluster (2 CPUs, a 300 MB object store, no dashboard,
loopback only), against the local engine: the same rows, from folders and from a Parquet file of image bytes;
and on a cluster started the way users start one (`ray start --head`, token authentication on, and a second
node with `ray start --address`), joined from another working directory.

Needs Ray (pip install -e ".[ray]"); skipped without it unless FACEPOINTS_REQUIRE_RAY=1 (set by .ci/run), which
turns the skip into a failure so that CI always runs them. Marked `distributed`: .ci/run runs them as their own step.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None:
    if os.environ.get("FACEPOINTS_REQUIRE_RAY") == "1":
        raise RuntimeError('FACEPOINTS_REQUIRE_RAY=1 but Ray is not installed (pip install -e ".[ray]")')
    pytest.skip('Ray not installed (pip install -e ".[ray]")', allow_module_level=True)

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before ray is imported: bind 127.0.0.1 only

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from facepoints.cli import main  # noqa: E402

from .conftest import read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def assert_same_rows(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for path, row in want.items():
        differ = {k: (got[path][k], v) for k, v in row.items() if got[path][k] != v}
        assert not differ, (path, differ)


pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    for attempt in range(3):  # a starved machine can miss the raylet's fixed 15 s wait for its agent (Ray #65983)
        try:
            ray.init(
                num_cpus=2,
                object_store_memory=300 * 2**20,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            break
        except Exception:
            ray.shutdown()
            if attempt == 2:
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_engine_rows_equal_the_local_engine(ray_cluster, photo_folder, tmp_path, capsys):
    assert ray_cluster.util.get_node_ip_address() == "127.0.0.1"
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert main(["batch", str(photo_folder), "-o", str(local)]) == 0
    assert main(["batch", str(photo_folder), "-o", str(remote), "--engine", "ray", "--workers", "2"]) == 0
    assert "42 images (42 this run, 0 before), 40 faces, 2 errors" in capsys.readouterr().out
    want, got = read_rows(local), read_rows(remote)
    assert len(got) == 42
    assert_same_rows(got, want)  # every column, every float: identical to Landmarker.detect's
    assert ray_cluster.is_initialized()  # a cluster the process already used is left running


def test_ray_engine_on_parquet_bytes_resumes(ray_cluster, photo_folder, tmp_path, capsys):
    files = sorted(photo_folder.rglob("*.jpg"))[:10] + [photo_folder / "b" / "broken.jpg"]
    src, half = tmp_path / "images.parquet", tmp_path / "half.parquet"
    table = pa.table({"path": [f.name for f in files], "bytes": [f.read_bytes() for f in files]})
    pq.write_table(table, src)
    pq.write_table(table.slice(0, 5), half)
    out, local = tmp_path / "out.parquet", tmp_path / "local.parquet"
    assert main(["batch", str(half), "-o", str(out)]) == 0  # 5 done by the local engine ...
    assert main(["batch", str(src), "-o", str(out), "--engine", "ray", "--workers", "1"]) == 0  # ... 6 by Ray
    assert "11 images (6 this run, 5 before)" in capsys.readouterr().out
    assert main(["batch", str(src), "-o", str(local)]) == 0
    assert_same_rows(read_rows(out), read_rows(local))
    assert read_rows(out)["broken.jpg"]["error"].startswith("broken.jpg: not a decodable image")


def test_more_workers_than_cpus_and_the_cpus_come_back(ray_cluster, photo_folder, tmp_path, capsys):
    """Three workers on a 2-CPU cluster share its CPUs (all placed, none waits for ever); at the end the run
    removes its actors, so that a cluster it did not start gets all its CPUs back at once."""
    from facepoints.batch.ray_engine import actor_cpus

    assert actor_cpus(2, 3) == 0.66 and actor_cpus(2, 2) == 1.0 and actor_cpus(8, 2) == 1.0
    out = tmp_path / "ray.parquet"
    assert main(["batch", str(photo_folder), "-o", str(out), "--engine", "ray", "--workers", "3"]) == 0
    assert "42 images (42 this run, 0 before), 40 faces, 2 errors" in capsys.readouterr().out
    deadline = time.monotonic() + 30
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_cluster.available_resources().get("CPU", 0) == 2


def _fails_like_a_misconfigured_detector(batch):
    from facepoints.batch import RunError

    raise RunError("photos/a.jpg: TypeError: HaarDetector.__init__() got an unexpected keyword argument 'threshold'")


def test_a_worker_error_is_one_line_as_raised(ray_cluster):
    """A worker's exception reaches the driver wrapped in Ray's: the line the driver prints is still ours, as
    raised (it used to be Ray's advice on retries), so that a run stopped by a RunError says why."""
    from facepoints.batch.ray_engine import _job_error

    fails = ray_cluster.remote(_fails_like_a_misconfigured_detector)
    with pytest.raises(ray_cluster.exceptions.RayError) as failed:
        ray_cluster.get(fails.remote(None))
    assert _job_error(failed.value) == (
        "photos/a.jpg: TypeError: HaarDetector.__init__() got an unexpected keyword argument 'threshold'"
    )


def facepoints_cli(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """`facepoints ARGS` in a fresh process (this one may be connected to Ray already) with this checkout's code."""
    env = {**os.environ, **(env or {})}
    env = {k: v for k, v in env.items() if v is not None}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "facepoints", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    """The run's own error line; it must be the only one (Ray's C++ logging may print its own lines)."""
    lines = [line for line in proc.stderr.splitlines() if line.startswith("facepoints:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS"])
def test_unreachable_address_is_one_line(how, photo_folder, tmp_path):
    """Nobody listens on port 1: one line in seconds, whether the address is an option or RAY_ADDRESS (which
    used to hang for good)."""
    args = ["batch", photo_folder / "a", "-o", tmp_path / "o.parquet", "--engine", "ray"]
    if how == "--address":
        proc = facepoints_cli(*args, "--address", "127.0.0.1:1", timeout=120)
    else:
        proc = facepoints_cli(*args, env={"RAY_ADDRESS": "127.0.0.1:1"}, timeout=120)
    assert proc.returncode == 1
    assert f"{how}{' ' if how == '--address' else '='}127.0.0.1:1: no Ray cluster answers there" in one_line(proc)
    assert not (tmp_path / "o.parquet").exists()


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_node(root: Path, name: str, args: list[str], env: dict) -> subprocess.Popen:
    """`ray start --block ARGS` in a process group of its own, with a temp dir and ports of its own; returns
    once the node is up."""
    ports = free_ports(17)
    cmd = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--block",
        "--disable-usage-stats",
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(100 * 2**20),
        "--temp-dir",
        str(root / name),
        "--node-manager-port",
        str(ports[0]),
        "--object-manager-port",
        str(ports[1]),
        "--metrics-export-port",
        str(ports[2]),
        "--dashboard-agent-listen-port",
        str(ports[3]),
        "--dashboard-agent-grpc-port",
        str(ports[4]),
        "--runtime-env-agent-port",
        str(ports[5]),
        "--worker-port-list",
        ",".join(map(str, ports[6:])),
        *args,
    ]
    log = root / f"{name}.log"
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_nodes([proc], root)
            raise RuntimeError(f"ray start {name} did not come up:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return proc


def cluster_pids(root: Path) -> list[int]:
    """This cluster's processes: their command line or their output names its temp dir (workers retitle
    themselves `ray::...`, run in groups of their own, and write to log files under it)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            where = [(d / "cmdline").read_bytes().decode(errors="replace")]
            where += [os.readlink(d / "fd" / fd) for fd in ("1", "2") if (d / "fd" / fd).exists()]
        except OSError:
            continue
        if any(str(root) in w for w in where):
            pids.append(int(d.name))
    return pids


def stop_nodes(procs: list[subprocess.Popen], root: Path) -> None:
    """What `ray stop` does, for this cluster only (`ray stop` stops every Ray process of the machine, other
    sessions' too): each node's process group, then whatever of this cluster is left (workers), by id."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while (left := cluster_pids(root)) and time.monotonic() < deadline:
        time.sleep(1)  # workers exit on their own once their raylet is gone
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def started_cluster():
    """A two-node cluster started the usual way: `ray start --head` with a token available, so that Ray turns
    token authentication on (a token of its own, in RAY_AUTH_TOKEN: ~/.ray is left alone), and a second node
    with `ray start --address`; 1 CPU each. Like any `ray start` cluster it listens on this machine's address,
    which the token guards. Its workers run this checkout's code. Yields (address, token, root)."""
    root = Path(tempfile.mkdtemp(prefix="fpray", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    token = secrets.token_hex(32)
    drop = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(RAY_AUTH_TOKEN=token, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]))
    gcs, dashboard = free_ports(2)
    nodes = []
    try:
        nodes.append(
            start_node(
                root,
                "head",
                ["--head", "--port", str(gcs), "--include-dashboard", "false", "--dashboard-port", str(dashboard)],
                env,
            )
        )
        assert "Token authentication is enabled" in (root / "head.log").read_text()
        nodes.append(start_node(root, "node", ["--address", f"127.0.0.1:{gcs}"], {**env, "RAY_AUTH_MODE": "token"}))
        yield f"127.0.0.1:{gcs}", token, root
    finally:
        stop_nodes(nodes[::-1], root)
        shutil.rmtree(root, ignore_errors=True)


def test_started_cluster_from_another_folder(started_cluster, photo_folder, tmp_path, monkeypatch):
    """The issue's run: a relative SRC, from a folder the workers do not run in. Without RAY_AUTH_MODE=token
    it is one line saying how to authenticate (it used to be Ray's bare "Failed to connect"); with it, every
    image is landmarked (every row used to be "cannot open", with exit code 0), under the same keys and with
    the same values as the local engine, on both nodes."""
    address, token, root = started_cluster
    work = tmp_path / "work"
    (work / "photos").mkdir(parents=True)
    for f in sorted((photo_folder / "a").glob("*.jpg"))[:6]:
        (work / "photos" / f.name).write_bytes(f.read_bytes())
    client = {
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": None,
        "RAY_ADDRESS": None,
        "RAY_AUTH_MODE": None,
    }
    args = ["batch", "photos", "-o", "out.parquet", "--engine", "ray", "--address", address, "--workers", "2"]
    proc = facepoints_cli(*args, cwd=work, env=client)
    assert proc.returncode == 1
    line = one_line(proc)
    assert f"--address {address}: the Ray cluster requires token authentication: set RAY_AUTH_MODE=token" in line
    assert not (work / "out.parquet").exists()

    proc = facepoints_cli(*args, cwd=work, env={**client, "RAY_AUTH_MODE": "token"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "out.parquet: 6 images (6 this run, 0 before), 6 faces, 0 errors" in proc.stdout
    monkeypatch.chdir(work)
    assert main(["batch", "photos", "-o", "local.parquet"]) == 0
    got, want = read_rows(work / "out.parquet"), read_rows(work / "local.parquet")
    assert sorted(got) == [f"photos/{f.name}" for f in sorted((work / "photos").iterdir())]
    assert_same_rows(got, want)
    assert list((root / "node").rglob("worker-*.out")), "no worker ran on the second node"
