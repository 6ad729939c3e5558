"""`facepoints detect`: options -> LandmarkerOptions -> detect.run_detect (images, folders, videos, camera)."""

from __future__ import annotations

from .options import (
    LANDMARKER,
    VIDEO,
    add_face_options,
    landmarker_options,
    non_negative_int,
    positive_int,
)


def add(sub):
    p = sub.add_parser("detect", help="find faces and their 68 landmarks in images, folders, videos or a webcam")
    p.add_argument("inputs", nargs="*", help="image files, folders (recursive) or video files")
    p.add_argument("-o", "--out", default="runs/detect", help="folder for annotated images/videos and JSON")
    p.add_argument("--json", dest="json_out", default=None, help="one JSONL (or .csv) file for all inputs")
    add_face_options(p, "image or frame")
    p.add_argument(
        "--threads", type=positive_int, default=LANDMARKER["threads"], help="CPU threads of the landmark model"
    )
    p.add_argument("--camera", type=non_negative_int, default=None, help="webcam index, e.g. 0")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop a video or camera after N frames")
    p.add_argument("--gif", action="store_true", help="also write an animated GIF for videos")
    p.add_argument("--no-smooth", action="store_true", help="video: no temporal smoothing")
    p.add_argument(
        "--redetect-every",
        type=positive_int,
        default=VIDEO["redetect_every"],
        help="video: run the detector every N frames",
    )
    p.add_argument("--no-lines", action="store_true", help="draw points only")
    p.add_argument("--no-boxes", action="store_true")
    p.add_argument("--numbers", action="store_true", help="draw point indices")
    p.add_argument(
        "--hide-hidden",
        action="store_true",
        help="leave out points the model thinks covered (visibility < 0.5; drawn hollow by default)",
    )
    p.add_argument("--grid", default=None, help="also write one picture tiling every annotated face")
    p.add_argument("--no-images", action="store_true", help="write JSON only")
    p.add_argument("--flip-test", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from ..detect import run_detect  # the verb's own heavy imports: commands/__init__.py

    return run_detect(args, landmarker_options(args))
