"""Which of a model's two shipped graphs, int8 or fp32, to run on this CPU: timed once, remembered per CPU.

Neither graph is the faster one everywhere: int8 should win where the CPU has fast int8 dot products (AVX-512
VNNI, AVX-VNNI, AMX) and loses where it has not, as its quantize/dequantize steps cost more than the int8
convolutions save (fp32 ~10% faster on the AMD EPYC and the Intel Xeon measured; BENCHMARKS.md "Landmark step").
So the first predictor on a CPU times both graphs on one thread (interleaved, median, CPU time) and keeps the
faster one, int8 only when it is at least 10% faster (it is less accurate). The answer goes to `graph_choice.json`
in the cache folder (io_utils.default_cache_dir), keyed by the CPU (model name, family/model, the ISA features that
matter), the ONNX Runtime version and both graphs' sha256, so a new CPU, runtime or graph is timed again. A damaged
cache file is ignored and rewritten (atomically); a cache folder that cannot be written only costs the timing.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FacepointsError
from .io_utils import atomic_write_text, default_cache_dir

CACHE_FILE = "graph_choice.json"
# int8 is kept only when its median is below this fraction of fp32's (the repo's rule for shipping int8 as a default:
# at least 10% faster); a near tie goes to the more accurate graph, and noise cannot flip the choice
INT8_MARGIN = 0.90
# ISA features that decide which graph is faster (fast int8 dot products, wide vectors)
FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_tile", "asimddp")
ROUNDS = 60  # interleaved timed runs of each graph (~0.2 s in all)


# x86 features with which int8 dot products are exact (no 16-bit intermediate sums)
EXACT_INT8 = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class GraphChoice:
    """The graph a predictor runs: "int8" or "fp32", and why: "user" (asked for), "only" (one ships), "timed" (measured
    now), "cached" (measured before on this CPU), "inexact int8" (an x86 CPU without VNNI: int8 would lose accuracy).
    `ms`: the median milliseconds per crop of each graph when timed."""

    graph: str
    reason: str
    ms: dict[str, float] | None = None
    key: str = ""

    @property
    def int8(self) -> bool:
        return self.graph == "int8"


def _cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (the others are alike); {} off Linux."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if not key and fields:
                break
            fields.setdefault(key, value)
    except OSError:
        pass
    return fields


def int8_is_exact(fields: dict[str, str] | None = None) -> bool:
    """False on an x86 CPU without VNNI/AMX, where ONNX Runtime's int8 convolutions saturate; True elsewhere
    (ARM's dot products, and CPUs whose features cannot be read: the timing then decides)."""
    fields = _cpuinfo() if fields is None else fields
    flags = set((fields.get("flags") or "").split())
    x86 = bool(flags & {"sse2", "avx", "avx2"}) or platform.machine().lower() in ("x86_64", "amd64", "i686")
    return not (x86 and flags) or bool(flags & set(EXACT_INT8))


def cpu_id() -> str:
    """This CPU as the cache keys it: model name, family/model/stepping and the features in FEATURES."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return ", ".join([name, *ids, "+".join(f for f in FEATURES if f in flags) or "no listed features"])


def optimized_copy(sha256: str, runtime: str, cache_dir: str | Path | None = None) -> Path:
    """Where ONNX Runtime's optimized copy of a shipped graph is kept for this CPU and runtime: the optimisations
    (constant folding, fusions, the NCHWc layout, which depends on the CPU's vector width) then run once, and a
    session loads ~5x faster (BENCHMARKS.md "Landmark step"). Beside it, `<name>.sha256` holds its checksum."""
    cpu = hashlib.sha256(cpu_id().encode()).hexdigest()[:12]
    return Path(cache_dir or default_cache_dir()) / "ort-optimized" / f"{sha256[:16]}-ort{runtime}-cpu{cpu}.onnx"


def choice_key(cpu: str, runtime: str, fp32_sha256: str, int8_sha256: str) -> str:
    return f"{cpu} | onnxruntime {runtime} | fp32 {fp32_sha256[:16]} | int8 {int8_sha256[:16]}"


def cache_path(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / CACHE_FILE


def read_choices(path: Path) -> dict[str, dict]:
    """The cache's records; {} when it is missing or damaged (not JSON, or not the shape this module writes)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and v.get("graph") in ("int8", "fp32")}


def time_graphs(run: dict[str, Callable[[], object]], rounds: int = ROUNDS) -> dict[str, float]:
    """Median milliseconds of each callable, called in turn (one slow spell of a shared machine hits both alike), in
    this thread's CPU time: a one-thread session runs on the calling thread, and the time a busy machine keeps it
    waiting is left out (wall-clock timing under load once chose the slower graph here)."""
    for fn in run.values():  # warm-up: first runs allocate
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in run}
    for i in range(rounds):
        for name, fn in list(run.items())[:: 1 if i % 2 else -1]:
            t = time.thread_time()
            fn()
            times[name].append(time.thread_time() - t)
    return {name: round(1000 * float(np.median(t)), 4) for name, t in times.items()}


def choose_graph(
    key: str, run: Callable[[], dict[str, Callable[[], object]]], cache_dir=None, int8_exact: bool = True
) -> GraphChoice:
    """The cached choice for `key`, else time the graphs `run()` gives ("int8", "fp32" -> one crop each) and cache
    the answer. `run` is called only when timing is needed: opening the other graph's session is part of the cost.
    With `int8_exact` False (int8_is_exact) fp32 is the answer, untimed."""
    if not int8_exact:
        return GraphChoice("fp32", "inexact int8", None, key)
    path = cache_path(cache_dir)
    choices = read_choices(path)
    if key in choices:
        record = choices[key]
        return GraphChoice(record["graph"], "cached", record.get("ms"), key)
    ms = time_graphs(run())
    graph = "int8" if ms["int8"] < INT8_MARGIN * ms["fp32"] else "fp32"
    choices[key] = {"graph": graph, "ms": ms, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        atomic_write_text(path, json.dumps(choices, indent=1, sort_keys=True) + "\n")
    except (FacepointsError, OSError):  # a read-only cache folder: choose again next time
        pass
    return GraphChoice(graph, "timed", ms, key)
