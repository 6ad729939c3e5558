"""Shared by the benchmark scripts: machine description and writing one section of BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import re
import time
from pathlib import Path

import numpy as np

from facepoints.provenance import data_hash, git_commit, machine

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
COMMIT = git_commit(ROOT)  # the code as the run started: a benchmark's own outputs do not make it "+changes"
DATA = ROOT.parent / "shared" / "data" / "300w"


def weights_line() -> str:
    """The shipped landmark models and face detectors a figure was made with, by file and sha256."""
    import json

    from facepoints.detectors import DETECTOR_WEIGHTS
    from facepoints.weights import shipped_models

    files = {**shipped_models(), **json.loads((DETECTOR_WEIGHTS / "DETECTORS.json").read_text())}
    return "; ".join(f"`{n}` = {m['file']} sha256 {m['sha256'][:16]}…" for n, m in files.items())


def write_section(name: str, body: str, command: str, data: str | Path = DATA) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md; the stamp names the code (git commit) and the
    data (a hash of the folder the figures were computed on), so a figure can be traced to what made it."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- {name}:start -->\n{body.rstrip()}\n\n"
        f"_Written by `{command}` on {stamp} at commit {COMMIT}, data {Path(data).name}/ sha256 "
        f"{data_hash(data)}…. Machine: {machine()}. Weights: {weights_line()}._\n<!-- {name}:end -->"
    )
    text = (
        REPORT.read_text()
        if REPORT.exists()
        else "# Benchmarks\n\nEvery figure below is written by a script in `benchmarks/`; "
        "rerun it to refresh its section.\n"
    )
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = REPORT.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, REPORT)
    print(f"-> {REPORT} [{name}]")


def median_ms(fn, repeat: int) -> float:
    """Median wall-clock milliseconds of `fn()` over `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def per_face_ms(predict, images, boxes, repeat: int) -> float:
    """Median ms of `predict(image, one box)`, going round the faces: the landmark step as dlib's predictor call."""
    k = iter(range(10**9))
    return median_ms(lambda: predict(images[(i := next(k) % len(images))], boxes[i][None]), repeat)


def test_faces(data: str | Path, n: int):
    """The first `n` annotated faces of `data`: their samples, RGB images and landmark boxes (the timing sets)."""
    from facepoints.crop import points_box
    from facepoints.data import load_image, read_pts_folder

    samples = read_pts_folder(data)[:n]
    images = [load_image(s.image_path) for s in samples]
    return samples, images, np.array([points_box(s.points) for s in samples], np.float32)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def held_out_weights(name: str) -> tuple[str, str]:
    """Weights to judge on held-out faces, and how to name them in a report.

    A shipped model trained on every face of train/ (--val-fraction 0) has nothing held out;
    its held-out figures are those of the run that chose its recipe (MODELS.json recipe_run),
    which must be in runs/ (rerun it with the command in MODELS.json if it is not)."""
    import torch

    from facepoints.weights import resolve, sha256_file, shipped_models

    path, _ = resolve(name)
    if torch.load(path, map_location="cpu", weights_only=True)["train"]["config"]["val_fraction"] > 0:
        return name, f"`{name}`"
    run = shipped_models().get(name, {}).get("recipe_run")
    recipe = ROOT / "runs" / str(run) / "model.pt"
    if not run or not recipe.exists():
        raise SystemExit(
            f"{name}: trained on every face of train/, nothing held out; its recipe run runs/{run} is missing "
            "(README, 'Reproducing the numbers', has its command)"
        )
    return str(recipe), (
        f"`{name}`'s recipe run (`runs/{run}/model.pt` sha256 {sha256_file(recipe)[:16]}…: "
        "same settings, 10% of train/ held out)"
    )


README = ROOT / "README.md"
ACCURACY = ROOT / "benchmarks" / "results" / "accuracy.json"
# what the figures cannot say: how each model was designed (its measured figures come from the files below)
MODEL_NOTES = {
    "fast": "ships as fp32 weights plus an int8 ONNX graph (used by default with ONNX Runtime); a 1.1 crop margin and "
    "box jitter fitted to dlib's box errors",
    "xception": "the seed recipe (MSE, Adam, lr 0.0008, 30 epochs)",
    "accurate": "a wider, deeper trunk and a stride-4 head (32x32 grid); several ms per face, for when the detector's "
    "30+ ms dominate anyway (`--model accurate`)",
}


def model_table() -> str:
    """The README's table of shipped models, from weights/MODELS.json (the training record) and
    benchmarks/results/accuracy.json (300-W common NME, written by benchmarks/accuracy.py)."""
    import json

    from facepoints.weights import shipped_models

    scores = json.loads(ACCURACY.read_text()) if ACCURACY.exists() else {}

    def nme(label: str, boxes: str) -> str:
        hits = [r for k, r in scores.items() if k == f"facepoints {label} | {boxes}"]
        return f"{100 * hits[0]['nme_mean']:.2f}%" if hits else "—"

    rows = []
    for i, (name, m) in enumerate(shipped_models().items()):
        held = m.get("val_nme") or m.get("recipe_val_nme")
        cpu = m["machine"].split(",")[0]
        trained = f"{m['epochs_trained']} epochs, {m['train_wall_clock_minutes']:.0f} min ({cpu})"
        label = f"{name} (int8 ONNX)" if m.get("int8_onnx") else name  # the graph the predictor runs by default
        flip = nme(f"{label} + flip test", "landmarks")
        rows.append([f"`{name}`" + (" (default)" if i == 0 else ""), f"`{m['arch']}`", f"{m['params'] / 1e3:,.0f}k",
                     nme(label, "landmarks"), nme(label, "RetinaFace"), nme(label, "dlib HOG"), flip,
                     f"{100 * held:.2f}%" if held else "—", trained, MODEL_NOTES.get(name, "")])
    return table(["name", "architecture", "params", "300-W common NME, landmark boxes",
                  "RetinaFace boxes (default detector)", "dlib HOG boxes",
                  "flip test", "held-out NME (train/)", "training", "notes"], rows)


def write_readme_models() -> None:
    """Replace the README's model table (between its `models` markers) with `model_table()`."""
    text = README.read_text()
    pattern = re.compile(r"<!-- models:start -->.*?<!-- models:end -->", re.S)
    block = ("<!-- models:start -->\n<!-- written by benchmarks/accuracy.py (or `python benchmarks/_report.py` from "
             "the stored results); do not edit by hand -->\n" + model_table() + "\n<!-- models:end -->")
    if not pattern.search(text):
        raise SystemExit(f"{README}: no <!-- models:start --> ... <!-- models:end --> markers")
    tmp = README.with_suffix(".tmp")
    tmp.write_text(pattern.sub(lambda _: block, text))
    os.replace(tmp, README)
    print(f"-> {README} [models]")


if __name__ == "__main__":
    write_readme_models()  # from the stored results: no measuring
