"""`facepoints detect`: inputs (images, folders, videos, camera) -> annotated outputs + JSON/JSONL/CSV."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from .crop import crop_face, points_box
from .drawing import grid
from .errors import FacepointsError, UsageError
from .images import IMAGE_SUFFIXES
from .io_utils import atomic_path, atomic_write_text, check_output_folder, check_outputs
from .landmarker import Landmarker, LandmarkerOptions
from .results import LandmarkResult
from .video import process_video

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def expand_inputs(inputs: list[str], skip: Path | None = None) -> list[tuple[Path, Path]]:
    """(file, name relative to its folder) for each input; folders are walked recursively for images and
    videos, except `skip` (the run's output folder, so a rerun does not annotate its own outputs).
    The walk resolves folders, not files: a folder of 10,000 photos is listed in a fraction of a second."""
    items = []
    skip = skip.resolve() if skip is not None else None
    suffixes = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            top = p.resolve()
            found = []
            for folder, subfolders, files in os.walk(p, followlinks=True):
                here = Path(folder)
                real = here.resolve() if here != p else top
                if skip is not None and skip != top and real.is_relative_to(skip):
                    subfolders[:] = []
                    continue
                subfolders.sort()
                found += [
                    here / f for f in files if os.path.splitext(f)[1].lower() in suffixes and (here / f).is_file()
                ]
            if not found:
                raise FacepointsError(f"{p}: no images or videos in this folder")
            items += [(f, f.relative_to(p)) for f in sorted(found)]
        elif p.exists():
            items.append((p, Path(p.name)))
        else:
            raise FacepointsError(f"{p}: no such file or folder")
    return items


def _face_tiles(result, draw_kwargs) -> list[np.ndarray]:
    canvas = result.plot(**draw_kwargs)
    return [crop_face(canvas, points_box(f.points), 192, 1.4).image for f in result.faces]


TABLE_SUFFIXES = (".jsonl", ".json", ".csv")


def plan_outputs(args, items: list[tuple[Path, Path]], out_dir: Path) -> dict:
    """Every file this run will write, checked before any work (io_utils.check_outputs).

    key -> paths: an input file -> its outputs (image, json; or video, gif, jsonl), "camera" likewise,
    "table" -> the --json file, "grid" -> the --grid picture.

    Two inputs whose outputs share a name (d1/x.jpg and d2/x.jpg, or x.jpg beside x.png) are refused
    up front rather than given invented names: an output's name stays the documented <stem>.json in
    -o, and giving their common folder instead keeps the folder structure below it."""
    check_output_folder(out_dir, "-o")
    if args.grid and Path(args.grid).suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(f"--grid {args.grid}: the picture needs an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    if args.json_out and Path(args.json_out).suffix.lower() not in TABLE_SUFFIXES:
        raise UsageError(f"--json {args.json_out}: give a .jsonl, .json or .csv file")
    plan: dict = {}

    def video(key, stem: Path):
        plan[key] = [
            None if args.no_images else Path(f"{stem}.landmarks.mp4"),
            Path(f"{stem}.landmarks.gif") if args.gif else None,
            Path(f"{stem}.landmarks.jsonl"),
        ]

    if args.camera is not None:
        video("camera", out_dir / f"camera{args.camera}")
    for f, rel in items:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            video(f, out_dir / rel.with_suffix(""))
        else:
            suffix = f.suffix.lower() if f.suffix.lower() in IMAGE_SUFFIXES else ".png"  # e.g. a .tif given by name
            plan[f] = [
                None if args.no_images else out_dir / rel.with_suffix(".landmarks" + suffix),
                None if args.json_out else out_dir / rel.with_suffix(".json"),
            ]
    plan["table"] = [Path(args.json_out) if args.json_out else None]
    plan["grid"] = [Path(args.grid) if args.grid else None]
    labels = {"camera": f"--camera {args.camera}", "table": "--json", "grid": "--grid"}
    check_outputs(
        [(p, labels.get(k, str(k))) for k, paths in plan.items() for p in paths if p is not None],
        inputs=[f for f, _ in items],
        read_folders=[i for i in args.inputs if Path(i).is_dir()],
        read_suffixes=IMAGE_SUFFIXES + VIDEO_SUFFIXES,
        skip=out_dir,
    )
    return plan


def run_detect(args, options: LandmarkerOptions) -> int:
    """`facepoints detect`: `args` says what to read and write, `options` (cli.landmarker_options) how."""
    if not args.inputs and args.camera is None:
        raise UsageError("give image/video files or folders, or --camera N")
    out_dir = Path(args.out)
    items = expand_inputs(args.inputs, skip=out_dir)
    plan = plan_outputs(args, items, out_dir)
    landmarker = Landmarker(options)
    landmarker.detector  # fail early on bad detector options
    draw = {
        "lines": not args.no_lines,
        "boxes": not args.no_boxes,
        "numbers": args.numbers,
        "hidden": "hide" if getattr(args, "hide_hidden", False) else "hollow",
    }
    problems, records, tiles, n_faces = [], [], [], 0

    def run_video(source, key):
        video, gif, jsonl = plan[key]
        res = process_video(landmarker, source, video, gif, jsonl, max_frames=args.max_frames, draw_kwargs=draw)
        print(f"{source}: {res['frames']} frames at {res['fps']:.1f} fps -> {str(jsonl).removesuffix('.jsonl')}.*")
        if res["error"]:
            problems.append(res["error"])

    if args.camera is not None:
        run_video(args.camera, "camera")
    images = [f for f, _ in items if f.suffix.lower() not in VIDEO_SUFFIXES]
    for f, _ in items:
        if f.suffix.lower() in VIDEO_SUFFIXES:
            try:
                run_video(str(f), f)
            except FacepointsError as e:
                problems.append(str(e))
    for f in tqdm(images, unit="image", desc="detecting", disable=len(images) < 2, leave=False):
        image_out, json_out = plan[f]
        try:
            result = landmarker.detect(f)
            if image_out is not None:
                result.save(image_out, **draw)
            if json_out is not None:
                atomic_write_text(json_out, result.to_json(indent=1))
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
        _write_table(Path(args.json_out), records)
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


def _write_table(path: Path, records) -> None:
    if path.suffix.lower() == ".csv":
        atomic_write_text(
            path, "".join(r.to_csv(header=i == 0) for i, r in enumerate(records)) or LandmarkResult().to_csv()
        )
    elif path.suffix.lower() == ".json" and len(records) == 1:
        atomic_write_text(path, records[0].to_json(indent=1))
    elif path.suffix.lower() == ".json":  # a .json file stays valid JSON: a list, not JSON lines
        atomic_write_text(path, json.dumps([r.summary() for r in records], indent=1))
    else:
        atomic_write_text(path, "".join(json.dumps(r.summary()) + "\n" for r in records))


def _write_grid(path: Path, tiles) -> None:
    if not tiles:
        print(f"note: no faces to put in {path}", file=sys.stderr)
        return
    cols = int(np.ceil(np.sqrt(len(tiles))))
    with atomic_path(path) as tmp:
        Image.fromarray(grid(tiles, cols=cols, tile=192)).save(
            tmp, format=(path.suffix.lstrip(".") or "png").upper().replace("JPG", "JPEG")
        )
    print(f"grid of {len(tiles)} faces -> {path}")
