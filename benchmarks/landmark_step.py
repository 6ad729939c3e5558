"""The landmark step against dlib's predictor, per graph, on this machine's CPU (issue 27, target 1).

One run, one thread, the API with given boxes (`LandmarkPredictor.predict_landmarks(image, one box)`: crop, gray,
network, points back in the image) on the first --faces test faces, against dlib's 68-point predictor on the same
faces (its boxes: the same landmark boxes mapped into its own convention, as accuracy.py does). Rows: `fast` int8,
`fast` fp32, and the graph the predictor chooses by itself on this CPU (graph_choice.py), each with and without
the trust heads. Timing is interleaved face by face (each face goes through every method in turn, the order
turning round each time), so a slow spell of this shared machine hits every method alike; a round's figure is the
median over the faces, and the table gives the best of --rounds rounds and the ratio to dlib (median of the
per-round ratios: the figure to trust on a busy machine). NME is each method's on those faces.

Then where the time goes, for the default graph: the MAC-count floor (the network's multiply-adds at this core's
measured fp32 rate, a one-thread ONNX Runtime MatMul), the network alone on a ready crop, the trunk alone (the
graph cut before the decode), crop + gray, and each ONNX Runtime session option tried (ratio to the shipped
settings; below 1 helps).

Run: OMP_NUM_THREADS=1 python benchmarks/landmark_step.py [--data ../shared/data/300w/test] [--faces 200]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from common import DATA, DlibShapePredictor, macs, table, test_faces, write_section
from facepoints.crop import crop_face, to_gray
from facepoints.detectors import load_box_map
from facepoints.graph_choice import cpu_id
from facepoints.metrics import nme
from facepoints.model_files import shipped_graphs, shipped_trust_graphs
from facepoints.predictor import LandmarkPredictor
from facepoints.weights import load_model

MODEL = "fast"
CLOCK = {"wall": time.perf_counter, "cpu": time.thread_time}
clock = time.perf_counter


def dlib_boxes(boxes: np.ndarray) -> np.ndarray:
    """Landmark boxes -> the boxes dlib's HOG detector would draw (its predictor was trained on those)."""
    m = load_box_map("dlib")
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / m.scale
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 - m.dx * side
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 - m.dy * side
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1)


def interleaved_rounds(methods: dict, images, boxes: dict, rounds: int) -> dict[str, list[float]]:
    """name -> per-round median ms per face; every face goes through every method in turn."""
    names = list(methods)
    for name in names:  # warm-up
        methods[name](images[0], boxes[name][:1])
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        times: dict[str, list[float]] = {n: [] for n in names}
        for i, image in enumerate(images):
            order = names[(i + r) % len(names) :] + names[: (i + r) % len(names)]
            for name in order:
                box = boxes[name][i : i + 1]
                t = clock()
                methods[name](image, box)
                times[name].append(clock() - t)
        for n in names:
            out[n].append(1000 * float(np.median(times[n])))
        print(f"round {r + 1}: " + ", ".join(f"{n} {out[n][-1]:.3f}" for n in names), flush=True)
    return out


def matmul_gflops(n: int = 512, rounds: int = 5) -> float:
    """This core's achievable fp32 rate: an n x n x n MatMul on one ONNX Runtime thread (MLAS), best of rounds."""
    x = onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [n, n])
    y = onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [n, n])
    b = onnx.numpy_helper.from_array(np.random.default_rng(0).random((n, n), np.float32), "b")
    graph = onnx.helper.make_graph([onnx.helper.make_node("MatMul", ["a", "b"], ["c"])], "mm", [x], [y], [b])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(1).random((n, n), np.float32)
    best = float("inf")
    s.run(None, {"a": a})
    for _ in range(rounds):
        t = clock()
        for _ in range(10):
            s.run(None, {"a": a})
        best = min(best, (clock() - t) / 10)
    return 2 * n**3 / best / 1e9


def trunk_graph(path: str, folder: str) -> str:
    """The graph cut at the network's last convolution (the score and offset maps): no decode, no trust head."""
    m = onnx.load(path)
    out = next(n.output[0] for n in m.graph.node if n.output[0].endswith("/head/Conv_output_0"))
    needed, keep = {out}, []
    for node in reversed(m.graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del m.graph.node[:]
    m.graph.node.extend(reversed(keep))
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    kept = {i for n in keep for i in n.input}
    inits = [t for t in m.graph.initializer if t.name in kept]
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    dest = str(Path(folder) / "trunk.onnx")
    onnx.save(m, dest)
    return dest


def session(path: str, **options) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    for key, value in options.items():
        if key == "config":
            for k, v in value.items():
                opts.add_session_config_entry(k, v)
        elif key == "batch1":
            opts.add_free_dimension_override_by_name("batch", 1)
        else:
            setattr(opts, key, value)
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def interleaved_ms(fns: dict, n: int, rounds: int) -> dict[str, list[float]]:
    """name -> per-round median ms of fn(), calls interleaved one by one."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        times: dict[str, list[float]] = {k: [] for k in fns}
        for i in range(n):
            for k, fn in list(fns.items())[:: 1 if i % 2 else -1]:
                t = clock()
                fn()
                times[k].append(clock() - t)
        for k in fns:
            out[k].append(1000 * float(np.median(times[k])))
    return out


def where_the_time_goes(images, boxes, rounds: int, gflops: float, mac_count: int) -> tuple[list, list]:
    """Rows of the breakdown (default graph) and of the session options tried."""
    p = LandmarkPredictor(MODEL, threads=1)
    graph = (shipped_trust_graphs(MODEL) if p.has_trust else shipped_graphs(MODEL))[1 if p.int8 else 0]
    crop = to_gray(crop_face(images[0], tuple(boxes[0]), p.input_size, p.margin).image)
    x = (crop.astype(np.float32) / np.float32(255))[None, None]
    x4 = np.repeat(x, 4, axis=0)
    floor = 2 * mac_count / gflops / 1e6
    with tempfile.TemporaryDirectory() as folder:
        trunk = session(trunk_graph(graph.path, folder))
        k = iter(range(10**9))

        def step():
            i = next(k) % len(images)
            p.predict_landmarks(images[i], boxes[i : i + 1])

        def crop_gray():
            i = next(k) % len(images)
            to_gray(crop_face(images[i], tuple(boxes[i]), p.input_size, p.margin).image)

        parts = interleaved_ms(
            {
                "step": step,
                "network": lambda: p.session.run(None, {"crops": x}),
                "network, 4 crops in one call": lambda: p.session.run(None, {"crops": x4}),
                "trunk": lambda: trunk.run(None, {"crops": x}),
                "crop": crop_gray,
            },
            300,
            rounds,
        )
    best = {k: min(v) for k, v in parts.items()}
    label = f"{'int8' if p.int8 else 'fp32'}{' + trust' if p.has_trust else ''}"
    breakdown = [
        ["MAC-count floor", f"{floor:.3f} ms", f"{mac_count / 1e6:.1f}M MACs at {gflops:.0f} GFLOP/s", "1.00x"],
        ["trunk (graph cut before the decode)", f"{best['trunk']:.3f} ms", label, f"{best['trunk'] / floor:.2f}x"],
        [
            "network (trunk + decode + trust head)",
            f"{best['network']:.3f} ms",
            label,
            f"{best['network'] / floor:.2f}x",
        ],
        [
            "network per crop, 4 crops in one call (one image's faces)",
            f"{best['network, 4 crops in one call'] / 4:.3f} ms",
            label,
            f"{best['network, 4 crops in one call'] / 4 / floor:.2f}x",
        ],
        ["crop + gray (Python, OpenCV)", f"{best['crop']:.3f} ms", "", ""],
        ["whole step", f"{best['step']:.3f} ms", label, f"{best['step'] / floor:.2f}x"],
    ]
    E = ort.GraphOptimizationLevel
    spin = "session.intra_op.allow_spinning"
    variants = {
        "shipped settings (1 thread, ORT_ENABLE_ALL)": {},
        "batch dimension fixed to 1 (free-dimension override)": {"batch1": True},
        "denormals as zero": {"config": {"session.set_denormal_as_zero": "1"}},
        "no spinning": {"config": {spin: "0"}},
        "ORT_ENABLE_EXTENDED (no NCHWc layout)": {"graph_optimization_level": E.ORT_ENABLE_EXTENDED},
        "sequential execution, memory pattern off": {"enable_mem_pattern": False},
    }
    sessions = {name: session(graph.path, **opts) for name, opts in variants.items()}
    runs = interleaved_ms({n: (lambda s=s: s.run(None, {"crops": x})) for n, s in sessions.items()}, 200, rounds)
    ref = runs[next(iter(variants))]
    options = [
        [name, f"{min(v):.3f} ms", f"{np.median([a / b for a, b in zip(v, ref)]):.3f}"] for name, v in runs.items()
    ]
    load = {}
    with tempfile.TemporaryDirectory() as folder:
        optimized = str(Path(folder) / "optimized.onnx")
        t = time.perf_counter()
        session(graph.path, optimized_model_filepath=optimized)
        load["from the shipped file"] = time.perf_counter() - t
        t = time.perf_counter()
        session(optimized, graph_optimization_level=E.ORT_DISABLE_ALL)
        load["from an optimized-model file"] = time.perf_counter() - t
    options += [[f"session load {k}", f"{1000 * v:.0f} ms", ""] for k, v in load.items()]
    return breakdown, options


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "test"))
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--clock",
        choices=CLOCK,
        default="wall",
        help="wall: elapsed time (a quiet machine); cpu: this thread's CPU time, which leaves out the time a busy "
        "shared machine keeps the benchmark waiting (every method runs on this one thread)",
    )
    args = ap.parse_args()
    global clock
    clock = CLOCK[args.clock]
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: run with OMP_NUM_THREADS=1 (dlib and OpenCV on one thread too)")
    samples, images, boxes = test_faces(args.data, args.faces)
    gt = np.stack([s.points for s in samples])
    predictors = {
        "fast int8 + trust": LandmarkPredictor(MODEL, threads=1, int8=True),
        "fast fp32 + trust": LandmarkPredictor(MODEL, threads=1, int8=False),
        "fast int8": LandmarkPredictor(MODEL, threads=1, int8=True, trust=False),
        "fast fp32": LandmarkPredictor(MODEL, threads=1, int8=False, trust=False),
        "fast auto + trust (default)": LandmarkPredictor(MODEL, threads=1),
        "fast auto": LandmarkPredictor(MODEL, threads=1, trust=False),
    }
    ref = DlibShapePredictor()
    methods = {name: p.predict_landmarks for name, p in predictors.items()} | {"dlib": ref.predict}
    box_of = {name: boxes for name in predictors} | {"dlib": dlib_boxes(boxes.astype(np.float64))}
    rounds = interleaved_rounds(methods, images, box_of, args.rounds)
    scores = {}
    for name, fn in methods.items():
        answers = [fn(im, box_of[name][i : i + 1]) for i, im in enumerate(images)]
        pts = np.concatenate([a if name == "dlib" else a.points for a in answers])
        scores[name] = float(nme(pts, gt).mean())
    dlib_ms = rounds["dlib"]
    rows = []
    for name, ms in rounds.items():
        ratio = np.median([a / b for a, b in zip(ms, dlib_ms)])
        graph = ""
        if name in predictors:
            c = predictors[name].graph_choice
            graph = f"{c.graph} ({c.reason})"
        delta = "" if name == "dlib" else f"{100 * (scores[name] - scores['fast fp32 + trust']):+.3f}"
        rows.append(
            [
                name,
                graph,
                f"{min(ms):.3f} ms",
                f"{np.median(ms):.3f} ms",
                f"{ratio:.2f}x",
                f"{100 * scores[name]:.3f}%",
                delta,
            ]
        )
    mac_count = macs(load_model(MODEL)[0])
    gflops = matmul_gflops()
    breakdown, options = where_the_time_goes(images, boxes, args.rounds, gflops, mac_count)
    body = "\n".join(
        [
            "## Landmark step against dlib's predictor, one face, one thread",
            "",
            f"CPU: {cpu_id()}. One thread, the API with given boxes (`predict_landmarks(image, one box)`: crop, gray, "
            "network, points "
            f"back), the first {len(images)} 300-W test faces, interleaved face by face with dlib's 68-point "
            f"predictor (boxes in its own convention); ms per face = median over the faces, best of {args.rounds} "
            f"rounds ({'wall-clock' if args.clock == 'wall' else 'thread CPU'} time); the ratio to dlib is the "
            "median of the per-round ratios. Target (issue 27): <= 0.70x dlib "
            "with NME within +0.03 (points of %) of fp32's. *auto* = the graph the predictor picks on this CPU "
            "(graph_choice.py: timed once, cached per CPU).",
            "",
            table(["method", "graph", "ms/face (best)", "ms/face (median)", "vs dlib", "NME", "NME vs fp32"], rows),
            "",
            "Where the default graph's time goes (best of the rounds; the floor is the network's multiply-adds at this "
            "core's one-thread fp32 MatMul rate in ONNX Runtime):",
            "",
            table(["part", "ms", "", "x floor"], breakdown),
            "",
            "ONNX Runtime session options tried on the default graph (one crop, interleaved; ratio to the shipped "
            "settings, median of the rounds, below 1 helps):",
            "",
            table(["setting", "ms (best)", "ratio"], options),
        ]
    )
    print(body)
    command = "OMP_NUM_THREADS=1 python benchmarks/landmark_step.py" + (" --clock cpu" if args.clock == "cpu" else "")
    write_section("landmark-step", body, command)


if __name__ == "__main__":
    main()
