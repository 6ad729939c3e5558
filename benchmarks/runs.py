"""Training runs side by side, from the held-out NME each epoch logged in its last.pt (train/'s held-out 10%).

For runs with --ema both the moving average (what is selected and shipped) and the raw
weights of the same trajectory are shown, so one run gives the moving average's ablation.
The mean of the last 60 epochs is steadier than the best epoch on 201 held-out faces.
A second table scores each run's selected weights (model.pt, fp32) on the same held-out faces
with landmark boxes and with dlib's HOG boxes, which is how users get them: box jitter and
crop margin trade one against the other, and only the second says how. The same weights
on test/ are reported beside them, for reporting only: runs are chosen on the held-out columns.
A third table gives what int8 quantization costs each run on its held-out faces.
Run: python benchmarks/runs.py runs/fast2 runs/offs   (run folders are not committed: retrain them with
the commands in MODELS.json / docs/experiments.md)
"""

import argparse
from pathlib import Path

import numpy as np

from common import DATA, EXPERIMENTS, CachedDetector, held_out_and_test, int8_cost, table, write_section
from facepoints.annotations import read_dataset
from facepoints.checkpoint import RunSplit, load_checkpoint
from facepoints.config import config_from_dict
from facepoints.detectors import create_detector
from facepoints.weights import sha256_file

TAIL = 60


def describe(values: np.ndarray) -> list[str]:
    return [f"{100 * values.min():.2f}% (epoch {values.argmin() + 1})", f"{100 * values[-TAIL:].mean():.2f}%"]


def log_rows(run: Path, cfg: dict, history: list[dict], split: str) -> list[list]:
    """The run's held-out NME per epoch from its log: the moving average's and the raw weights' (with --ema)."""
    epochs = (
        f"{len(history)} epochs"
        if len(history) == cfg["epochs"]
        else f"stopped after {len(history)} of {cfg['epochs']} epochs"
    )
    setup = (
        f"{cfg['arch']}, {epochs}, rotation ±{cfg['augment']['rotation']:g}°, margin {cfg['margin']:g}, "
        f"mirrors keep offsets: {cfg.get('annotation_offsets', False)}"
    )
    val = np.array([h["val_nme"] for h in history])
    if "val_nme_raw" not in history[0]:
        return [[f"`{run.name}`", split, setup, "raw weights", *describe(val)]]
    raw = np.array([h["val_nme_raw"] for h in history])
    return [
        [f"`{run.name}`", split, setup, f"moving average ({cfg['ema']})", *describe(val)],
        [f"`{run.name}`", split, setup, "raw weights", *describe(raw)],
    ]


def score_row(run: Path, cfg: dict, split: str, nmes: list[dict]) -> list:
    """The run's selected weights on held-out faces and test/, with landmark and dlib HOG boxes."""
    full = config_from_dict(cfg)
    aug = full.augment
    jitter = f"shift ±{aug.shift_across:g} across, ±{aug.shift:g} down, scale ±{aug.scale:g}"
    return [
        f"`{run.name}` ({sha256_file(run / 'model.pt')[:12]}…)",
        split,
        f"margin {cfg['margin']:g}, {jitter}, cache {full.cache_side} px",
        *[f"{100 * r['nme_mean']:.2f}%" for r in nmes],
    ]


def report(rows: list, scored: list, quantized: list, found: list[str]) -> str:
    return "\n".join(
        [
            "## Training runs compared (held-out 10% of train)",
            "",
            f"Held-out NME per epoch from each run's log: the best epoch, and the mean over the last {TAIL} epochs. "
            "The log measures it on crops cut from the run's training cache, so runs made with different cache "
            "settings (`--cache-side`) compare only in the second table, which crops each face from its image as the "
            "predictor does. "
            "`--seed` picks both the held-out faces and the augmentation draws: runs compare only with runs of the "
            "same split, "
            "and a pair of recipes repeated with another seed shows how much of a difference is chance.",
            "",
            table(
                ["run", "held-out split", "setup", "weights", "best held-out NME", f"mean, last {TAIL} epochs"], rows
            ),
            "",
            "Each run's selected weights (model.pt, named by sha256; fp32, the torch backend) on the same held-out "
            "faces, and on test/ for reporting only (runs are chosen on the held-out columns). Box jitter is a "
            "fraction of the crop side; dlib HOG boxes are mapped to landmark boxes by `detector_boxes.json` (fitted "
            f"on train/), and the NME is over the faces the detector finds ({', '.join(found)}).",
            "",
            table(
                [
                    "run (model.pt sha256)",
                    "held-out split",
                    "crop, box jitter, cache",
                    "held-out, landmark boxes",
                    "held-out, dlib HOG boxes",
                    "test/, landmark boxes",
                    "test/, dlib HOG boxes",
                ],
                scored,
            ),
            "",
            "What int8 costs each run: its model.pt as an fp32 ONNX graph and as the int8 graph "
            "`scripts/quantize_weights.py` "
            "would ship (200 of its training crops calibrate it), on its held-out faces cut from its own training "
            "cache (as `architectures.py` measures the shipped model; compare the two columns within a run, not "
            "across caches).",
            "",
            table(["run", "held-out split", "fp32", "int8", "int8 − fp32"], quantized),
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    rows, scored, quantized, found = [], [], [], {}
    train, test = read_dataset(DATA / "train"), read_dataset(DATA / "test")
    det = CachedDetector(create_detector("dlib"))
    for run in args.runs:
        state = load_checkpoint(run / "last.pt")
        cfg, history = state["config"], state["history"]
        if "val_nme" not in history[0]:
            raise SystemExit(f"{run}: trained on every face (--val-fraction 0), no held-out NME to compare")
        split = f"seed {cfg['seed']}" + ("" if cfg["val_fraction"] == 0.1 else f", {cfg['val_fraction']:.0%}")
        rows += log_rows(run, cfg, history, split)
        run_split = RunSplit.from_config(cfg, DATA / "train")
        nmes = held_out_and_test(run / "model.pt", run_split, train, test, det)
        scored.append(score_row(run, cfg, split, nmes))
        f32, q8 = int8_cost(run / "model.pt", run_split)
        quantized.append([f"`{run.name}`", split, f"{f32:.3f}%", f"{q8:.3f}%", f"{q8 - f32:+.3f}"])
        found[split] = f"{nmes[1]['n_detected']}/{nmes[1]['n_faces']} held-out ({split})"
        found_test = f"{nmes[3]['n_detected']}/{nmes[3]['n_faces']} test"
    body = report(rows, scored, quantized, [*found.values(), found_test])
    write_section("runs", body, "python benchmarks/runs.py " + " ".join(str(r) for r in args.runs), path=EXPERIMENTS)


if __name__ == "__main__":
    main()
