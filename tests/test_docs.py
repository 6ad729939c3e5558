"""The docs' commands run as written: every ```bash block of docs/training.md, then docs/evaluation.md, on a
fabricated miniature of the 300-W download (tests/fake_300w.py), down to a one-epoch training of `fast`'s
recipe and its evaluation.

What the test changes, and only this (docs/training.md, "What the docs test substitutes", says the same):
- SKIPPED lines: installing (`pip`; the test runs in the installed environment), downloading (`curl`; it runs
  offline, on the fabricated archives put where the download would land) and the benchmark script (it needs
  dlib and writes BENCHMARKS.md; benchmarks/ has its own checks);
- SUBSTITUTIONS in the commands: one epoch, and a batch that the few fabricated faces fill;
- a block after the ALTERNATIVE marker is another way to do the step before it: it runs in a folder of its own.
`facepoints` is this checkout's (python -m facepoints with src/ first on the path)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .fake_300w import COUNTS, as_tar_gz, dlib_300w, published_300w, published_zips

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIPPED = ("pip ", "curl ", "python benchmarks/")
SUBSTITUTIONS = {"--epochs 360": "--epochs 1", "--batch-size 64": "--batch-size 4"}
ALTERNATIVE = "<!-- docs-test: alternative -->"


def bash_blocks(path: Path) -> list[tuple[bool, list[str]]]:
    """(is an alternative, its commands) for each ```bash block; a line ending in \\ continues on the next."""
    text = path.read_text()
    blocks = []
    for m in re.finditer(r"^```bash\n(.*?)^```", text, re.M | re.S):
        alternative = text[: m.start()].rstrip().endswith(ALTERNATIVE)
        joined = m.group(1).replace("\\\n", " ")
        commands = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        blocks.append((alternative, commands))
    return blocks


def runnable(command: str) -> str | None:
    if command.startswith(SKIPPED):
        return None
    for old, new in SUBSTITUTIONS.items():
        command = command.replace(old, new)
    return command


def run_block(commands: list[str], cwd: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "FACEPOINTS_CACHE": str(cwd / ".cache"),
        "OMP_NUM_THREADS": "1",
    }
    shim = f'facepoints() {{ "{sys.executable}" -m facepoints "$@"; }}\n'
    for command in filter(None, map(runnable, commands)):
        done = subprocess.run(
            ["bash", "-c", shim + command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def download(folder: Path, tmp: Path) -> Path:
    """What step 1 of docs/training.md leaves in the working folder, fabricated."""
    folder.mkdir(parents=True, exist_ok=True)
    as_tar_gz(dlib_300w(tmp / "dlib"), folder / "ibug_300W_large_face_landmark_dataset.tar.gz")
    published_zips(published_300w(tmp / "ibug"), folder)
    return folder


def test_the_docs_blocks_are_found():
    """The test reads what the pages say: a prepare, a one-epoch-able train and evaluations, an alternative."""
    training = bash_blocks(DOCS / "training.md")
    commands = [c for _, block in training for c in block]
    assert any(c.startswith("facepoints prepare 300w") for c in commands)
    assert any(c.startswith("facepoints train") and "--epochs 360" in c for c in commands)
    assert any(c.startswith("facepoints evaluate") for c in commands)
    assert [alt for alt, _ in training].count(True) == 1
    assert any(c.startswith("facepoints evaluate") for _, b in bash_blocks(DOCS / "evaluation.md") for c in b)
    # the training command is the shipped fast's, with the data path of docs/training.md
    from facepoints.model_files import shipped_models

    recorded = shipped_models()["fast"]["command"].replace("../shared/data/300w/train", "data/300w/train")
    assert recorded.replace("--out runs/jit", "--out runs/fast") in commands


def test_training_and_evaluation_docs_run_as_written(tmp_path):
    work = download(tmp_path / "work", tmp_path / "src")
    for alternative, commands in bash_blocks(DOCS / "training.md"):
        if alternative:  # another way to do the step before it: in a copy of the download
            other = download(tmp_path / "alternative", tmp_path / "src2")
            run_block(commands, other)
            assert (other / "data" / "300w" / "manifest.csv").is_file()
            shutil.rmtree(other)
        else:
            run_block(commands, work)
    with open(work / "data" / "300w" / "manifest.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == sum(COUNTS.values())
    assert (work / "runs" / "fast" / "model.pt").is_file()
    report = json.loads((work / "runs" / "fast" / "test.json").read_text())
    assert report["n_faces"] == COUNTS["test"] and report["nme"].startswith("mean point error / inter-ocular")
    for _, commands in bash_blocks(DOCS / "evaluation.md"):
        run_block(commands, work)
    fp32 = json.loads((work / "fast_fp32.json").read_text())
    assert fp32["graph"] == "fp32 weights on PyTorch" and fp32["n_faces"] == COUNTS["test"]
    assert json.loads((work / "fast_challenging.json").read_text())["n_faces"] == COUNTS["challenging"]
