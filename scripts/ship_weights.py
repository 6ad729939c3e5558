"""Copy a training run's best weights into the package as a named shipped model.

Also measures the model's mean signed error on its own training faces (un-augmented, crop px)
and stores it in the weights as `output_shift`, which the predictor subtracts: a bias the
network could not learn because mirror augmentation contradicts it (see README, "annotation
offsets"). Only the run's training split is used, never its held-out faces or test/.

Records in src/facepoints/weights/MODELS.json: file, sha256, architecture, the exact
training command, its wall time (sum of the epochs), the machine, validation NME, and
the licence. Run: python scripts/ship_weights.py runs/fast fast --command "facepoints train ..."
"""

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _report import machine  # noqa: E402
from facepoints.data import read_dataset  # noqa: E402
from facepoints.dataset import build_cache, cache_offsets  # noqa: E402
from facepoints.io_utils import atomic_path  # noqa: E402
from facepoints.train import mean_crop_offset, split_crops, split_indices  # noqa: E402
from facepoints.weights import PACKAGE_WEIGHTS, load_model, sha256_file  # noqa: E402

LICENCE = "Trained on 300-W (iBUG): non-commercial research use only, like the data."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--command", required=True, help="the facepoints train command that made the run")
    args = ap.parse_args()
    src = args.run / "model.pt"
    model, _ = load_model(str(src))  # refuses a broken file
    last = torch.load(args.run / "last.pt", map_location="cpu", weights_only=True)
    weights = torch.load(src, map_location="cpu", weights_only=True)
    PACKAGE_WEIGHTS.mkdir(exist_ok=True)
    dest = PACKAGE_WEIGHTS / f"{args.name}.pt"
    cfg = weights["train"]["config"]
    if cfg.get("annotation_offsets") and "annotation_offset" not in weights["train"]:  # runs before it was recorded
        samples = read_dataset(cfg["data"])
        _, points = build_cache(samples)
        train_idx, _ = split_indices(len(samples), cfg["val_fraction"], cfg["seed"])
        weights["train"]["annotation_offset"] = mean_crop_offset(points[train_idx], cache_offsets(samples)[train_idx],
                                                                 cfg["input_size"], cfg["margin"])
        print(f"recorded annotation_offset {weights['train']['annotation_offset']} (crop px) in {dest.name}")
    (x, y), _ = split_crops(cfg["data"], cfg, cfg["input_size"], cfg["margin"])
    with torch.no_grad():
        pred = torch.cat([model.decode(model(x[i : i + 256])) for i in range(0, len(x), 256)]).numpy()
    weights["train"]["output_shift"] = [round(float(v), 4) for v in (pred - y).mean((0, 1))]
    print(f"recorded output_shift {weights['train']['output_shift']} (crop px, mean error on {len(x)} training faces)")
    with atomic_path(dest) as tmp:
        torch.save(weights, tmp)
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
        "val_nme": round(weights["train"].get("val_nme", float("nan")), 5),
        "train_wall_minutes": round(sum(h["epoch_s"] for h in history) / 60, 1),
        # start of the run (config.json) to its last checkpoint: includes plots and anything else the machine ran
        "train_wall_clock_minutes": round(((args.run / "last.pt").stat().st_mtime - (args.run / "config.json").stat().st_mtime) / 60, 1),
        "train_img_per_s": round(sum(h["img_per_s"] for h in history) / len(history), 1),
        "machine": machine(),
        "date": datetime.date.today().isoformat(),
        "data": "300-W train split as in ../shared/data/300w/train (2,012 faces; 10% held out for model selection)",
        "licence": LICENCE,
    }
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    print(json.dumps(index[args.name], indent=2))
    stale = PACKAGE_WEIGHTS / f"{args.name}.int8.onnx"
    if stale.exists():  # made from the previous weights: remove it so it cannot be shipped by mistake
        stale.unlink()
        print(f"removed {stale.name}; rebuild it with: python scripts/quantize_weights.py {args.name}")


if __name__ == "__main__":
    main()
