"""Training runs side by side, from the held-out NME each epoch logged in its last.pt (train/'s held-out 10%).

For runs with --ema both the moving average (what is selected and shipped) and the raw
weights of the same trajectory are shown, so one run gives the moving average's ablation.
The mean of the last 60 epochs is steadier than the best epoch on 201 held-out faces.
Run: python benchmarks/runs.py runs/fast2 runs/offs   (run folders are not committed: retrain them with
the commands in MODELS.json / BENCHMARKS.md)
"""

import argparse
from pathlib import Path

import numpy as np

from _report import table, write_section
from facepoints.train import load_checkpoint

TAIL = 60


def describe(values: np.ndarray) -> list[str]:
    return [f"{100 * values.min():.2f}% (epoch {values.argmin() + 1})", f"{100 * values[-TAIL:].mean():.2f}%"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        state = load_checkpoint(run / "last.pt")
        cfg, history = state["config"], state["history"]
        if "val_nme" not in history[0]:
            raise SystemExit(f"{run}: trained on every face (--val-fraction 0), no held-out NME to compare")
        setup = (f"{cfg['arch']}, {len(history)} epochs, rotation ±{cfg['augment']['rotation']:g}°, margin {cfg['margin']:g}, "
                 f"mirrors keep offsets: {cfg.get('annotation_offsets', False)}")
        val = np.array([h["val_nme"] for h in history])
        if "val_nme_raw" in history[0]:
            rows.append([f"`{run.name}`", setup, f"moving average ({cfg['ema']})", *describe(val)])
            rows.append([f"`{run.name}`", setup, "raw weights", *describe(np.array([h["val_nme_raw"] for h in history]))])
        else:
            rows.append([f"`{run.name}`", setup, "raw weights", *describe(val)])
    body = ["## Training runs compared (held-out 10% of train)", "",
            f"Held-out NME per epoch from each run's log: the best epoch, and the mean over the last {TAIL} epochs.", "",
            table(["run", "setup", "weights", "best held-out NME", f"mean, last {TAIL} epochs"], rows)]
    write_section("runs", "\n".join(body), "python benchmarks/runs.py " + " ".join(str(r) for r in args.runs))


if __name__ == "__main__":
    main()
