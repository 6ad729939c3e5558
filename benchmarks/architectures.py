"""The ablations behind the default model's design, on the held-out 10% of train (never on test/).

1. Cost of candidate backbones: params, multiply-adds and ONNX Runtime latency on one thread.
2. Fit: NME of each shipped model on its own (un-augmented) training faces vs the held-out
   faces. Equal numbers mean the model underfits: it needs capacity, not regularisation.
3. int8: static post-training quantization of the default model with ONNX Runtime.
4. With --train-epochs N: short trainings of the candidates with the shipped recipe.

Run: python benchmarks/architectures.py [--train-epochs 25]   (on an idle machine)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import (
    DATA,
    EXPERIMENTS,
    fastest_ms,
    fp32_and_int8,
    held_out_weights,
    macs,
    onnx_bytes,
    onnx_nme,
    predict,
    session,
    table,
    write_section,
)
from facepoints.checkpoint import RunSplit
from facepoints.config import AugmentConfig, TrainConfig
from facepoints.export import quantize_int8
from facepoints.metrics import nme
from facepoints.models import create_model
from facepoints.train import train  # the training entry point itself (not a helper): --train-epochs trains
from facepoints.weights import ModelSpec, load_model, shipped_models

CANDIDATES = {
    "pipnet_small (previous default)": ("pipnet_small", {}),
    "A: dense /4 conv, depths (0,0,3,3)": ("pipnet_small", dict(fused=True, depths=(0, 0, 3, 3))),
    "B: A + 128-wide 8x8 stage, depths (0,0,2,4)": (
        "pipnet_small",
        dict(fused=True, widths=(16, 24, 48, 128), depths=(0, 0, 2, 4), expand=(4, 4, 3)),
    ),
    "C = pipnet_fast": ("pipnet_fast", {}),
    "C at a 160 px input (20x20 grid)": ("pipnet_fast", dict(input_size=160)),
    "D = pipnet_fast_wide: C with a 160-wide 8x8 stage": ("pipnet_fast_wide", {}),
    "xception (seed)": ("xception", {}),
}


def cost_rows() -> list:
    """Latency does not depend on the weights, so untrained networks stand in (int8 calibrated on noise)."""
    rows, timed = [], []
    with tempfile.TemporaryDirectory() as d:
        for i, (label, (arch, kw)) in enumerate(CANDIDATES.items()):
            model, size = create_model(arch, **kw).eval(), kw.get("input_size", 128)
            rows.append(
                [label, f"{sum(p.numel() for p in model.parameters()) / 1e3:.0f}K", f"{macs(model, size) / 1e6:.1f}M"]
            )
            timed.append((session(onnx_bytes(model, size)), size, 100 if arch == "xception" else 400))
            if arch != "xception":
                noise = np.random.default_rng(0).random((32, 1, size, size), np.float32)
                timed.append(
                    (
                        session(
                            str(
                                quantize_int8(
                                    model,
                                    ModelSpec(arch="candidate", input_size=size, margin=1.1),
                                    noise,
                                    Path(d) / f"q{i}.onnx",
                                )
                            )
                        ),
                        size,
                        400,
                    )
                )
    times = iter(fastest_ms(timed))
    return [
        row + [next(times), next(times) if arch != "xception" else "—"]
        for row, (arch, _) in zip(rows, CANDIDATES.values())
    ]


def fit_and_int8_rows(data: str):
    """Train vs held-out NME of each shipped model (and of the recipe run of one trained on every face);
    fp32 vs int8 of the default model's recipe on held-out faces."""
    fit, quant = [], []
    for name in shipped_models():
        weights, label = held_out_weights(name)
        for w, lab in dict.fromkeys([(name, f"`{name}`"), (weights, label)]):
            model, spec = load_model(w)
            split = RunSplit.from_config(spec.train_config, data)
            (xt, yt), (xv, yv) = split.train_crops(), split.val_crops()
            held = f"{100 * nme(predict(model, xv), yv).mean():.2f}%" if len(xv) else "— (trained on every face)"
            fit.append([lab, f"{100 * nme(predict(model, xt), yt).mean():.2f}%", held])
        if name != "fast":
            continue
        with tempfile.TemporaryDirectory() as d:
            sessions = fp32_and_int8(model, spec, xt[:200].numpy(), d)
            times = fastest_ms([(s, spec.input_size, 400) for s in sessions.values()])
            for (label, sess), ms in zip(sessions.items(), times):
                quant.append([label, f"{100 * onnx_nme(sess, xv, yv):.2f}%", ms])
    return fit, quant


def train_rows(data: str, epochs: int) -> list:
    rows = []
    for label, (arch, kw) in CANDIDATES.items():
        if arch == "xception" or "input_size" in kw:
            continue
        with tempfile.TemporaryDirectory() as d:
            cfg = TrainConfig(
                data=data,
                out=d,
                arch=arch,
                model_kwargs=kw,
                epochs=epochs,
                batch_size=64,
                lr=0.003,
                optimizer="adamw",
                weight_decay=1e-4,
                schedule="cosine",
                warmup_epochs=2,
                workers=0,
                precision="fp32",
                augment=AugmentConfig(blur=0.2, occlusion=0.2),
            )
            t = time.perf_counter()
            entry = train(cfg)
            rows.append(
                [
                    label,
                    f"{100 * entry['val_nme']:.2f}%",
                    f"{entry['img_per_s']:.0f}",
                    f"{(time.perf_counter() - t) / 60:.1f} min",
                ]
            )
    return rows


def report(costs: list, fit: list, quant: list) -> str:
    """The cost table, the fit table and the int8 table with its verdict."""
    body = [
        "## Architecture ablations (held-out 10% of train; latency on 1 thread)",
        "",
        "Candidate backbones for the default model, all with the same PIPNet-style head (16x16 grid, 3x3 neighbour "
        "offsets). "
        "Latency is the network with its decode in ONNX Runtime, batch 1, without the crop (the fastest of 3 "
        "interleaved medians); int8 as `scripts/quantize_weights.py` makes it.",
        "",
        table(["network", "params", "multiply-adds", "ORT fp32, 1 thread", "ORT int8, 1 thread"], costs),
        "",
    ]
    (_, nme32, ms32), (_, nme8, ms8) = quant
    verdict = (
        "int8 is faster at the same accuracy, so the default model ships it (`weights/fast.int8.onnx`, "
        "`scripts/quantize_weights.py`)"
        if float(ms8[:-3]) < 0.9 * float(ms32[:-3])
        else "int8 gives no real speed-up on one thread for a network this small, so the shipped ONNX stays fp32"
    )
    body += [
        "NME of the shipped models (and of the recipe run of a model trained on every face) on their own training "
        "faces (no augmentation) and on the held-out faces. "
        "Where the two are close the model underfits and more regularisation would not help; for `fast` the "
        "cheapest capacity, a wider 8x8 stage (D), did not lower the held-out NME (run `wide`, above).",
        "",
        table(["model", "train NME", "held-out NME"], fit),
        "",
        f"Post-training static int8 quantization of the default model (ONNX Runtime, 200 calibration crops; judged on "
        f"held-out faces, so with its recipe run's weights when it was trained on every face): {verdict}.",
        "",
        table(["fast model", "held-out NME", "ORT 1 thread"], quant),
        "",
    ]
    return "\n".join(body)


def train_report(epochs: int, rows: list) -> str:
    body = [
        "### Short trainings of the candidates",
        "",
        f"{epochs} epochs, the shipped recipe, cosine schedule, fp32. img/s is the "
        "training throughput with augmentation in the training process (--workers 0).",
        "",
        table(["network", "held-out NME", "img/s", "wall"], rows),
    ]
    return "\n".join(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "train"))
    ap.add_argument(
        "--train-epochs", type=int, default=0, help="also train each candidate this many epochs (~9 s/epoch each)"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    costs = cost_rows()
    fit, quant = fit_and_int8_rows(args.data)
    write_section("architectures", report(costs, fit, quant), "python benchmarks/architectures.py", path=EXPERIMENTS)
    if args.train_epochs:  # its own section: a run without trainings keeps the last one's table
        write_section(
            "architectures-train",
            train_report(args.train_epochs, train_rows(args.data, args.train_epochs)),
            f"python benchmarks/architectures.py --train-epochs {args.train_epochs}",
            path=EXPERIMENTS,
        )


if __name__ == "__main__":
    main()
