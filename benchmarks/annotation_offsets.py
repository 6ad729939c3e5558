"""Does a model reproduce the 300-W annotation convention? Judged on train/ only (its two splits), never on test/.

300-W's source annotations are 1-based, so in each crop of ../shared/data/300w the points sit
`scale` px right of and below what they mark (scale: the crop's downscale, manifest.csv). A
model trained with mirror augmentation that mirrors the points as written learns the y offset
(it never flips) but in x it learns nothing: half its samples say right, half say left. This
script regresses each face's mean signed error (in source pixels) on the manifest scale, and
measures how far a model's answer on a mirrored crop, mirrored back, sits from its direct answer
(twice the x offset it has learned to keep).
Run: python benchmarks/annotation_offsets.py --models fast [OTHER.pt ...]
"""

import argparse

import numpy as np
import torch

from common import DATA, EXPERIMENTS, held_out_weights, table, write_section
from facepoints.annotations import read_dataset
from facepoints.checkpoint import RunSplit
from facepoints.landmarks import FLIP
from facepoints.metrics import nme
from facepoints.models import predict_batches
from facepoints.weights import load_model


def model_row(name: str, samples: list, data: str) -> list:
    """One model: its offsets fitted on the manifest scale, its mirror asymmetry and its held-out x bias and NME."""
    weights, label = held_out_weights(name)
    model, spec = load_model(weights)
    model.eval()
    cfg = spec.train_config
    split = RunSplit.from_config(cfg, data)
    (xt, yt), (xv, yv) = split.train_crops(), split.val_crops()
    train_idx, val_idx = split.train_idx, split.val_idx
    cpu = torch.device("cpu")
    pt, _ = predict_batches(
        model, [(xt[i : i + 256], torch.from_numpy(yt[i : i + 256])) for i in range(0, len(xt), 256)], cpu, False
    )
    pv, _ = predict_batches(model, [(xv, torch.from_numpy(yv))], cpu, False)
    pm, _ = predict_batches(model, [(torch.flip(xv, [3]), torch.from_numpy(yv))], cpu, False)
    unmirrored = pm[:, FLIP]
    asymmetry = (pv[..., 0] - (spec.input_size - 1 - unmirrored[..., 0])).mean()

    def per_face_bias(pred, target, idx):
        crop_per_src = np.array([spec.input_size / (spec.margin * np.ptp(samples[i].points, 0).max()) for i in idx])
        return (pred - target).mean(1) / crop_per_src[:, None], np.array([samples[i].offset[0] for i in idx])

    bias, scale = per_face_bias(
        np.concatenate([pt, pv]), np.concatenate([yt, yv]), np.concatenate([train_idx, val_idx])
    )
    design = np.stack([scale, np.ones_like(scale)], 1)
    (sx, ix), (sy, iy) = (np.linalg.lstsq(design, bias[:, k], rcond=None)[0] for k in range(2))
    const = (pt - yt).mean((0, 1))  # mean crop-pixel bias on the training split, removed from held-out predictions
    return [
        label,
        cfg.get("annotation_offsets", False),
        f"{sx:+.2f} · s {ix:+.2f}",
        f"{sy:+.2f} · s {iy:+.2f}",
        f"{asymmetry:+.2f}",
        f"{(pv - yv)[..., 0].mean():+.2f}",
        f"{100 * nme(pv, yv).mean():.2f}%",
        f"{100 * nme(pv - const, yv).mean():.2f}%",
    ]


def report(rows: list) -> str:
    return "\n".join(
        [
            "## Annotation offsets (train/ only: its training split and held-out 10%)",
            "",
            "Per face, the mean signed error in source pixels of the 300-W crop, fitted as a · s + b over the crop's "
            "downscale s from manifest.csv (1-based source annotations put the points s px right of and below what "
            "they mark). s cannot be seen in a crop, so every model keeps a ≈ -1; b is the mean offset it learned. "
            "Mirror asymmetry: the direct answer minus the answer on the mirrored crop mirrored back, in x (crop px): "
            "twice "
            "the x offset the model keeps. Held-out x bias: mean signed x error on held-out faces (crop px). The last "
            "column "
            "removes the model's mean crop-pixel error on its training faces (what the predictor does with "
            "`output_shift`) from its held-out predictions.",
            "",
            table(
                [
                    "model",
                    "mirrors keep the offset",
                    "x error (source px)",
                    "y error (source px)",
                    "mirror asymmetry x",
                    "held-out x bias",
                    "held-out NME",
                    "held-out NME, mean bias removed",
                ],
                rows,
            ),
        ]
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["fast"], help="shipped names or .pt paths")
    ap.add_argument("--data", default=str(DATA / "train"))
    args = ap.parse_args()
    samples = read_dataset(args.data)
    rows = [model_row(name, samples, args.data) for name in args.models]
    write_section(
        "offsets",
        report(rows),
        "python benchmarks/annotation_offsets.py --models " + " ".join(args.models),
        args.data,
        EXPERIMENTS,
    )


if __name__ == "__main__":
    main()
