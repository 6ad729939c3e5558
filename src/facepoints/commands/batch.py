"""`facepoints batch`: options -> LandmarkerOptions -> batch.run.run_batch (a dataset into one Parquet file)."""

from __future__ import annotations

from .options import add_face_options, landmarker_options, positive_int


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
        help="local: this process; ray: Ray actors, one model each (pip install -e '.[ray]')",
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
    add_face_options(p, "image")
    p.add_argument("--flip-test", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..batch.run import run_batch  # the verb's own heavy imports: commands/__init__.py

    chosen = landmarker_options(args)
    fields = (
        "model",
        "detector",
        "detector_max_side",
        "detector_coarse_side",
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
