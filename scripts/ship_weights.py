"""Copy a training run's best weights into the package as a named shipped model.

Records in src/facepoints/weights/MODELS.json: file, sha256, architecture, the exact
training command, its wall time (sum of the epochs), the machine, validation NME, and
the licence. Run: python scripts/ship_weights.py runs/fast fast --command "facepoints train ..."

A run trained on every face (--val-fraction 0) has no held-out NME of its own; name the
run that chose its recipe with --recipe-run (same settings, 10% held out): its held-out
NME is recorded as the recipe's, and the script refuses a recipe run with other settings.
"""

import argparse
import datetime
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from facepoints.config import config_from_dict
from facepoints.provenance import machine
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file

LICENCE = "Trained on 300-W (iBUG): non-commercial research use only, like the data."


def recipe_selection(cfg: dict, train_meta: dict, recipe_run: Path | None) -> dict:
    """The held-out evidence for these weights: their own, or that of the run that chose their recipe."""
    if cfg["val_fraction"] > 0:
        return {"val_nme": round(train_meta["val_nme"], 5)}
    if recipe_run is None:
        sys.exit(
            "this run trained on every face (--val-fraction 0): name the held-out run that chose its recipe with "
            "--recipe-run"
        )
    recipe = torch.load(recipe_run / "model.pt", map_location="cpu", weights_only=True)["train"]
    ignore = {"out", "val_fraction", "epochs"}  # epochs may be scaled to keep the number of optimiser steps
    # with defaults filled in, so an option added after a run was made (e.g. cache_side) is not a difference
    ours, theirs = asdict(config_from_dict(cfg)), asdict(config_from_dict(recipe["config"]))
    diff = sorted(k for k in ours if k not in ignore and ours[k] != theirs[k])
    if diff:
        sys.exit(f"{recipe_run}: not the same recipe (differs in {', '.join(diff)})")
    return {
        "val_nme": None,
        "recipe_run": recipe_run.name,
        "recipe_val_nme": round(recipe["val_nme"], 5),
        "recipe_selected_epoch": recipe["epoch"],
        "recipe_epochs": recipe["config"]["epochs"],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--command", required=True, help="the facepoints train command that made the run")
    ap.add_argument(
        "--recipe-run", type=Path, help="for a run with --val-fraction 0: the held-out run with the same recipe"
    )
    args = ap.parse_args()
    src = args.run / "model.pt"
    load_model(str(src))  # refuses a broken file
    last = torch.load(args.run / "last.pt", map_location="cpu", weights_only=True)
    weights = torch.load(src, map_location="cpu", weights_only=True)
    PACKAGE_WEIGHTS.mkdir(exist_ok=True)
    dest = PACKAGE_WEIGHTS / f"{args.name}.pt"
    if "output_shift" not in weights["train"]:
        sys.exit(f"{src}: no output_shift recorded (the run did not finish, or predates it); finish it with --resume")
    cfg = weights["train"]["config"]
    selection = recipe_selection(cfg, weights["train"], args.recipe_run)
    shutil.copyfile(src, dest)
    index_path = PACKAGE_WEIGHTS / "MODELS.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    history = last["history"]
    index[args.name] = {
        "file": dest.name,
        "sha256": sha256_file(dest),
        "arch": weights["arch"],
        "params": sum(v.numel() for k, v in weights["model"].items() if "running" not in k and "num_batches" not in k),
        "command": args.command,
        "epochs_trained": last["epoch"],
        "selected_epoch": weights["train"].get("epoch"),
        **selection,
        "train_wall_minutes": round(sum(h["epoch_s"] for h in history) / 60, 1),
        # start of the run (config.json) to its last checkpoint: includes plots and anything else the machine ran
        # the run's own clock, saved in each checkpoint across resumes (config.json's mtime moves on --resume)
        "train_wall_clock_minutes": round(last["wall_s"] / 60, 1) if "wall_s" in last else None,
        "train_img_per_s": round(sum(h["img_per_s"] for h in history) / len(history), 1),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "data": "300-W train split as in ../shared/data/300w/train (2,012 faces; "
        + (
            f"{cfg['val_fraction']:.0%} held out for model selection)"
            if cfg["val_fraction"] > 0
            else "all of them; recipe and epoch count chosen on a run that held out 10%)"
        ),
        "licence": LICENCE,
    }
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps(index[args.name], indent=2))
    graphs = ((f"{args.name}.int8.onnx", "quantize_weights.py"), (f"{args.name}.onnx", "export_shipped_onnx.py"))
    for stale, remake in graphs:
        stale = PACKAGE_WEIGHTS / stale
        if stale.exists():  # made from the weights this replaces: remove it so it cannot be shipped by mistake
            stale.unlink()
            print(f"removed {stale.name}; rebuild it with: python scripts/{remake} {args.name}")
    print(
        f"the core install (no torch) runs {args.name} only once its ONNX graph ships: "
        f"python scripts/export_shipped_onnx.py {args.name}"
    )


if __name__ == "__main__":
    main()
