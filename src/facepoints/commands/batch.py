"""`facepoints batch`: options -> LandmarkerOptions -> batch.run.run_batch (a dataset into one Parquet file)."""

from __future__ import annotations

from .options import LANDMARKER, add_detector_options, finite_float, landmarker_options, positive_int, probability


def add(sub):
    p = sub.add_parser(
        "batch",
        help="landmark a whole dataset into one Parquet file, in this process or on a Ray cluster",
        description="SRC: a folder (recursive), a glob, a Parquet file with columns path and bytes, or an "
        "s3:// / gs:// URI of any of these. One row per image (path, n_faces, boxes, scores, points, pose, "
        "error); a bad image is a row with error set. A rerun resumes after what OUT already holds.",
    )
    p.add_argument("src", metavar="SRC", help="folder, glob, .parquet of image bytes, or s3:// / gs:// URI")
    p.add_argument("-o", "--out", required=True, help="output Parquet file (written atomically at the end)")
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: this process; ray: Ray Data actors (pip install -e '.[ray]')",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (host:port, ray://host:port or auto); default: RAY_ADDRESS, "
        "else a cluster on this machine for the run",
    )
    p.add_argument(
        "--workers", type=positive_int, default=None, help="Ray actors, one model each (default: the cluster's CPUs)"
    )
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    add_detector_options(p)
    p.add_argument("--backend", default=LANDMARKER["backend"], choices=["auto", "onnxruntime", "torch"])
    p.add_argument(
        "--min-score", type=finite_float, default=LANDMARKER["min_score"], help="drop detections scored below this"
    )
    p.add_argument(
        "--min-presence",
        type=probability,
        default=LANDMARKER["min_presence"],
        help="drop faces whose presence (the landmark model's probability that the crop holds a usable face; "
        f"models with trust heads) is below this (default {LANDMARKER['min_presence']}: keep every face; 0.98 drops "
        "false faces on face-free photos but also heavily blurred real faces)",
    )
    p.add_argument(
        "--max-faces",
        type=positive_int,
        default=LANDMARKER["max_faces"],
        help="at most this many faces per image (best first)",
    )
    p.add_argument("--no-pose", dest="pose", action="store_false", help="no head pose in the rows")
    p.add_argument("--flip-test", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..batch.run import run_batch  # the verb's own heavy imports: commands/__init__.py

    chosen = landmarker_options(args)
    fields = (
        "model",
        "detector",
        "detector_max_side",
        "detector_threshold",
        "upright",
        "backend",
        "min_score",
        "min_presence",
        "max_faces",
        "pose",
        "flip_test",
    )  # what changes a row; threads and video are the workers' own
    run_batch(args.src, args.out, args.engine, args.address, args.workers, {f: getattr(chosen, f) for f in fields})
