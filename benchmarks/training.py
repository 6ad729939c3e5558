"""Training throughput of the seed Xception on this CPU (fp32 vs bf16 autocast, channels_last, batch 32),
and the wall time of the shipped models' training runs (from the package's MODELS.json).

Run: python benchmarks/training.py [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import torch

from common import table, write_section
from facepoints.models import create_model
from facepoints.weights import shipped_models


def throughput(arch: str, bf16: bool, steps: int, batch: int = 32) -> float:
    torch.manual_seed(0)
    model = create_model(arch).train().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=8e-4)
    x = torch.rand(batch, 1, 128, 128).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 68, 2) * 127
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return batch / (sum(times) / len(times))


def wrapped(command: str, width: int = 110) -> str:
    """A shell command broken over lines with `\\` continuations, so that no line of the report is long."""
    lines, current = [], ""
    for word in command.split():
        if current and len(current) + 1 + len(word) > width:
            lines.append(current + " \\")
            current = "    " + word
        else:
            current = f"{current} {word}" if current else word
    return "\n".join([*lines, current])


def shipped_runs() -> dict[str, list[list]]:
    """The shipped models' training runs as MODELS.json records them, by the machine they ran on."""
    runs: dict[str, list[list]] = {}
    for name, m in shipped_models().items():
        if m.get("val_nme") is not None:
            val = f"{100 * m['val_nme']:.2f}%"
        else:  # trained on every face: the held-out figure is that of the run that chose the recipe
            val = f"— (all faces trained; same recipe holding out 10%: {100 * m['recipe_val_nme']:.2f}%)"
        clock = f"{m['train_wall_clock_minutes']} min" if "train_wall_clock_minutes" in m else "—"
        cpu = ",".join(m["machine"].split(",")[:2]).replace("(R)", "").replace(" Processor", "")
        row = [name, m["arch"], m["epochs_trained"], f"{m['train_wall_minutes']} min", clock, m["train_img_per_s"], val]
        runs.setdefault(cpu, []).append(row + [m["command"]])
    return runs


def report(rows: list, runs: dict[str, list[list]]) -> str:
    body = [
        "## Training cost",
        "",
        "Training step throughput (images/s; forward + backward + Adam, batch 32, channels_last, "
        f"{torch.get_num_threads()} threads):",
        "",
        table(["model", "precision", "img/s"], rows),
        "",
        "The shipped models' training runs, as their weights record them (MODELS.json), one table per machine they "
        "ran on: epoch time = sum of epochs incl. validation; wall clock = start of the run to its last "
        "checkpoint, plots included; img/s = mean over epochs, with augmentation in the loop.",
    ]
    for cpu, machine_runs in runs.items():
        body += [
            "",
            f"### Shipped runs on {cpu}",
            "",
            table(
                ["model", "arch", "epochs", "epoch time", "wall clock", "img/s", "val NME (held-out 10% of train)"],
                [r[:-1] for r in machine_runs],
            ),
            "",
            "```bash",
            *[wrapped(r[-1]) for r in machine_runs],
            "```",
        ]
    return "\n".join(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    rows = []
    for arch in ("xception", "pipnet_fast", "pipnet_accurate"):
        for bf16 in (False, True):
            rows.append([arch, "bf16 autocast" if bf16 else "fp32", f"{throughput(arch, bf16, args.steps):.1f}"])
    write_section("training", report(rows, shipped_runs()), "python benchmarks/training.py")


if __name__ == "__main__":
    main()
