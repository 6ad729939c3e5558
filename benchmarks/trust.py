"""How far each output can be trusted: the `fast` model's trust heads (presence, visibility, expected error), in torch.

On the 300-W common test subset (test/, never trained on) and on face-free photos held out of training:
- visibility AUROC on the held-out occluder family (occluders.photo_patch: patches of held-out real photos)
  pasted on test/ faces; the training families on test/ faces for comparison;
- the NME of the visible points of occluded faces (and of the hidden ones), beside the same faces' clean NME;
- presence AUROC: test/ faces (landmark and RetinaFace boxes) against held-out negatives (random crops of the
  held-out face-free photos, RetinaFace's hits on them at 0.05, boxes that miss test/ faces);
- failure prediction: AUROC of mean uncertainty / predicted inter-ocular distance for NME > 8%, and the
  Spearman correlation of it with the NME, with landmark boxes, RetinaFace boxes, and a hard pool
  (held-out occluders and wide box jitter on test/ faces, where failures are common enough to count);
- a reliability plot: predicted against observed point error, in bins (benchmarks/results/trust_reliability.png);
- false faces per image on the held-out face-free photos, with the detector threshold alone and with a
  presence threshold, beside the recall on test/ with RetinaFace at the same settings.

Run: python benchmarks/trust.py [--trust runs/trust-fast/fast.trust.pt] [--data ../shared/data/300w/test]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from common import DATA, ROOT, table, write_section
from facepoints.annotations import read_pts_folder
from facepoints.crop import crop_face, points_box, preprocess, to_gray
from facepoints.detectors import create_detector, roll_degrees
from facepoints.evaluate import match_detection
from facepoints.images import load_image
from facepoints.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER
from facepoints.metrics import auroc, nme, spearman
from facepoints.negatives import (
    HELD_OUT_PHOTOS,
    detector_hits,
    face_free_photos,
    hit_crop,
    photo_crop,
    wrong_box,
)
from facepoints.occluders import HELD_OUT_FAMILY, TRAIN_FAMILIES, occlude
from facepoints.trust import expected_error, load_trust, run_trunk
from facepoints.weights import load_model

RESULTS = ROOT / "benchmarks" / "results"
FAIL = 0.08


class Trusted:
    """fast + its trust heads in torch on crops; answers in crop px plus each crop's px-per-crop-px scale."""

    def __init__(self, model_name: str, trust_path: str, weights: str | None = None):
        from facepoints.weights import sha256_file

        self.model_name = model_name
        self.model, self.spec = load_model(weights or model_name)
        self.weights_sha256 = sha256_file(self.spec.path)
        self.head, self.cal, _ = load_trust(trust_path)
        self.trust_sha256 = sha256_file(trust_path)
        self.shift = torch.tensor(self.spec.output_shift, dtype=torch.float32)

    def run(self, gray: np.ndarray) -> dict[str, np.ndarray]:
        outs = {"points": [], "presence": [], "visibility": [], "log_b": []}
        with torch.no_grad():
            for i in range(0, len(gray), 128):
                x = torch.from_numpy(preprocess(gray[i : i + 128]))
                points, inputs = run_trunk(self.model, x, self.head)
                p, v, lb = self.head(*inputs)
                outs["points"].append((points - self.shift).numpy())
                outs["presence"].append(torch.sigmoid(p).numpy())
                outs["visibility"].append(torch.sigmoid(v).numpy())
                outs["log_b"].append(lb.numpy())
        r = {k: np.concatenate(v) for k, v in outs.items()}
        r["uncertainty"] = expected_error(r["log_b"], self.cal)
        return r


def cost(T: Trusted, repeat: int = 400) -> dict:
    """What the heads add to `fast` in torch on one thread, batch 1: counted FLOPs (convolutions, matmuls) and
    median time of trunk + decode against trunk + decode + heads."""
    from torch.utils.flop_counter import FlopCounterMode

    from facepoints.export import PointsHead
    from facepoints.models.trust import TrustOutputs

    base, full = PointsHead(T.model).eval(), TrustOutputs(T.model, T.head).eval()
    x = torch.rand(1, 1, T.spec.input_size, T.spec.input_size)
    flops = {}
    for name, m in (("base", base), ("full", full)):
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            m(x)
        flops[name] = fc.get_total_flops()
    times = {"base": [], "full": []}
    with torch.inference_mode():
        for _ in range(20):
            base(x), full(x)
        for _ in range(repeat):  # interleaved, so both see the same machine load
            for name, m in (("base", base), ("full", full)):
                t = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t)
    ms = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    out = {
        "macs_base": flops["base"] / 2,
        "macs_heads": (flops["full"] - flops["base"]) / 2,
        "ms_base": ms["base"],
        "ms_full": ms["full"],
        "params_heads": sum(p.numel() for p in T.head.parameters()),
    }
    try:  # the shipped path runs ONNX Runtime
        out["ort"] = ort_cost(T)
    except Exception as e:  # noqa: BLE001 - the torch figures stand without it
        print(f"ONNX Runtime timing skipped: {e.__class__.__name__}: {e}")
    return out


def ort_cost(T: Trusted, rounds: int = 7, runs: int = 60) -> dict:
    """ONNX Runtime, 1 thread, batch 1 and 8: the graph without heads against the same graph with them. fp32:
    both exported here from the weights under test (export.PointsHead and export.TrustGraph, output_shift in
    both); int8: the shipped fast.int8.onnx against fast.int8.trust.onnx when the heads under test are the shipped
    ones. Interleaved (both see the same machine load); per graph the best of `rounds` medians of `runs` runs,
    and the median of all runs."""
    import tempfile

    import onnxruntime as ort

    from facepoints.export import PointsHead, TrustGraph
    from facepoints.model_files import shipped_models
    from facepoints.weights import PACKAGE_WEIGHTS

    x = torch.rand(1, 1, T.spec.input_size, T.spec.input_size)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    pairs = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, m in (
            ("base", PointsHead(T.model, T.spec.output_shift)),
            ("full", TrustGraph(T.model, T.head, T.spec.output_shift)),
        ):
            paths[name] = f"{tmp}/{name}.onnx"
            torch.onnx.export(
                m.eval(),
                (x,),
                paths[name],
                input_names=["crops"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={"crops": {0: "batch"}},
            )
        pairs["fp32"] = [
            ort.InferenceSession(paths[k], opts, providers=["CPUExecutionProvider"]) for k in ("base", "full")
        ]
    entry = shipped_models().get(T.model_name, {})
    shipped_trust = entry.get("trust", {})
    if (
        "int8_onnx" in shipped_trust
        and shipped_trust.get("sha256") == T.trust_sha256
        and entry.get("sha256") == T.weights_sha256
    ):
        pairs["int8"] = [
            ort.InferenceSession(str(PACKAGE_WEIGHTS / f), opts, providers=["CPUExecutionProvider"])
            for f in (entry["int8_onnx"]["file"], shipped_trust["int8_onnx"]["file"])
        ]
    out = {}
    for kind, (base, full) in pairs.items():
        for batch in (1, 8):
            feed = {
                "crops": np.random.default_rng(0).random(
                    (batch, 1, T.spec.input_size, T.spec.input_size), dtype=np.float32
                )
            }
            for _ in range(10):
                base.run(None, feed), full.run(None, feed)
            times: dict[str, list] = {"base": [], "full": []}
            best = {"base": np.inf, "full": np.inf}
            for _ in range(rounds):
                chunk: dict[str, list] = {"base": [], "full": []}
                for _ in range(runs // (1 if batch == 1 else 4)):
                    for name, sess in (("base", base), ("full", full)):
                        t = time.perf_counter()
                        sess.run(None, feed)
                        chunk[name].append(time.perf_counter() - t)
                for name in chunk:
                    best[name] = min(best[name], float(np.median(chunk[name])))
                    times[name] += chunk[name]
            out[f"{kind}_b{batch}"] = {
                "ms_base": 1000 * best["base"],
                "ms_full": 1000 * best["full"],
                "median_ms_base": 1000 * float(np.median(times["base"])),
                "median_ms_full": 1000 * float(np.median(times["full"])),
            }
    return out


def face_crops(images, boxes, angles, size, margin):
    crops = [crop_face(im, tuple(b), size, margin, a) for im, b, a in zip(images, boxes, angles)]
    return crops, np.stack([to_gray(c.image) for c in crops]), np.stack([c.image for c in crops])


def crop_scale(crop) -> float:
    """Image pixels per crop pixel."""
    return float(1.0 / np.sqrt(abs(np.linalg.det(crop.matrix[:, :2]))))


def face_scores(r, crops, gts):
    """Per face: NME against the ground truth, and the failure score mean uncertainty / predicted inter-ocular."""
    pts = np.stack([c.to_source(p) for c, p in zip(crops, r["points"])])
    unc = r["uncertainty"] * np.array([crop_scale(c) for c in crops])[:, None]  # image px
    iod = np.linalg.norm(pts[:, LEFT_EYE_OUTER] - pts[:, RIGHT_EYE_OUTER], axis=-1)
    return nme(pts, gts), unc.mean(1) / np.maximum(iod, 1e-6), pts, unc


def failure_row(name, nmes, score):
    fail = nmes > FAIL
    return [
        name,
        len(nmes),
        int(fail.sum()),
        f"{auroc(score, fail):.3f}" if 0 < fail.sum() < len(fail) else "n/a",
        f"{spearman(score, nmes):.3f}",
        f"{100 * nmes.mean():.2f}%",
    ]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="fast")
    ap.add_argument("--trust", default=str(ROOT / "runs" / "trust-fast" / "fast.trust.pt"))
    ap.add_argument("--weights", default=None, help="a candidate trunk (a jointly trained fast.pt)")
    ap.add_argument("--data", default=str(DATA / "test"))
    ap.add_argument("--no-write", action="store_true", help="print only (BENCHMARKS.md untouched)")
    ap.add_argument("--limit", type=int, default=None, help="first N test faces only (a smoke run; implies --no-write)")
    args = ap.parse_args()
    args.no_write = args.no_write or args.limit is not None
    return args


@dataclass
class TestFaces:
    """The annotated test faces: their RGB images, ground-truth points and landmark boxes."""

    images: list[np.ndarray]
    gts: np.ndarray
    lm_boxes: np.ndarray

    @classmethod
    def read(cls, data: str, limit: int | None) -> TestFaces:
        samples = read_pts_folder(data)[:limit]
        images = [load_image(s.image_path) for s in samples]
        gts = np.stack([s.points for s in samples])
        return cls(images, gts, np.array([points_box(p) for p in gts]))


@dataclass
class Scored:
    """One way of cropping the test faces: per face NME and failure score; per point predicted and observed
    error (crop px) for the reliability plot."""

    nmes: np.ndarray
    scores: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray


def clean_faces(T: Trusted, faces: TestFaces):
    """1. Landmark boxes, clean: the heads' outputs, the crops (RGB), the points in crop px and the scores."""
    S, M = T.spec.input_size, T.spec.margin
    crops, gray, rgb = face_crops(faces.images, faces.lm_boxes, np.zeros(len(faces.images)), S, M)
    clean = T.run(gray)
    nme_lm, score_lm, _, _ = face_scores(clean, crops, faces.gts)
    gt_crop = np.stack([c.to_crop(g) for c, g in zip(crops, faces.gts)])
    err_lm = np.linalg.norm(clean["points"] - gt_crop, axis=-1)  # crop px
    return clean, rgb, gt_crop, Scored(nme_lm, score_lm, clean["uncertainty"].ravel(), err_lm.ravel())


def occluded_faces(T: Trusted, rgb, gt_crop, err_lm, held_photos, res: dict):
    """2. Occluded test faces: the held-out family, then each training family. Visibility and NME rows, and
    the held-out family's predicted and observed point errors."""
    vis_rows, occl_rows, held_out = [], [], None
    err_lm = err_lm.reshape(gt_crop.shape[:2])
    for fam in (HELD_OUT_FAMILY, *TRAIN_FAMILIES):
        rng = np.random.default_rng(2026)
        donors = [rgb[j] for j in range(0, len(rgb), 7)]  # test faces as donors for face_patch: no training face
        occ = [
            occlude(rgb[i], gt_crop[i], rng, [fam], (1, 2), donors=donors, photos=held_photos) for i in range(len(rgb))
        ]
        hidden = np.stack([~o.visible for o in occ])
        r = T.run(np.stack([to_gray(o.image) for o in occ]))
        err = np.linalg.norm(r["points"] - gt_crop, axis=-1)
        iod = np.linalg.norm(gt_crop[:, LEFT_EYE_OUTER] - gt_crop[:, RIGHT_EYE_OUTER], axis=-1)[:, None]
        any_hidden = hidden.any(1)
        a = auroc(1 - r["visibility"][any_hidden].ravel(), hidden[any_hidden].ravel())
        name = f"`{fam}`" + (" (held out)" if fam == HELD_OUT_FAMILY else "")
        vis_rows.append(
            [
                name,
                int(any_hidden.sum()),
                f"{100 * hidden[any_hidden].mean():.1f}%",
                f"{a:.3f}",
                f"{100 * ((r['visibility'] < 0.5) == hidden)[any_hidden].mean():.1f}%",
            ]
        )
        vis_nme = (err / iod * ~hidden)[any_hidden].sum(1) / np.maximum((~hidden)[any_hidden].sum(1), 1)
        hid_nme = (err / iod * hidden)[any_hidden].sum(1) / np.maximum(hidden[any_hidden].sum(1), 1)
        clean_vis = (err_lm / iod * ~hidden)[any_hidden].sum(1) / np.maximum((~hidden)[any_hidden].sum(1), 1)
        occl_rows.append(
            [name, f"{100 * clean_vis.mean():.2f}%", f"{100 * vis_nme.mean():.2f}%", f"{100 * hid_nme.mean():.2f}%"]
        )
        res[f"visibility_auroc_{fam}"] = a
        res[f"visible_nme_{fam}"] = float(vis_nme.mean())
        if fam == HELD_OUT_FAMILY:
            res["visibility_auroc_held_out"] = a
            held_out = (r["uncertainty"].ravel(), err.ravel())
    return vis_rows, occl_rows, held_out


def hard_pool(T: Trusted, faces: TestFaces, held_photos) -> Scored:
    """3. The hard pool: held-out occluders and wide box jitter (shift 0.2/0.3, scale 0.35, roll 45)."""
    S, M = T.spec.input_size, T.spec.margin
    lm_boxes, gts = faces.lm_boxes, faces.gts
    rng = np.random.default_rng(7)
    side = np.maximum(lm_boxes[:, 2] - lm_boxes[:, 0], lm_boxes[:, 3] - lm_boxes[:, 1])
    jit = np.stack([rng.uniform(-0.3, 0.3, len(side)), rng.uniform(-0.2, 0.2, len(side))], 1) * side[:, None]
    scale = np.exp(rng.uniform(-0.35, 0.35, len(side)))
    c = (lm_boxes[:, :2] + lm_boxes[:, 2:]) / 2 + jit
    hb = np.concatenate([c - side[:, None] * scale[:, None] / 2, c + side[:, None] * scale[:, None] / 2], 1)
    ha = rng.uniform(-45, 45, len(side))
    hcrops, _, hrgb = face_crops(faces.images, hb, ha, S, M)
    hgt = np.stack([cc.to_crop(g) for cc, g in zip(hcrops, gts)])
    hocc = [
        occlude(hrgb[i], hgt[i], rng, [HELD_OUT_FAMILY], (1, 2), photos=held_photos) if rng.random() < 0.5 else None
        for i in range(len(hrgb))
    ]
    hgray = np.stack([to_gray(o.image if o is not None else hrgb[i]) for i, o in enumerate(hocc)])
    hr = T.run(hgray)
    nme_hard, score_hard, _, _ = face_scores(hr, hcrops, gts)
    return Scored(nme_hard, score_hard, hr["uncertainty"].ravel(), np.linalg.norm(hr["points"] - hgt, axis=-1).ravel())


def retinaface_faces(T: Trusted, faces: TestFaces, det, det_lo):
    """4. RetinaFace boxes (default threshold), upright crops as the Landmarker takes them. Returns the faces
    found, every test image's detections at the lowest threshold, the heads' outputs and the scores."""
    S, M = T.spec.input_size, T.spec.margin
    images, gts = faces.images, faces.gts
    found, rb, ra, all_test_dets = [], [], [], []
    for i, im in enumerate(images):
        d = det_lo.detect(im)
        all_test_dets.append(d)
        keep = d.scores >= 0.5
        j = match_detection(d.boxes[keep], gts[i])
        if j is None:
            continue
        k = np.flatnonzero(keep)[j]
        a = float(roll_degrees(d.keypoints[k : k + 1])[0])
        found.append(i), rb.append(det.landmark_boxes(d.boxes[k : k + 1], np.array([a]))[0]), ra.append(a)
    found = np.array(found)
    rcrops, rgray, _ = face_crops([images[i] for i in found], np.array(rb), np.array(ra), S, M)
    rr = T.run(rgray)
    nme_rf, score_rf, _, _ = face_scores(rr, rcrops, gts[found])
    rgt = np.stack([cc.to_crop(g) for cc, g in zip(rcrops, gts[found])])
    scored = Scored(nme_rf, score_rf, rr["uncertainty"].ravel(), np.linalg.norm(rr["points"] - rgt, axis=-1).ravel())
    return found, all_test_dets, rr, scored


def failure_table(lm: Scored, rf: Scored, hard: Scored, n_found: int, n_faces: int, res: dict) -> list:
    """Failure AUROC and Spearman of the failure score, per way of cropping and pooled."""
    (nme_lm, score_lm), (nme_rf, score_rf), (nme_hard, score_hard) = ((s.nmes, s.scores) for s in (lm, rf, hard))
    fail_rows = [
        failure_row("landmark boxes", nme_lm, score_lm),
        failure_row(f"RetinaFace boxes ({n_found} of {n_faces} found at 0.5)", nme_rf, score_rf),
        failure_row(
            "hard pool (held-out occluders on half, box shift 0.3/0.2, scale ±0.35, roll ±45°)", nme_hard, score_hard
        ),
        failure_row("all three pooled", np.r_[nme_lm, nme_rf, nme_hard], np.r_[score_lm, score_rf, score_hard]),
    ]
    sets = (("landmarks", nme_lm, score_lm), ("retinaface", nme_rf, score_rf), ("hard", nme_hard, score_hard))
    for key, n_, s_ in sets:
        res[f"failure_auroc_{key}"] = auroc(s_, n_ > FAIL) if 0 < (n_ > FAIL).sum() < len(n_) else None
        res[f"spearman_{key}"] = spearman(s_, n_)
        res[f"failures_{key}"] = int((n_ > FAIL).sum())
    allp, alln = np.r_[nme_lm, nme_rf, nme_hard], np.r_[score_lm, score_rf, score_hard]
    res["failure_auroc_pooled"], res["spearman_pooled"] = auroc(alln, allp > FAIL), spearman(alln, allp)
    return fail_rows


def presence_table(T: Trusted, faces: TestFaces, held_photos, det_lo, p_pos_lm, p_pos_rf, res: dict) -> list:
    """5. Presence: AUROC of test/ faces against each kind of negative, and against all of them."""
    S, M = T.spec.input_size, T.spec.margin
    images, gts = faces.images, faces.gts
    rng = np.random.default_rng(11)
    neg_photo = np.stack(
        [to_gray(photo_crop(held_photos[int(rng.integers(len(held_photos)))], S, rng)) for _ in range(600)]
    )
    hits = detector_hits(held_photos, detector=det_lo)
    neg_hits = np.stack([to_gray(hit_crop(held_photos[k], b, a, S, M)) for k, b, a in hits])
    neg_wrong = np.stack([to_gray(wrong_box(images[i], gts[i], S, M, rng)) for i in range(len(images))])
    p_neg = {
        "random crops of held-out photos": T.run(neg_photo)["presence"],
        "RetinaFace hits (≥0.05) on held-out photos": T.run(neg_hits)["presence"],
        "boxes that miss test/ faces": T.run(neg_wrong)["presence"],
    }
    pos = np.r_[p_pos_lm, p_pos_rf]
    pres_rows = []
    for name, pn in p_neg.items():
        pres_rows.append(
            [
                name,
                len(pn),
                f"{auroc(np.r_[pos, pn], np.r_[np.ones(len(pos)), np.zeros(len(pn))]):.4f}",
                f"{np.median(pn):.3f}",
            ]
        )
    alln_ = np.concatenate(list(p_neg.values()))
    res["presence_auroc"] = auroc(np.r_[pos, alln_], np.r_[np.ones(len(pos)), np.zeros(len(alln_))])
    pres_rows.append(["all negatives", len(alln_), f"{res['presence_auroc']:.4f}", f"{np.median(alln_):.3f}"])
    return pres_rows


def false_faces_table(T: Trusted, faces: TestFaces, held_photos, det, det_lo, all_test_dets, res: dict) -> list:
    """6. False faces per image on held-out photos vs recall on test/, by detector and presence threshold."""
    S, M = T.spec.input_size, T.spec.margin
    images, gts = faces.images, faces.gts
    photo_dets = [det_lo.detect(p) for p in held_photos]
    photo_pres = []
    for p, d in zip(held_photos, photo_dets):
        if not len(d):
            photo_pres.append(np.zeros(0))
            continue
        a = roll_degrees(d.keypoints)
        b = det.landmark_boxes(d.boxes, a)
        g = np.stack([to_gray(crop_face(p, tuple(bb), S, M, aa).image) for bb, aa in zip(b, a)])
        photo_pres.append(T.run(g)["presence"])
    test_pres = {}  # presence of the matched detection per test face, at the lowest threshold
    for i, d in enumerate(all_test_dets):
        j = match_detection(d.boxes, gts[i])
        if j is None:
            continue
        a = float(roll_degrees(d.keypoints[j : j + 1])[0])
        b = det.landmark_boxes(d.boxes[j : j + 1], np.array([a]))[0]
        test_pres[i] = (
            float(d.scores[j]),
            float(T.run(to_gray(crop_face(images[i], tuple(b), S, M, a).image)[None])["presence"][0]),
        )
    ff_rows = []
    for thr in (0.5, 0.3, 0.2):
        for pmin in (None, 0.5, 0.8, 0.9, 0.95, 0.98):
            false = sum(int(((d.scores >= thr) & (pp >= (pmin or 0))).sum()) for d, pp in zip(photo_dets, photo_pres))
            rec = sum(1 for s_, p_ in test_pres.values() if s_ >= thr and p_ >= (pmin or 0)) / len(images)
            ff_rows.append(
                [thr, "—" if pmin is None else pmin, f"{false / len(held_photos):.3f} ({false})", f"{100 * rec:.2f}%"]
            )
            res[f"false_per_image_{thr}_{pmin}"] = false / len(held_photos)
            res[f"recall_{thr}_{pmin}"] = rec
    return ff_rows


def reliability_table(rel_pred: list, rel_err: list, res: dict) -> list:
    """7. Reliability: predicted against observed point error in 12 quantile bins (and the plot)."""
    pred_all, err_all = np.concatenate(rel_pred), np.concatenate(rel_err)
    q = np.quantile(pred_all, np.linspace(0, 1, 13))
    rel_rows, bx, by = [], [], []
    for lo, hi in zip(q[:-1], q[1:]):
        m = (pred_all >= lo) & (pred_all <= hi)
        bx.append(pred_all[m].mean()), by.append(err_all[m].mean())
        rel_rows.append([f"{lo:.2f}–{hi:.2f}", int(m.sum()), f"{pred_all[m].mean():.2f}", f"{err_all[m].mean():.2f}"])
    res["reliability"] = {"predicted": bx, "observed": by}
    res["point_spearman"] = spearman(pred_all, err_all)
    _plot(bx, by, pred_all, err_all)
    return rel_rows


def main():
    args = parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    T = Trusted(args.model, args.trust, args.weights)
    faces = TestFaces.read(args.data, args.limit)
    res: dict = {}
    clean, rgb, gt_crop, lm = clean_faces(T, faces)
    held_photos = face_free_photos(HELD_OUT_PHOTOS)
    vis_rows, occl_rows, held_out = occluded_faces(T, rgb, gt_crop, lm.observed, held_photos, res)
    hard = hard_pool(T, faces, held_photos)
    det = create_detector("retinaface")
    det_lo = create_detector("retinaface", threshold=0.05)
    found, all_test_dets, rr, rf = retinaface_faces(T, faces, det, det_lo)
    fail_rows = failure_table(lm, rf, hard, len(found), len(faces.images), res)
    pres_rows = presence_table(T, faces, held_photos, det_lo, clean["presence"], rr["presence"], res)
    ff_rows = false_faces_table(T, faces, held_photos, det, det_lo, all_test_dets, res)
    rel_pred = [lm.predicted, held_out[0], hard.predicted, rf.predicted]
    rel_err = [lm.observed, held_out[1], hard.observed, rf.observed]
    rel_rows = reliability_table(rel_pred, rel_err, res)
    res["head_class"] = type(T.head).__name__
    res["cost"] = cost(T)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps({k: v for k, v in res.items() if k != "reliability"}, indent=1))
    body = _body(vis_rows, occl_rows, fail_rows, pres_rows, ff_rows, rel_rows, res)
    print(body)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "trust.json").write_text(json.dumps(res, indent=1, default=float))
    if not args.no_write:
        write_section("trust", body, "python benchmarks/trust.py " + " ".join(sys.argv[1:]))


def _plot(bx, by, pred, err):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.2), dpi=110)
    top = max(max(bx), max(by)) * 1.1
    ax.plot([0, top], [0, top], color="0.6", lw=1, ls="--", label="perfect calibration")
    ax.plot(bx, by, "o-", color="C0", label="fast + trust heads")
    ax.set_xlabel("predicted point error (uncertainty), crop px")
    ax.set_ylabel("observed mean point error, crop px")
    ax.set_title("Reliability on 300-W test/ (12 quantile bins)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "trust_reliability.png")
    plt.close(fig)


def _body(vis_rows, occl_rows, fail_rows, pres_rows, ff_rows, rel_rows, res) -> str:
    return f"""## How far to trust each output: `fast`'s trust heads

Heads trained jointly with `fast`'s trunk (`scripts/train_trust_heads.py --trunk-lr`: the trunk learns what the heads
need, with a half batch of its own training recipe and its landmark loss beside each batch of theirs, starting from
the heads trained on the frozen trunk), on the run's training faces only (blurred positives and negatives alike, so a
soft face still reads as a face); uncertainty calibrated on its held-out 10%. The head is `{res["head_class"]}`
(models/trust.py), built for ONNX Runtime's cost per node: it reads the trunk's features at each point's argmax
cell and the peak's log probability (the heads compared, with their cost, are in
[docs/experiments.md](docs/experiments.md#trust-heads)). The figures are from torch; the shipped graphs
(`fast.trust.onnx`, `fast.int8.trust.onnx`) give the same outputs (tests/test_trust_outputs.py).
Everything below is on 300-W common test/ faces and on face-free photos held out of training
(skimage: {", ".join(HELD_OUT_PHOTOS)}). Targets: visibility AUROC ≥ 0.90 on the held-out
family, failure AUROC ≥ 0.85, Spearman ≥ 0.5.

**Visibility**: AUROC of 1 − visibility for "hidden" over the points of faces with at least one hidden point.
`{HELD_OUT_FAMILY}` is the held-out family: patches of real photos never seen in training.

{
        table(
            [
                "occluder family on test/",
                "faces with hidden points",
                "points hidden",
                "visibility AUROC",
                "accuracy at 0.5",
            ],
            vis_rows,
        )
    }

**Occluded faces' NME** (inter-ocular, landmark boxes), on the faces with hidden points:

{
        table(
            ["family", "visible points, face not occluded", "visible points, occluded", "hidden points, occluded"],
            occl_rows,
        )
    }

**Failure prediction**: score = mean uncertainty (image px) / predicted inter-ocular distance; failure = NME > 8%.

{table(["boxes", "faces", "failures", "failure AUROC", "Spearman (score vs NME)", "mean NME"], fail_rows)}

Per point, Spearman of predicted against observed error over all crops of the reliability plot:
{res["point_spearman"]:.3f}.

**Reliability** (landmark boxes, RetinaFace boxes, held-out occluders, hard pool; per point, crop px =
1/{128} of the crop side): ![reliability](benchmarks/results/trust_reliability.png)

{table(["predicted bin", "points", "mean predicted", "mean observed"], rel_rows)}

**Presence**: AUROC of test/ faces (landmark boxes and RetinaFace boxes) against negatives never trained on.

{table(["negatives", "crops", "presence AUROC", "median presence"], pres_rows)}

**False faces per image** on the {len(HELD_OUT_PHOTOS)} held-out face-free photos, and RetinaFace recall
on test/ (matched detection kept), by detector threshold and presence threshold:

{table(["detector threshold", "min presence", "false faces / image (total)", "test/ recall"], ff_rows)}

**Cost** (torch, 1 thread, batch 1): the heads have {res["cost"]["params_heads"]:,} parameters and add
{res["cost"]["macs_heads"] / 1e6:.2f}M multiply-adds to the trunk's {res["cost"]["macs_base"] / 1e6:.1f}M
({100 * res["cost"]["macs_heads"] / res["cost"]["macs_base"]:.1f}%; counted convolutions and matmuls, not the
gathers, softmaxes and grid samples); time {res["cost"]["ms_base"]:.3f} ms → {res["cost"]["ms_full"]:.3f} ms a
crop (+{100 * (res["cost"]["ms_full"] / res["cost"]["ms_base"] - 1):.1f}%), eager torch, where each small op costs
its dispatch.{_ort_line(res["cost"])}

Measured in {res["seconds"]:.0f} s."""


def _ort_line(c: dict) -> str:
    if "ort" not in c:
        return ""
    rows = []
    for key, r in c["ort"].items():
        kind, batch = key.split("_b")
        rows.append(
            [
                kind,
                batch,
                f"{r['ms_base']:.3f}",
                f"{r['ms_full']:.3f}",
                f"+{100 * (r['ms_full'] / r['ms_base'] - 1):.1f}%",
                f"+{100 * (r['median_ms_full'] / r['median_ms_base'] - 1):.1f}%",
            ]
        )
    return (
        "\n\nIn ONNX Runtime, what the package runs (1 thread; best of 7 medians of interleaved runs, and the "
        "overall median; fp32: both graphs exported from the weights under test; int8: the shipped "
        "fast.int8.onnx against fast.int8.trust.onnx). Target: the heads cost ≤ 5%.\n\n"
        + table(["graph", "batch", "ms without heads", "ms with heads", "cost (best)", "cost (median)"], rows)
    )


if __name__ == "__main__":
    main()
