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


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their ranks."""
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    ranks = np.empty(len(x), np.float64)
    edges = np.flatnonzero(np.diff(sx)) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(x)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2
    return ranks


def auroc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of `score` for binary `label` (Mann-Whitney U; ties count half); NaN if one class."""
    label = np.asarray(label, bool).ravel()
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(score)
    return float((r[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    ra, rb = _ranks(a), _ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def expected_error(log_b, calibration: dict) -> np.ndarray:
    """Log Laplace scales (any shape) -> expected point error in crop pixels, by the calibration's monotone knots
    (linear in log b between them; beyond them the end knots' error/b ratio). Shared by
    the predictor (ONNX Runtime, no torch) and trust.py."""
    log_b = np.asarray(log_b, np.float64)
    kx, ky = np.asarray(calibration["log_b"], np.float64), np.asarray(calibration["error_px"], np.float64)
    b = np.exp(log_b)
    inside = np.interp(log_b, kx, ky)
    lo = ky[0] / np.exp(kx[0]) * b
    hi = ky[-1] / np.exp(kx[-1]) * b
    return np.where(log_b < kx[0], np.minimum(lo, ky[0]), np.where(log_b > kx[-1], np.maximum(hi, ky[-1]), inside))
