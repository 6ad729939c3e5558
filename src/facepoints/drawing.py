"""Drawing landmarks, grids and training plots."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .io_utils import atomic_path
from .landmarks import connections

POINT_COLOR = (0, 255, 0)
LINE_COLOR = (255, 200, 0)
BOX_COLOR = (255, 64, 64)
HIDDEN_BELOW = 0.5  # a point whose visibility is below this is drawn as hidden (hollow, or not at all)


def draw_face(
    image: np.ndarray,
    points: np.ndarray,
    box=None,
    lines: bool = True,
    numbers: bool = False,
    color=POINT_COLOR,
    radius: int | None = None,
    visibility: np.ndarray | None = None,
    hidden: str = "hollow",
) -> np.ndarray:
    """Draw one face on an RGB image in place and return it.

    `visibility` (68,) in [0, 1]: points below HIDDEN_BELOW (probably covered) are drawn as `hidden` says:
    "hollow" (a ring, the default), or "hide" (not drawn, nor their lines)."""
    if hidden not in ("hollow", "hide"):
        raise ValueError(f"hidden: {hidden!r} is not 'hollow' or 'hide'")
    scale = max(1.0, float(np.ptp(points[:, 0])) / 150.0) if len(points) else 1.0
    r = radius or max(1, int(round(1.5 * scale)))
    thick = max(1, int(round(scale)))
    pts = np.round(points).astype(np.int32)
    covered = np.zeros(len(pts), bool) if visibility is None else np.asarray(visibility) < HIDDEN_BELOW
    shown = ~covered if hidden == "hide" else np.ones(len(pts), bool)
    if lines:
        for a, b in connections():
            if shown[a] and shown[b]:
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), LINE_COLOR, thick, cv2.LINE_AA)
    for i, (x, y) in enumerate(pts):
        if shown[i]:  # a covered point: a ring of the point's colour, so the guess stays visible but reads as one
            cv2.circle(
                image, (int(x), int(y)), r + 1 if covered[i] else r, color, thick if covered[i] else -1, cv2.LINE_AA
            )
    if numbers:
        for i, (x, y) in enumerate(pts):
            if not shown[i]:
                continue
            cv2.putText(
                image,
                str(i),
                (int(x) + 2, int(y) - 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.3 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), BOX_COLOR, thick, cv2.LINE_AA)
    return image


def grid(tiles: list[np.ndarray], cols: int = 4, tile: int = 160) -> np.ndarray:
    """Tile RGB images (resized to tile x tile) into one picture."""
    rows = max(1, (len(tiles) + cols - 1) // cols)
    out = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for i, t in enumerate(tiles):
        t = cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, cols)
        out[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = t
    return out


def save_gif(frames: list[np.ndarray], path: str | Path, fps: float = 2.0) -> None:
    from PIL import Image  # PIL's GIF writer; imported where used, as matplotlib is below

    pil = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        pil[0].save(tmp, format="GIF", save_all=True, append_images=pil[1:], duration=int(1000 / fps), loop=0)


def can_plot() -> bool:
    """Whether matplotlib is installed (the [train] extra): the core install landmarks without it."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Training loss and validation NME per epoch (NME on un-augmented training faces when nothing was held out)."""
    # matplotlib is slow to import and only the training and benchmark plots need it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the file-only backend

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history])
    a.set(xlabel="epoch", ylabel="train loss", yscale="log", title="training loss")
    key = "val_nme" if "val_nme" in history[0] else "fit_nme"
    b.plot(epochs, [100 * h[key] for h in history])
    title = "validation NME (inter-ocular)" if key == "val_nme" else "NME on un-augmented training faces"
    b.set(xlabel="epoch", ylabel="NME (%)", yscale="log", title=title)  # log: the last tenths of a point stay visible
    if "val_nme_raw" in history[0] or "fit_nme_raw" in history[0]:
        b.plot(epochs, [100 * h[f"{key}_raw"] for h in history], alpha=0.5, label="raw weights")
        b.legend(["moving average", "raw weights"])
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def progress_frame(
    crops: np.ndarray, preds: np.ndarray, targets: np.ndarray, epoch: int, nme: float, faces: str = "val"
) -> np.ndarray:
    """One picture of an epoch: model points (green) and targets (red) on a few fixed crops, (N, 1, S, S) in [0, 1]."""
    tiles = []
    for img, p, t in zip(crops, preds, targets):
        rgb = cv2.cvtColor((img[0] * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        rgb = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        draw_face(rgb, (t + 0.5) * 2 - 0.5, lines=False, color=(255, 0, 0), radius=2)
        draw_face(rgb, (p + 0.5) * 2 - 0.5, lines=True, radius=2)
        tiles.append(rgb)
    frame = grid(tiles, cols=4, tile=160)
    cv2.putText(
        frame,
        f"epoch {epoch}  {faces} NME {100 * nme:.2f}%",
        (8, 20),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        2,
    )
    return frame


class ProgressFrames:
    """Training's epoch callback: `progress/epoch_NNN.png` every epoch; `progress.gif` (at most `max_gif_frames`
    epochs, evenly spaced) and `curves.png` every `every` epochs and at the last, as rebuilding them costs ~1 s."""

    def __init__(
        self,
        out: str | Path,
        crops: np.ndarray,
        targets: np.ndarray,
        faces: str,
        last_epoch: int,
        every: int = 10,
        max_gif_frames: int = 40,
    ):
        self.out, self.crops, self.targets, self.faces = Path(out), np.asarray(crops), np.asarray(targets), faces
        self.last_epoch, self.every, self.max_gif_frames = last_epoch, every, max_gif_frames
        (self.out / "progress").mkdir(parents=True, exist_ok=True)

    def __call__(self, epoch: int, history: list[dict], nme: float, predict) -> None:
        """`predict`: (N, 1, S, S) crops -> (N, 68, 2) points of the epoch's selected weights."""
        from PIL import Image  # PNG writer; see save_gif

        frame = progress_frame(self.crops, predict(self.crops), self.targets, epoch, nme, self.faces)
        with atomic_path(self.out / "progress" / f"epoch_{epoch:03d}.png") as tmp:
            Image.fromarray(frame).save(tmp, format="PNG")
        if epoch % self.every == 0 or epoch == self.last_epoch:
            files = sorted((self.out / "progress").glob("epoch_*.png"))
            keep = np.unique(np.linspace(0, len(files) - 1, min(len(files), self.max_gif_frames)).round().astype(int))
            save_gif([np.asarray(Image.open(files[i]).convert("RGB")) for i in keep], self.out / "progress.gif")
            plot_curves(history, self.out / "curves.png")


CED_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".pdf")


def ced_label(name: str, nmes: np.ndarray) -> str:
    """The legend entry: the mean NME over the faces found (the evaluation table's "NME mean"), and how many."""
    nmes = np.asarray(nmes, np.float64)
    found = nmes[np.isfinite(nmes)]
    mean = f"mean NME {100 * found.mean():.2f}%" if len(found) else "no face found"
    return f"{name} ({mean}{f', {len(found)}/{len(nmes)} faces found' if len(found) < len(nmes) else ''})"


def plot_ced(curves: dict[str, np.ndarray], path: str | Path, threshold: float = 0.08) -> None:
    """Cumulative error distribution of per-face NMEs, one line per method; inf marks a face the detector missed.

    The curve is over all faces (a missed face never reaches it); the legend gives the mean NME over
    the faces found, the "NME mean" of the evaluation table, and how many were found."""
    # matplotlib is slow to import and only the training and benchmark plots need it
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the file-only backend

    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = np.linspace(0, threshold, 200)
    for name, nmes in curves.items():
        nmes = np.asarray(nmes, np.float64)
        ax.plot(100 * xs, [(nmes <= x).mean() for x in xs], label=ced_label(name, nmes))
    ax.set(xlabel="NME (%)", ylabel="fraction of faces", title="Cumulative error distribution", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".").lower() or "png")
    plt.close(fig)
