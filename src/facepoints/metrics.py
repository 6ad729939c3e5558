"""300-W metrics, pure numpy: inter-ocular NME, failure rate and area under the CED curve."""

import numpy as np

from .landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER


def nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-face mean point error over the outer-eye-corner distance; (N, 68, 2) -> (N,)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    norm = np.linalg.norm(gt[:, RIGHT_EYE_OUTER] - gt[:, LEFT_EYE_OUTER], axis=-1)
    return np.linalg.norm(pred - gt, axis=-1).mean(-1) / np.maximum(norm, 1e-6)


def fr_and_auc(nmes: np.ndarray, threshold: float = 0.08, step: float = 0.0001) -> tuple[float, float]:
    """Share of faces with NME above threshold, and normalised area under the CED curve up to it."""
    nmes = np.asarray(nmes, np.float64)
    if nmes.size == 0:
        return float("nan"), float("nan")
    fr = float((nmes > threshold).mean())
    xs = np.arange(0, threshold + step / 2, step)
    ced = np.array([(nmes <= x).mean() for x in xs])
    return fr, float(np.trapezoid(ced, xs) / threshold)


def summary(nmes: np.ndarray, threshold: float = 0.08) -> dict:
    nmes = np.asarray(nmes, np.float64)
    fr, auc = fr_and_auc(nmes, threshold)
    t = f"{threshold:g}"
    return {
        "nme_mean": float(nmes.mean()) if nmes.size else float("nan"),
        "nme_median": float(np.median(nmes)) if nmes.size else float("nan"),
        f"fr_{t}": fr,
        f"auc_{t}": auc,
        "n_faces": int(nmes.size),
    }
