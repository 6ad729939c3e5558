"""Why `accurate` is the size it is: candidate networks by inference cost and by training throughput.

`accurate`'s two budgets pull apart: <= 8 ms per face on one thread (inference) and <= 150 min of
training on this 2-core CPU. From scratch on ~1,800 faces a model needs hundreds of epochs (`fast`'s
held-out NME still falls after epoch 300), so training throughput, not inference latency, decides how
big the model can be. For each candidate: params, multiply-adds, ONNX Runtime fp32 latency on one thread
(network + decode, no crop), and training steps per second (forward + loss + backward + AdamW,
batch 64, 2 threads, random crops; fp32 and bf16 autocast), with the epochs of 1,811 faces that
150 minutes of pure steps would buy.

Run: python benchmarks/accurate_candidates.py   (on an idle machine: every figure is a timing)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from common import (
    DATA,
    EXPERIMENTS,
    fastest_ms,
    fp32_and_int8,
    macs,
    onnx_bytes,
    onnx_nme,
    predict,
    session,
    table,
    write_section,
)
from facepoints.checkpoint import RunSplit
from facepoints.metrics import nme
from facepoints.models import create_model
from facepoints.weights import load_model, shipped_models

ACCURATE = dict(fused=True, widths=(16, 32, 64, 160), depths=(0, 1, 3, 6), expand=4, head_chs=96)
CANDIDATES = {
    "pipnet_fast (stride 8, 16x16 grid)": ("pipnet_fast", {}),
    "pipnet_fast with a stride-4 head": ("pipnet_fast", dict(stride=4)),
    "widths (16,32,64,160), depths (0,1,3,6), head 96, stride 8": ("pipnet_small", {**ACCURATE, "stride": 8}),
    "the same, stride 4 = pipnet_accurate": ("pipnet_accurate", {}),
    "widths (24,48,96,192), depths (0,2,4,6), head 96, stride 4": (
        "pipnet_small",
        dict(ACCURATE, widths=(24, 48, 96, 192), depths=(0, 2, 4, 6), stride=4),
    ),
    "widths (32,64,128,256), depths (0,2,3,4), head 128, stride 4": (
        "pipnet_small",
        dict(ACCURATE, widths=(32, 64, 128, 256), depths=(0, 2, 3, 4), head_chs=128, stride=4),
    ),
}
TRAIN_FACES = 1811  # train/ less the 10% held out
BUDGET_MIN = 150


def train_img_per_s(model: torch.nn.Module, bf16: bool, batch: int = 64, steps: int = 6) -> float:
    torch.manual_seed(0)
    model = model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x = torch.rand(batch, 1, 128, 128).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 68, 2) * 127
    for i in range(steps + 2):
        if i == 2:  # two warm-up steps (allocations, oneDNN primitive creation)
            t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x)
        loss = model.loss(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def shipped_rows(data: str) -> tuple[list, list]:
    """The shipped `accurate`: NME on its own training faces vs its held-out faces (does it still underfit?),
    and its fp32 vs int8 graph on the held-out faces with their latency (which one to ship)."""
    model, spec = load_model("accurate")
    split = RunSplit.from_config(spec.train_config, data)
    (xt, yt), (xv, yv) = split.train_crops(), split.val_crops()
    fit = [["`accurate`"] + [f"{100 * nme(predict(model, x), y).mean():.2f}%" for x, y in ((xt, yt), (xv, yv))]]
    with tempfile.TemporaryDirectory() as d:
        sessions = fp32_and_int8(model, spec, xt[:200].numpy(), d)
        times = fastest_ms([(s, spec.input_size, 200) for s in sessions.values()])
        quant = [
            [label, f"{100 * onnx_nme(sess, xv, yv):.3f}%", ms] for (label, sess), ms in zip(sessions.items(), times)
        ]
    return fit, quant


def candidate_rows() -> list[list]:
    """Each candidate's params, multiply-adds, ORT latency and training throughput (and the epochs it buys)."""
    rows, timed = [], []
    for label, (arch, kw) in CANDIDATES.items():
        model = create_model(arch, **kw).eval()
        fp32, bf16 = (max(train_img_per_s(model, b) for _ in range(2)) for b in (False, True))
        epochs = BUDGET_MIN * 60 * max(fp32, bf16) / TRAIN_FACES
        rows.append(
            [
                label,
                f"{sum(p.numel() for p in model.parameters()) / 1e3:,.0f}K",
                f"{macs(model) / 1e6:.0f}M",
                f"{fp32:.0f}",
                f"{bf16:.0f}",
                f"{epochs:.0f}",
            ]
        )
        timed.append((session(onnx_bytes(model)), 128, 200))
        print(rows[-1])
    for row, ms in zip(rows, fastest_ms(timed)):
        row.insert(3, ms)
    return rows


def report(rows: list[list], shipped: tuple[list, list] | None) -> str:
    """The cost table; then, where `accurate` ships, its fit and its fp32 and int8 graphs (`shipped_rows`)."""
    body = "\n".join(
        [
            "## Candidates for `accurate` (cost only: inference and training throughput)",
            "",
            "Random weights stand in (neither figure depends on them). ORT = ONNX Runtime fp32, one thread, "
            "network + decode without the crop (fastest of 3 interleaved medians). Training = images/s of "
            "forward + loss + backward + AdamW on batch 64, 2 threads, no augmentation or data loading (a real "
            f"run is slower); epochs = {BUDGET_MIN} min of such steps over the {TRAIN_FACES:,} training faces.",
            "",
            table(
                [
                    "network",
                    "params",
                    "multiply-adds",
                    "ORT fp32, 1 thread",
                    "train img/s fp32",
                    "train img/s bf16",
                    f"epochs in {BUDGET_MIN} min",
                ],
                rows,
            ),
        ]
    )
    if shipped is not None:
        fit, quant = shipped
        body += "\n".join(
            [
                "",
                "",
                "The shipped `accurate` on its own training faces (no augmentation) and on its held-out faces; then "
                "its fp32 and int8 graphs (as `scripts/quantize_weights.py` makes it, 200 training crops calibrate it) "
                "on the held-out faces, raw outputs, with their latency (network + decode, one thread). Rule, "
                "written before the measurement: ship int8 as the default graph only if it is at least 10% faster "
                "and costs at most 0.03 NME points.",
                "",
                table(["model", "train NME", "held-out NME"], fit),
                "",
                table(["graph", "held-out NME", "ORT, 1 thread"], quant),
            ]
        )
    return body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(DATA / "train"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = candidate_rows()
    shipped = shipped_rows(args.data) if "accurate" in shipped_models() else None
    body = report(rows, shipped)
    write_section("accurate-candidates", body, "python benchmarks/accurate_candidates.py", path=EXPERIMENTS)


if __name__ == "__main__":
    main()
