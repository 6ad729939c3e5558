"""docs/fast_progress.gif and docs/fast_curves.png from a training run: the seed's visual record of training.

A run's own progress.gif holds 40 full-size frames (~7 MB); this keeps 12 epochs, spaced
evenly in log(epoch) so the fast early improvement is not one frame, at 3/4 size.
Run: python scripts/make_docs_progress.py runs/jit
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from facepoints.checkpoint import load_checkpoint
from facepoints.drawing import plot_curves, save_gif

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 12


def main(run: str) -> None:
    files = sorted((Path(run) / "progress").glob("epoch_*.png"))
    if not files:
        sys.exit(f"{run}: no progress/epoch_*.png frames (not a facepoints training run?)")
    picks = np.unique(np.geomspace(1, len(files), FRAMES).round().astype(int) - 1)
    frames = []
    for i in picks:
        img = Image.open(files[i]).convert("RGB")
        frames.append(np.asarray(img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.LANCZOS)))
    frames += [frames[-1]] * 3  # hold the final epoch
    save_gif(frames, ROOT / "docs" / "fast_progress.gif", fps=2.0)
    plot_curves(load_checkpoint(Path(run) / "last.pt")["history"], ROOT / "docs" / "fast_curves.png")
    print(f"docs/fast_progress.gif: epochs {', '.join(files[i].stem.split('_')[1].lstrip('0') for i in picks)}")


if __name__ == "__main__":
    main(sys.argv[1])
