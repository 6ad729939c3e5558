"""Files -> samples: 68-point annotation readers (iBUG .pts folders, dlib XML) and image decoding.

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
import io
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from .errors import FacepointsError
from .landmarks import NUM_POINTS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# decompression-bomb guard and memory bound: Pillow's own threshold (~9.5k x 9.5k), where it starts to warn;
# decoding one such image peaks at ~0.6 GB over the ~0.4 GB of the loaded models (README, "Bad input")
MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
ORIENTATION = 0x0112  # the EXIF orientation tag
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


def load_image(path: str | Path) -> np.ndarray:
    """Decode any supported image to uint8 RGB (H, W, 3): grayscale, RGBA, 16-bit included.

    The EXIF orientation is applied (a phone photo stored sideways comes out upright, and points are
    in that upright frame). Images over MAX_IMAGE_PIXELS are refused before decoding; below it the
    decode holds at most Pillow's copy and ours at once (about 7 bytes a pixel: ~0.6 GB at the limit)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise FacepointsError(f"{path}: cannot open ({e.strerror})") from None
    if size == 0:
        raise FacepointsError(f"{path}: empty file")
    return _decode(path, path)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """`load_image` for an encoded image already in memory (a Parquet column, an object store read):
    the same decoder, so the same pixels as loading the file. `name` is what errors call it."""
    if not data:
        raise FacepointsError(f"{name}: empty file")
    return _decode(io.BytesIO(data), name)


def _decode(source, name) -> np.ndarray:
    try:
        with Image.open(source) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise FacepointsError(
                    f"{name}: image too large ({im.width}x{im.height} = {im.width * im.height / 1e6:.0f} "
                    f"Mpx; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} Mpx), refusing to decode"
                )
            orientation = im.getexif().get(ORIENTATION, 1)
            im.load()
            rgb = to_rgb(_to_array(_pil_to_8bit(im)))
        return upright(rgb, orientation)  # after Pillow's copy is freed
    except FacepointsError:
        raise
    except Exception as e:  # PIL raises many types for corrupt data
        why = str(e).replace(repr(source), repr(str(name)))  # not "<_io.BytesIO object at 0x...>": the same each run
        raise FacepointsError(f"{name}: not a decodable image ({e.__class__.__name__}: {why})") from None


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to a decoded image, as ImageOps.exif_transpose would."""
    if orientation == 2:
        return cv2.flip(image, 1)
    if orientation == 3:
        return cv2.rotate(image, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(image, 0)
    if orientation == 5:
        return np.ascontiguousarray(image.transpose(1, 0, 2))
    if orientation == 6:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return np.ascontiguousarray(image[::-1, ::-1].transpose(1, 0, 2))
    if orientation == 8:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return image


STRIP_PIXELS = 1_000_000  # a strip and its transient copy stay small beside the image


def _to_array(im: Image.Image) -> np.ndarray:
    """PIL image -> numpy, in strips for big images: np.asarray(im) holds a second full copy at its peak."""
    if im.width * im.height <= STRIP_PIXELS:
        return np.asarray(im)
    rows = max(1, STRIP_PIXELS // im.width)
    strips = [(y, min(y + rows, im.height)) for y in range(0, im.height, rows)]
    first = np.asarray(im.crop((0, 0, im.width, strips[0][1])))
    out = np.empty((im.height, *first.shape[1:]), first.dtype)
    out[: strips[0][1]] = first
    for y0, y1 in strips[1:]:
        out[y0:y1] = np.asarray(im.crop((0, y0, im.width, y1)))
    return out


def _pil_to_8bit(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        hi = max(float(arr.max()), 1.0)
        return Image.fromarray((arr * (255.0 / (65535.0 if hi > 255 else 255.0))).clip(0, 255).astype(np.uint8))
    if im.mode not in ("L", "RGB", "RGBA", "LA"):
        return im.convert("RGB")
    return im


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Any numpy image (gray, RGB, RGBA, float, 16-bit) as uint8 RGB (H, W, 3)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise FacepointsError(f"expected an image array (H, W[, C]), got shape {image.shape}")
    if image.dtype.kind not in "uifb":
        raise FacepointsError(f"expected an image array of numbers, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] not in (1, 2, 3, 4):
        raise FacepointsError(f"expected an image array with 1, 2, 3 or 4 channels, got shape {image.shape}")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise FacepointsError("image array holds NaN or infinite values")
    if image.dtype == np.uint16:
        if image.max() <= 255:  # 8-bit data in a wider type: scaling by 1/257 would make it black; say so
            raise FacepointsError(
                "uint16 image array holds only values 0-255: 8-bit data in a 16-bit array? "
                "pass image.astype(np.uint8); a real 16-bit image spans 0-65535"
            )
        image = (image / 257.0).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = (image.clip(0, 1) * 255 if image.max() <= 1.0 else image.clip(0, 255)).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = image.clip(0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 2:
        return cv2.cvtColor(np.ascontiguousarray(image[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    return np.ascontiguousarray(image)
