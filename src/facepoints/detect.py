"""`facepoints detect`: inputs (images, folders, videos, camera) -> annotated outputs + JSON/JSONL/CSV."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import IMAGE_SUFFIXES
from .errors import FacepointsError
from .io_utils import atomic_path, atomic_write_text

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def expand_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(file, name relative to its folder) for each input; folders are walked recursively for images and videos."""
    items = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                raise FacepointsError(f"{p}: no images or videos in this folder")
            items += [(f, f.relative_to(p)) for f in found]
        elif p.exists():
            items.append((p, Path(p.name)))
        else:
            raise FacepointsError(f"{p}: no such file or folder")
    return items


def _csv_rows(result) -> list[list]:
    rows = []
    for i, f in enumerate(result.faces):
        pose = f.pose or {}
        rows.append([result.source, i, round(f.score, 4), *[round(float(v), 2) for v in f.box],
                     *[pose.get(k) for k in ("yaw", "pitch", "roll")], *np.round(f.points.reshape(-1), 2).tolist()])
    return rows


CSV_HEADER = ["image", "face", "score", "x1", "y1", "x2", "y2", "yaw", "pitch", "roll"] + [
    f"{a}{i}" for i in range(68) for a in ("x", "y")
]


def _face_tiles(result, draw_kwargs) -> list[np.ndarray]:
    from .crop import crop_face, points_box

    canvas = result.plot(**draw_kwargs)
    return [crop_face(canvas, points_box(f.points), 192, 1.4).image for f in result.faces]


def _output_path(out_dir: Path, rel: Path, suffix: str, inputs: set[Path]) -> Path:
    path = out_dir / rel.with_suffix(suffix)
    if path.resolve() in inputs:
        raise FacepointsError(f"{path}: output would overwrite an input; choose another -o")
    return path


def run_detect(args) -> int:
    from .cli import detector_options
    from .landmarker import Landmarker, LandmarkerOptions
    from .video import VideoOptions, process_video

    if not args.inputs and args.camera is None:
        raise FacepointsError("give image/video files or folders, or --camera N")
    items = expand_inputs(args.inputs)
    det = detector_options(args)
    landmarker = Landmarker(LandmarkerOptions(model=args.model, detector=args.detector, backend=args.backend,
                                              flip_test=args.flip_test, upright=args.upright, detector_max_side=det["max_side"],
                                              detector_threshold=det.get("threshold")))
    landmarker.detector  # fail early on bad detector options
    out_dir = Path(args.out)
    input_set = {f.resolve() for f, _ in items}
    draw = {"lines": not args.no_lines, "boxes": not args.no_boxes, "numbers": args.numbers}
    video_opts = VideoOptions(redetect_every=args.redetect_every, smooth=not args.no_smooth)
    problems, records, tiles, n_faces = [], [], [], 0

    def run_video(source, rel: Path):
        stem = out_dir / rel.with_suffix("")
        res = process_video(landmarker, source, None if args.no_images else Path(f"{stem}.landmarks.mp4"),
                            Path(f"{stem}.landmarks.gif") if args.gif else None, Path(f"{stem}.landmarks.jsonl"),
                            video_opts, args.max_frames, draw)
        print(f"{source}: {res['frames']} frames at {res['fps']:.1f} fps -> {stem}.landmarks.*")
        if res["error"]:
            problems.append(res["error"])

    if args.camera is not None:
        run_video(args.camera, Path(f"camera{args.camera}"))
    images = [(f, r) for f, r in items if f.suffix.lower() not in VIDEO_SUFFIXES]
    for f, r in items:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            try:
                run_video(str(f), r)
            except FacepointsError as e:
                problems.append(str(e))
    for f, rel in tqdm(images, unit="image", desc="detecting", disable=len(images) < 2, leave=False):
        try:
            result = landmarker.detect(f)
            if not args.no_images:
                result.save(_output_path(out_dir, rel, ".landmarks" + (f.suffix.lower() if f.suffix.lower() in IMAGE_SUFFIXES else ".png"), input_set), **draw)
            if not args.json_out:
                atomic_write_text(_output_path(out_dir, rel, ".json", input_set), result.to_json(indent=1))
        except FacepointsError as e:
            problems.append(str(e))
            continue
        records.append(result)
        n_faces += len(result)
        if not result.faces:
            print(f"note: no faces found in {f}", file=sys.stderr)
        if args.grid:
            tiles += _face_tiles(result, draw)
    if args.json_out:
        _write_table(Path(args.json_out), records, input_set)
    if args.grid:
        _write_grid(Path(args.grid), tiles)
    if images:
        where = args.json_out or out_dir
        print(f"{len(records)} images, {n_faces} faces -> {where}")
    for p in problems:
        print(f"facepoints: error: {p}", file=sys.stderr)
    if problems:
        print(f"facepoints: {len(problems)} input(s) failed", file=sys.stderr)
    return 1 if problems else 0


def _write_table(path: Path, records, inputs: set[Path]) -> None:
    if path.resolve() in inputs:
        raise FacepointsError(f"{path}: output would overwrite an input")
    if path.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_HEADER)
        for r in records:
            w.writerows(_csv_rows(r))
        atomic_write_text(path, buf.getvalue())
    elif path.suffix.lower() == ".json" and len(records) == 1:
        atomic_write_text(path, records[0].to_json(indent=1))
    else:
        atomic_write_text(path, "".join(json.dumps(r.summary()) + "\n" for r in records))


def _write_grid(path: Path, tiles) -> None:
    from PIL import Image

    from .drawing import grid

    if not tiles:
        print(f"note: no faces to put in {path}", file=sys.stderr)
        return
    cols = int(np.ceil(np.sqrt(len(tiles))))
    with atomic_path(path) as tmp:
        Image.fromarray(grid(tiles, cols=cols, tile=192)).save(tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG"))
    print(f"grid of {len(tiles)} faces -> {path}")
