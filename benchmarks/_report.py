"""Shared by the benchmark scripts: machine description and writing one section of BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from facepoints.provenance import data_hash, git_commit, machine

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
DATA = ROOT.parent / "shared" / "data" / "300w"


def weights_line() -> str:
    from facepoints.weights import shipped_models

    models = shipped_models()
    return (
        "; ".join(f"`{n}` = {m['file']} sha256 {m['sha256'][:16]}…" for n, m in models.items()) or "no shipped weights"
    )


def write_section(name: str, body: str, command: str, data: str | Path = DATA) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md; the stamp names the code (git commit) and the
    data (a hash of the folder the figures were computed on), so a figure can be traced to what made it."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"<!-- {name}:start -->\n{body.rstrip()}\n\n"
        f"_Written by `{command}` on {stamp} at commit {git_commit(ROOT)}, data {Path(data).name}/ sha256 "
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
