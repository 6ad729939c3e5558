"""Files -> samples: 68-point annotation readers (iBUG .pts folders, dlib XML), the 300-W manifest's offsets,
and a dataset's fingerprint.

Outside this module landmarks are always float32 (68, 2) pixel x, y with the
pixel-centre convention; file formats are converted once, here.

Annotations are returned as written. Where a dataset says how far they sit from what
they mark (300-W crops: a manifest.csv of per-crop scales over 1-based source
annotations), that offset travels with the sample, so augmentation can mirror faces
about what the points mark rather than about the points.
"""

from __future__ import annotations

import csv
import hashlib
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import FacepointsError
from .images import IMAGE_SUFFIXES
from .landmarks import NUM_POINTS

# 300-W's source annotations count pixels from 1 (Matlab), so a crop scaled by s has its points
# s px right of and below what they mark: on train/, a model's error per face falls by ~1 px per unit
# of s in x and y alike (benchmarks/annotation_offsets.py), across both source repositories of the crops.
SOURCE_ORIGIN_PX = 1.0


MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class Sample:
    """One annotated face: where its image is and its 68 points in that image."""

    image_path: Path
    points: np.ndarray  # float32 (68, 2)
    box: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 if the file gave one
    subset: str = ""
    offset: tuple[float, float] = (0.0, 0.0)  # px the annotations sit right of / below the pixel they mark


def read_pts(path: str | Path) -> np.ndarray:
    """Read an iBUG .pts file (with or without its version/n_points/{ } header)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as e:
        raise FacepointsError(f"{path}: cannot read annotation ({e.__class__.__name__})") from None
    points, declared = [], None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line in "{}":
            continue
        key, _, value = line.partition(":")
        if value and key.strip() == "version":
            continue
        if value and key.strip() == "n_points":
            try:
                declared = int(value)
            except ValueError:
                raise FacepointsError(f"{path}:{lineno}: bad n_points {value.strip()!r}") from None
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            x, y = float(fields[0]), float(fields[1])
        except ValueError:
            raise FacepointsError(f"{path}:{lineno}: expected 'x y', got {line[:40]!r}") from None
        if not (np.isfinite(x) and np.isfinite(y)):
            raise FacepointsError(f"{path}:{lineno}: coordinate is not a finite number")
        points.append((x, y))
    if declared is not None and declared != len(points):
        raise FacepointsError(f"{path}: header says {declared} points but the file has {len(points)}")
    if len(points) != NUM_POINTS:
        raise FacepointsError(f"{path}: has {len(points)} points, expected {NUM_POINTS}")
    return np.asarray(points, dtype=np.float32)


def write_pts(path: str | Path, points: np.ndarray) -> None:
    lines = ["version: 1", f"n_points: {len(points)}", "{"]
    lines += [f"{x:.3f} {y:.3f}" for x, y in points]
    Path(path).write_text("\n".join(lines + ["}"]) + "\n")


def read_pts_folder(root: str | Path) -> list[Sample]:
    """Every image with a same-stem .pts under root (recursive); a lone .pts or image is an error."""
    root = Path(root)
    if not root.is_dir():
        raise FacepointsError(f"{root}: no such folder")
    pts_files = sorted(root.rglob("*.pts"))
    images = {p.with_suffix(""): p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not pts_files:
        raise FacepointsError(f"{root}: no .pts annotation files found")
    samples = []
    for pts in pts_files:
        image = images.pop(pts.with_suffix(""), None)
        if image is None:
            raise FacepointsError(f"{pts}: annotation has no image beside it (.jpg/.png with the same name)")
        subset = str(pts.parent.relative_to(root)) if pts.parent != root else ""
        samples.append(Sample(image, read_pts(pts), subset=subset))
    if images:
        lone = next(iter(images.values()))
        raise FacepointsError(f"{lone}: image has no .pts annotation beside it ({len(images)} such images)")
    offsets = read_manifest_offsets(root)
    return [
        replace(s, offset=offsets[s.image_path.resolve()]) if s.image_path.resolve() in offsets else s for s in samples
    ]


def find_manifest(root: Path) -> Path | None:
    """The 300-W crop manifest of `root`: in it or up to two folders above (it sits beside train/ and test/)."""
    for folder in [root, *root.resolve().parents][:3]:
        if (folder / MANIFEST).is_file():
            return folder / MANIFEST
    return None


def read_manifest_offsets(root: Path) -> dict[Path, tuple[float, float]]:
    """Resolved image path -> annotation offset (px), from a manifest with file, scale_x and scale_y columns.

    A manifest.csv without those columns is someone else's file and is ignored."""
    path = find_manifest(Path(root))
    if path is None:
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FacepointsError(f"{path}: cannot read the manifest ({e.__class__.__name__})") from None
    if not rows or not {"file", "scale_x", "scale_y"} <= set(rows[0]):
        return {}
    offsets = {}
    for lineno, row in enumerate(rows, 2):
        try:
            sx, sy = float(row["scale_x"]), float(row["scale_y"])
            if not (sx > 0 and sy > 0):
                raise ValueError
        except (TypeError, ValueError):
            raise FacepointsError(f"{path}:{lineno}: scale_x/scale_y must be positive numbers") from None
        offsets[(path.parent / row["file"]).resolve()] = (SOURCE_ORIGIN_PX * sx, SOURCE_ORIGIN_PX * sy)
    return offsets


def read_dlib_xml(path: str | Path) -> list[Sample]:
    """dlib's imglab XML (labels_ibug_300W_train.xml style); image paths are relative to the XML."""
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as e:
        raise FacepointsError(f"{path}: not a readable XML file ({e})") from None
    samples = []
    for image in tree.getroot().iter("image"):
        file = image.get("file")
        if not file:
            raise FacepointsError(f"{path}: <image> without a file attribute")
        for box in image.iter("box"):
            try:
                top, left = float(box.get("top")), float(box.get("left"))
                width, height = float(box.get("width")), float(box.get("height"))
                parts = {int(p.get("name")): (float(p.get("x")), float(p.get("y"))) for p in box.iter("part")}
            except (TypeError, ValueError):
                raise FacepointsError(f"{path}: malformed <box> or <part> for image {file}") from None
            if sorted(parts) != list(range(NUM_POINTS)):
                raise FacepointsError(f"{path}: image {file} has {len(parts)} parts, expected {NUM_POINTS} named 0..67")
            points = np.asarray([parts[i] for i in range(NUM_POINTS)], dtype=np.float32)
            samples.append(Sample(path.parent / file, points, (left, top, left + width, top + height)))
    if not samples:
        raise FacepointsError(f"{path}: no annotated faces in the XML")
    return samples


def read_dataset(source: str | Path) -> list[Sample]:
    """A folder of image+.pts pairs or a dlib XML file."""
    source = Path(source)
    if source.suffix.lower() == ".xml":
        return read_dlib_xml(source)
    return read_pts_folder(source)


def dataset_fingerprint(source: str | Path, samples: list[Sample] | None = None) -> str:
    """What a training run's split depends on: each face's name below the dataset's root, its image's size
    and its points. A dataset copied or moved elsewhere keeps it; one with other faces does not.
    `samples`: the dataset already read from `source`."""
    root = Path(source)
    base = root.parent if root.suffix.lower() == ".xml" else root
    h = hashlib.sha256()
    for s in read_dataset(root) if samples is None else samples:
        name = (
            s.image_path.resolve().relative_to(base.resolve())
            if s.image_path.resolve().is_relative_to(base.resolve())
            else s.image_path.name
        )
        h.update(f"{name} {s.image_path.stat().st_size} {s.offset}".encode())
        h.update(np.asarray(s.points, np.float32).tobytes())
    return h.hexdigest()


def same_dataset(a: str | Path, b: str | Path) -> bool:
    """The same folder (or XML file) reached by two paths, or the same faces after a copy or a move."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    if not (a.exists() and b.exists()):
        return False
    try:
        if os.path.samefile(a, b):
            return True
        return dataset_fingerprint(a) == dataset_fingerprint(b)
    except (OSError, FacepointsError):
        return False
