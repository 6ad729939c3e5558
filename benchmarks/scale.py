"""Scale: `facepoints batch` images/s with the local engine (one process) and the Ray engine on a cluster already
running (`ray start --head`, 1 and 2 workers), start-up and steady state apart; training images/s with 1 and 2
torchrun processes, on this machine.

Run: python benchmarks/scale.py [--images 2400] [--rounds 2] [--train-faces 300] [--epochs 3]
Run it on an otherwise idle machine: every figure is wall-clock. The engines run interleaved (local, Ray, local,
Ray ...), each run a fresh `python` process as the CLI would be (imports, cluster connection and model loads
included), and the ratios come from the same run. The load average before and after is recorded in the section,
so a run that shared the CPU says so.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from common import DATA, ROOT, on_canvas, table, write_section
from facepoints.annotations import read_dataset, read_pts_folder
from facepoints.checkpoint import load_checkpoint
from facepoints.images import IMAGE_SUFFIXES, load_image
from facepoints.models import create_model
from facepoints.training_data import build_cache

# one `facepoints batch` run in a fresh process: what run_batch reports, with the wall clock of the process start
CHILD = """
import json, os, resource, sys, time
called = time.time()
from facepoints.batch.run import run_batch
engine, src, out, address, workers, threads = sys.argv[1:7]
imported = time.time()
busy0 = sum(map(int, open("/proc/stat").readline().split()[1:8]))
s = run_batch(src, out, engine, address or None, int(workers) or None, {"threads": int(threads)})
busy = sum(map(int, open("/proc/stat").readline().split()[1:8])) - busy0
cpu = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT " + json.dumps({"started": called, "imported": imported, "progress": s.progress, "new": s.new,
    "faces": s.faces, "seconds": s.seconds, "driver_cpu_s": cpu.ru_utime + cpu.ru_stime,
    "machine_busy_s": busy / os.sysconf("SC_CLK_TCK")}))
"""


def pick(folder: Path, n: int, dest: Path, with_pts: bool = False) -> Path:
    """The first `n` images of `folder` (sorted, recursive), linked into `dest` (with their .pts files)."""
    dest.mkdir(parents=True, exist_ok=True)
    images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = [p for p in images if not with_pts or p.with_suffix(".pts").exists()][:n]
    for i, p in enumerate(images):
        (dest / f"{i:05d}{p.suffix}").symlink_to(p.resolve())
        if with_pts:
            (dest / f"{i:05d}.pts").symlink_to(p.with_suffix(".pts").resolve())
    return dest


def photos(data: Path, n: int, dest: Path) -> Path:
    """`n` 640x480 JPEGs of one face each: the faces of `data` on a grey canvas (common.on_canvas), then again
    mirrored and shifted, so that every file is its own image (no decoder or detector sees the same bytes twice)."""
    dest.mkdir(parents=True, exist_ok=True)
    samples = read_pts_folder(data)
    canvases: dict[int, np.ndarray] = {}
    for i in range(n):
        k, variant = i % len(samples), i // len(samples)
        if k not in canvases:
            canvases[k] = on_canvas(load_image(samples[k].image_path))
        im = canvases[k][:, ::-1] if variant % 2 else canvases[k]
        im = np.roll(im, 40 * (variant // 2), axis=1)
        bgr = cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(dest / f"{i:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dest


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Cluster:
    """`ray start --head --block --num-cpus N` on the loopback address, with a temp dir, ports and a token of
    its own; stopped by its process group and its temp dir (`ray stop` would stop other users' clusters). In
    this process's session, as when a user types `ray start` and then `facepoints batch` in one terminal: the
    scheduler's autogroup then treats both engines alike."""

    def __init__(self, cpus: int, root: Path):
        self.root, port = root, free_ports(1)[0]
        self.address = f"127.0.0.1:{port}"
        self.env = {**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
        ray_cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"]
        opts = ["--port", str(port), "--num-cpus", str(cpus), "--temp-dir", str(root), "--disable-usage-stats"]
        log = root.with_suffix(".log")
        t = time.perf_counter()
        self.proc = subprocess.Popen(
            [*ray_cmd, *opts], stdout=log.open("w"), stderr=subprocess.STDOUT, env=self.env, process_group=0
        )
        while "Ray runtime started" not in log.read_text():
            if self.proc.poll() is not None or time.perf_counter() - t > 180:
                self.stop()
                raise RuntimeError(f"ray start did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        self.start_s = time.perf_counter() - t
        time.sleep(5)  # its agents and prestarted workers settle, as on a cluster that was started earlier

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while (left := self.pids()) and time.monotonic() < deadline:
            time.sleep(1)  # workers exit on their own once their raylet is gone
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def pids(self) -> list[int]:
        found = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    where = [(d / "cmdline").read_bytes().decode(errors="replace")]
                    where += [os.readlink(d / "fd" / fd) for fd in ("1", "2") if (d / "fd" / fd).exists()]
                except OSError:
                    continue
                if any(str(self.root) in w for w in where):
                    found.append(int(d.name))
        return found


class ClusterCPU:
    """CPU seconds of the cluster's processes while a run lasts, sampled from /proc every half second: the Ray
    workers (`ray::_Worker`) apart from Ray's own processes (raylet, GCS, agents, idle workers)."""

    def __init__(self, cluster: Cluster):
        self.cluster, self.first, self.last, self.done = cluster, {}, {}, threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.sample(self.first)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self, into: dict) -> None:
        for pid in self.cluster.pids():
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            into[pid] = (
                "workers" if "ray::_Worker" in title else "ray",
                (int(fields[11]) + int(fields[12])) / self.tick,
            )

    def loop(self) -> None:
        while not self.done.wait(0.5):
            self.sample(self.last)

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.thread.join()
        self.sample(self.last)
        spent = {"workers": 0.0, "ray": 0.0}
        for pid, (kind, seconds) in self.last.items():
            spent[kind] += seconds - self.first.get(pid, (kind, 0.0))[1]
        return spent


def batch_run(engine: str, src: Path, out: Path, cluster: Cluster | None, workers: int, threads: int = 1) -> dict:
    """One `facepoints batch` in a fresh process: end-to-end, start-up and steady-state figures. threads: ONNX
    Runtime's for the landmark model in each worker (the CLI's is 1; the detector's stays 1)."""
    env = {**(cluster.env if cluster else os.environ), "RAY_AUTH_MODE": "token"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    address = cluster.address if cluster else ""
    cpu = ClusterCPU(cluster) if cluster else None
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, engine, str(src), str(out), address, str(workers if cluster else 0)]
        + [str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.time() - spawned
    spent = cpu.stop() if cpu else None
    out.unlink(missing_ok=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise RuntimeError(f"{engine} run failed:\n{proc.stderr[-3000:]}")
    r = json.loads(lines[0][len("RESULT ") :])
    n, progress = r["new"], r["progress"]
    called = r["imported"] - spawned  # interpreter and facepoints imports: the same for both engines
    first_s = progress[0][0]
    # steady state: from the batch that passed 10% of the images to the one that passed 90%
    a = next(p for p in progress if p[1] >= 0.1 * n)
    b = next(p for p in progress if p[1] >= 0.9 * n)
    return {
        "n": n,
        "faces": r["faces"],
        "wall": wall,
        "rate": n / wall,
        "first_s": called + first_s,
        "steady": (b[1] - a[1]) / (b[0] - a[0]),
        "driver_ms": 1000 * r["driver_cpu_s"] / n,
        # the local engine's worker is its one process
        "worker_ms": 1000 * (spent["workers"] if spent else r["driver_cpu_s"]) / n,
        "ray_ms": 1000 * spent["ray"] / n if spent else None,
        "machine_ms": 1000 * r["machine_busy_s"] / n,
    }


# (label, engine, workers, ONNX Runtime threads per worker), in the order each round runs them
ENGINES = (("local", "local", 1, 1), ("ray 2", "ray", 2, 1), ("local 2", "local", 1, 2), ("ray 1", "ray", 1, 1))


def landmarking(src: Path, tmp: Path, rounds: int, cpus: int) -> tuple[list[list], dict]:
    """The engines interleaved, `rounds` times; each engine's best round (the least disturbed)."""
    cluster = Cluster(cpus, Path(tempfile.mkdtemp(prefix="fpscale", dir="/tmp")))  # short: socket paths <108 B
    runs: dict[str, list[dict]] = {}
    try:
        batch_run("ray", src, tmp / "warm.parquet", cluster, 2)  # page cache warm, the cluster's own actors up
        for _ in range(rounds):
            for label, engine, workers, threads in ENGINES:
                if label in ("ray 1", "local 2") and runs.get(label):
                    continue  # one round is enough for the references
                runs.setdefault(label, []).append(
                    batch_run(engine, src, tmp / "out.parquet", cluster if engine == "ray" else None, workers, threads)
                )
    finally:
        cluster.stop()
    best = {k: max(v, key=lambda r: r["steady"]) for k, v in runs.items()}
    labels = {
        "local": "`facepoints batch` (local engine: one process, one thread)",
        "local 2": "local engine, landmark model on 2 ONNX Runtime threads (the detector on 1)",
        "ray 1": "`facepoints batch --engine ray --address ... --workers 1`",
        "ray 2": "`facepoints batch --engine ray --address ... --workers 2`",
    }
    rows = []
    for k in ("local", "local 2", "ray 1", "ray 2"):
        r = best[k]
        rows.append(
            [
                labels[k],
                f"{r['steady']:.1f}",
                f"{r['steady'] / best['local']['steady']:.2f}x",
                f"{r['rate']:.1f}",
                f"{r['rate'] / best['local']['rate']:.2f}x",
                f"{r['first_s']:.1f} s",
                f"{r['wall']:.1f} s",
                f"{r['worker_ms']:.1f}",
                f"{r['driver_ms']:.1f}" if k.startswith("ray") else "(the worker)",
                f"{r['ray_ms']:.1f}" if r["ray_ms"] is not None else "-",
                f"{r['machine_ms']:.1f}",
                " / ".join(f"{x['steady']:.0f}" for x in runs[k]),
            ]
        )
    notes = {"ray_start_s": cluster.start_s, "faces": best["local"]["faces"], "n": best["local"]["n"]}
    return rows, notes


def training(data: Path, tmp: Path, epochs: int) -> list[list]:
    rows = []
    common = [
        "train",
        "--data",
        str(data),
        "--arch",
        "pipnet_fast",
        "--epochs",
        str(epochs),
        "--batch-size",
        "32",
        "--workers",
        "0",
        "--val-fraction",
        "0",
        "--precision",
        "fp32",
    ]
    env = {**os.environ, "FACEPOINTS_CACHE": str(tmp / "cache")}
    env.pop("OMP_NUM_THREADS", None)  # one process: all cores; two: each its share (distributed.threads_per_rank)
    runs = [
        ("1 process (`facepoints train`)", 1, [sys.executable, "-m", "facepoints"]),
        (
            "2 processes (`torchrun --standalone --nproc_per_node=2`, gloo)",
            2,
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "facepoints"],
        ),
    ]
    build_cache(read_dataset(data), tmp / "cache")  # the crops both runs train on, cached outside the timings
    for label, procs, launcher in runs:
        out = tmp / f"train{procs}"
        t = time.perf_counter()
        subprocess.run([*launcher, *common, "--out", str(out)], env=env, check=True, capture_output=True)
        wall = time.perf_counter() - t
        history = load_checkpoint(out / "last.pt")["history"]
        rates = [h["img_per_s"] for h in history]
        rows.append([label, procs, f"{max(rates):.1f}", " / ".join(f"{r:.1f}" for r in rates), f"{wall:.0f} s"])
    return rows


def report(args: argparse.Namespace, land_rows: list, notes: dict, train_rows: list, loads: tuple[str, str]) -> str:
    """The section: both tables, Ray's start-up, the load average around the run, and how each part scales."""
    load_before, load_after = loads
    n_params = sum(p.numel() for p in create_model("pipnet_fast").parameters())
    mb = 4 * n_params / 1e6
    body = [
        "## Past one machine: batch landmarking and data-parallel training",
        "",
        f"Landmarking: {notes['n']} photos of 640x480, one face each (the faces of `300w/test` on a grey canvas, "
        "then mirrored and shifted; default model and detector, 1 thread per worker), written to Parquet. Each run "
        "is a fresh `python` process, as the CLI is; the Ray runs join a cluster started beforehand (`ray start "
        f"--head --num-cpus {args.cpus}`, {notes['ray_start_s']:.1f} s to come up, not counted). The engines ran "
        f"interleaved, {args.rounds} round(s) (Ray with 1 worker and the 2-thread local run: one); each engine's "
        "best round below, every round's steady rate in the last column.",
        "",
        "- **steady**: images/s from the result batch that passed 10% of the images to the one that passed 90%;",
        "- **end to end**: images / wall clock of the whole process (interpreter start, imports, listing, the "
        "cluster connection, the workers' start and model loads, the Parquet output);",
        "- **first rows**: seconds from the process start to the first batch of rows (the start-up);",
        "- **CPU ms/img**: CPU per image in the workers (the local engine's one process; the Ray actors, all "
        "together), in the Ray driver (listing, handing out batches, writing), in Ray's own processes (raylet, "
        "GCS, agents; sampled from /proc), and on the whole machine (on a quiet machine, what the run costs). "
        "Workers busy on both cores at once cost more per image than one alone (shared caches): the Ray rows' "
        "worker figure against the local one shows it.",
        "",
        table(
            [
                "how",
                "steady img/s",
                "vs local",
                "end to end img/s",
                "vs local",
                "first rows",
                "wall",
                "worker CPU ms/img",
                "driver CPU ms/img",
                "Ray's processes CPU ms/img",
                "machine CPU ms/img",
                "steady, every round",
            ],
            land_rows,
        ),
        "",
        f"Training: `pipnet_fast`, {args.train_faces} faces of `300w/train`, global batch 32, {args.epochs} epochs, "
        "fp32, crops cached beforehand; img/s per epoch from the run's history (all processes together).",
        "",
        table(["how", "processes", "best img/s", "img/s per epoch", "wall (incl. start)"], train_rows),
        "",
        f"Load average (1/5/15 min) before: {load_before}; after: {load_after}. This machine has 2 cores: a load "
        "well above 2 means another job shared them and the figures above are depressed (and their ratios "
        "unreliable).",
        "",
        "**How it scales.** Batch landmarking is embarrassingly parallel: each image is read, decoded, run "
        "through the detector and the landmark model (their split: BENCHMARKS.md `speed`) by one worker, "
        "and nothing is shared between images. What stays serial is on the driver: listing SRC (one metadata "
        "call per file, or one Parquet column), handing out batches of 16 paths (a Parquet SRC: 16 images' bytes), "
        "the progress bar and writing the rows (about 1 kB a face): the driver CPU column. So N machines of c "
        "cores give close to N x c x the one-worker rate once the fixed start is paid: the first-rows column, "
        "that is the driver's Ray import and connection, each worker process's start (Ray's worker, facepoints "
        "and ONNX Runtime imports) and its model load. On one 2-core machine the driver and Ray's own "
        "processes (raylet, GCS, agents) share the cores with the two workers, so the steady ratio stays under "
        "2x, and the start-up weighs on the end-to-end ratio until the run is long enough. The first Ray engine "
        "ran on Ray Data: importing it in the driver and in every worker, its helper actors and its executor's "
        "polling on the driver made the start-up 1.5-2x longer and the driver's CPU per image 2-3x higher; the engine "
        "now hands batches to plain actors itself (`facepoints/batch/ray_engine.py`). On a machine shared with "
        "other jobs the ratio says little: Linux's autogroup scheduler gives each session (the `ray start` "
        "cluster with all its workers is one) one share of a busy CPU, as much as the local engine's one "
        "process gets, so with a load average above the cores (reported above) the Ray rows' advantage vanishes.",
        "",
        "Data-parallel training splits each global batch over the processes and all-reduces the gradients "
        f"every step (gloo on CPU; `pipnet_fast`'s {n_params / 1e3:.0f}k parameters are {mb:.1f} MB of gradients a "
        "step). On one CPU machine, "
        "processes help as far as one process leaves cores idle: a small network's convolutions do not keep two "
        "threads busy (data loading, Python, small kernels), so one-thread processes can beat one two-thread "
        "process, as the table shows (README: two one-thread runs side by side beat one two-thread run too). "
        "Across N machines the per-process "
        f"compute falls as 1/N while the all-reduce per step stays {mb:.1f} MB, so a larger global batch (fewer "
        "steps) keeps the network from dominating. Serial before the first epoch: reading the annotations and "
        "building the crop cache (rank 0; put `FACEPOINTS_CACHE` on shared storage, or each other machine's "
        "processes build their own), and torchrun's rendezvous and process start.",
    ]
    return "\n".join(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--images", type=int, default=2400)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="the Ray cluster's CPUs")
    ap.add_argument("--train-faces", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = photos(args.data / "test", args.images, tmp / "images")
        land_rows, notes = landmarking(src, tmp, args.rounds, args.cpus)
        train_rows = training(pick(args.data / "train", args.train_faces, tmp / "faces", True), tmp, args.epochs)
    load_after = load()
    body = report(args, land_rows, notes, train_rows, (load_before, load_after))
    write_section("scale", body, "python benchmarks/scale.py")


if __name__ == "__main__":
    main()
