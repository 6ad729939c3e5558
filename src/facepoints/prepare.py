"""The publishers' 300-W downloads -> the folder `facepoints train` and `facepoints evaluate` read.

Input: the 300-W/iBUG archives as published (afw/, helen/trainset|testset, lfpw/trainset|testset, ibug/,
image + .pts per face), or dlib's ibug_300W_large_face_landmark_dataset with its labels_ibug_300W_*.xml;
extracted folders or .zip/.tar(.gz) archives. Output, the standard 300-W split by source folder:

    OUT/train/{afw,helen,lfpw}/   3148 faces: afw + helen/trainset + lfpw/trainset
    OUT/test/{helen,lfpw}/         554 faces: the common test subset (helen/testset + lfpw/testset)
    OUT/challenging/ibug/          135 faces: the challenging test subset
    OUT/manifest.csv               per face: its source, crop rectangle and scale
    OUT/README.md                  the counts and the options used

One image and one .pts per face. 300-W's points count pixels from 1; they are written as given (mapped
into a crop or scaled as pixel centres), and the manifest's scale_x/scale_y tell annotations.py how far
they sit from what they mark (SOURCE_ORIGIN_PX source pixels), exactly as for the crops the project's
models were trained on. dlib's XML carries the same 300-W points (rounded to whole pixels there) and
is read the same way.

Nothing is written to OUT until every face is done: the folder is built beside it and renamed."""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from tqdm import tqdm

from .annotations import MANIFEST, read_dlib_xml, read_pts, write_pts
from .crop import points_box
from .errors import FacepointsError, UsageError
from .images import IMAGE_SUFFIXES, load_image

# (source folder, its split folder) -> (split, subset) of the output; the standard 300-W split
SPLIT = {
    ("afw", ""): ("train", "afw"),
    ("helen", "trainset"): ("train", "helen"),
    ("lfpw", "trainset"): ("train", "lfpw"),
    ("helen", "testset"): ("test", "helen"),
    ("lfpw", "testset"): ("test", "lfpw"),
    ("ibug", ""): ("challenging", "ibug"),
}
STANDARD = {"train": 3148, "test": 554, "challenging": 135}  # faces per split in the published 300-W
XML_SPLITS = ("labels_ibug_300W_train.xml", "labels_ibug_300W_test.xml")
XML_ALL = "labels_ibug_300W.xml"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
COLUMNS = [
    "file",
    "split",
    "subset",
    "source",
    "original",
    "crop_x0",
    "crop_y0",
    "crop_x1",
    "crop_y1",
    "scale_x",
    "scale_y",
    "orig_w",
    "orig_h",
    "out_w",
    "out_h",
]
JPEG_QUALITY = 95


@dataclass(frozen=True)
class PrepareOptions:
    """crop: crop each face to this multiple of its landmark box's longer side (None: the whole image);
    max_side: downscale (never upscale) so the landmark box's longer side is at most this many px;
    form: 'auto' (.pts where the download has them, else dlib's XML), 'pts' or 'xml'."""

    crop: float | None = None
    max_side: int | None = None
    form: str = "auto"


@dataclass(frozen=True)
class Face:
    """One annotated face of the download: its image, points (300-W source convention) and place in the split."""

    image: Path
    points: np.ndarray
    split: str
    subset: str
    name: str  # output file stem, unique within split/subset
    original: str  # the image's path inside the download
    source: str  # which annotation file gave the points


def split_of(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """(split, subset) of a file from its folders inside the download (the innermost 300-W folder wins)."""
    lower = [p.lower() for p in parts]
    for i in range(len(lower) - 1, -1, -1):
        name = lower[i]
        if name in ("afw", "ibug"):
            return SPLIT[(name, "")]
        if name in ("helen", "lfpw") and i + 1 < len(lower) and (name, lower[i + 1]) in SPLIT:
            return SPLIT[(name, lower[i + 1])]
    return None


def is_archive(path: Path) -> bool:
    return path.is_file() and any(path.name.lower().endswith(s) for s in ARCHIVE_SUFFIXES)


def extract(archive: Path, dest: Path) -> Path:
    """Unpack a .zip or .tar(.gz) into dest (members that would land outside it are refused)."""
    dest.mkdir(parents=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    p = PurePosixPath(member)
                    if p.is_absolute() or ".." in p.parts:
                        raise FacepointsError(f"{archive}: member {member!r} would land outside the folder")
                z.extractall(dest)
        else:
            with tarfile.open(archive) as t:
                t.extractall(dest, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise FacepointsError(f"{archive}: not a readable archive ({e.__class__.__name__}: {e})") from None
    return dest


def find_pts_faces(root: Path) -> tuple[list[Face], int]:
    """Every .pts under the 300-W folders of root with its image beside it; and how many .pts lay elsewhere."""
    faces, ignored = [], 0
    images: dict[Path, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            images.setdefault(p.with_suffix(""), p)
    for pts in sorted(root.rglob("*.pts")):
        where = split_of(pts.relative_to(root).parts[:-1])
        if where is None:
            ignored += 1  # e.g. 300-W's 300W/01_Indoor|02_Outdoor: not in the standard split
            continue
        image = images.get(pts.with_suffix(""))
        if image is None:
            raise FacepointsError(f"{pts}: annotation has no image beside it (.jpg/.png with the same name)")
        rel = image.relative_to(root).as_posix()
        faces.append(Face(image, read_pts(pts), *where, pts.stem, rel, "300-W .pts"))
    return faces, ignored


def xml_files(root: Path) -> list[Path]:
    """dlib's XML files in root (or one folder below): the train and test files, else the combined one."""
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        split_files = [folder / n for n in XML_SPLITS if (folder / n).is_file()]
        if split_files:
            return split_files
        if (folder / XML_ALL).is_file():
            return [folder / XML_ALL]
    return []


def find_xml_faces(root: Path) -> tuple[list[Face], int]:
    """The faces of dlib's XML files; its mirrored copies (`*_mirror.*`, an augmentation) are left out."""
    faces, ignored, seen = [], 0, set()
    for xml in xml_files(root):
        per_image: Counter[str] = Counter()
        for s in read_dlib_xml(xml):
            try:
                rel = s.image_path.relative_to(xml.parent)
            except ValueError:  # an absolute path: no place in the split to read from it
                raise FacepointsError(f"{xml}: image {s.image_path} lies outside the XML's folder") from None
            if ".." in rel.parts:
                raise FacepointsError(f"{xml}: image {rel.as_posix()} lies outside the XML's folder")
            if s.image_path.stem.lower().endswith("_mirror"):
                ignored += 1
                continue
            where = split_of(rel.parts[:-1])
            if where is None:
                ignored += 1
                continue
            if not s.image_path.is_file():
                raise FacepointsError(f"{xml}: image {rel.as_posix()} is missing")
            per_image[rel.as_posix()] += 1
            k = per_image[rel.as_posix()]
            key = (rel.as_posix(), k)
            if key in seen:
                continue  # the same face in two XML files
            seen.add(key)
            name = s.image_path.stem if k == 1 else f"{s.image_path.stem}_face{k}"
            faces.append(Face(s.image_path, s.points, *where, name, rel.as_posix(), f"dlib {xml.name}"))
    return faces, ignored


def collect(roots: list[Path], form: str) -> tuple[list[Face], int]:
    """The faces of every root: .pts (form 'pts', or 'auto' where there are any) or dlib's XML."""
    faces, ignored = [], 0
    for root in roots:
        got: list[Face] = []
        n_ignored = 0
        if form in ("auto", "pts"):
            got, n_ignored = find_pts_faces(root)
        if not got and form in ("auto", "xml"):
            got, n_ignored = find_xml_faces(root)
        if not got:
            wanted = {"pts": ".pts files", "xml": "labels_ibug_300W_*.xml files"}.get(
                form, ".pts files or labels_ibug_300W_*.xml files"
            )
            raise FacepointsError(
                f"{root}: no 300-W faces found ({wanted} under afw/, helen/trainset|testset, lfpw/trainset|testset "
                "or ibug/)"
            )
        faces += got
        ignored += n_ignored
    names: dict[str, Face] = {}
    for f in faces:
        key = f"{f.split}/{f.subset}/{f.name}"
        if key in names:
            raise FacepointsError(f"{f.image}: the face {key} is given twice (also by {names[key].image})")
        names[key] = f
    return faces, ignored


def crop_rect(points: np.ndarray, factor: float | None, width: int, height: int) -> tuple[int, int, int, int]:
    """The crop around a face: `factor` x its landmark box's longer side, square, clipped to the image."""
    if factor is None:
        return 0, 0, width, height
    x1, y1, x2, y2 = points_box(points)
    half = factor * max(x2 - x1, y2 - y1) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    x1c, y1c = min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))
    if x1c - x0 < 1 or y1c - y0 < 1:
        raise FacepointsError("the face lies outside its image")
    return x0, y0, x1c, y1c


def write_face(face: Face, out: Path, options: PrepareOptions) -> dict:
    """Write one face's image and .pts under out; its manifest row."""
    rgb = load_image(face.image)
    h, w = rgb.shape[:2]
    try:
        x0, y0, x1, y1 = crop_rect(face.points, options.crop, w, h)
    except FacepointsError as e:
        raise FacepointsError(f"{face.image}: {e}") from None
    cw, ch = x1 - x0, y1 - y0
    f = 1.0
    if options.max_side:
        bx1, by1, bx2, by2 = points_box(face.points)
        f = min(1.0, options.max_side / max(bx2 - bx1, by2 - by1, 1e-6))
    ow, oh = max(1, round(cw * f)), max(1, round(ch * f))
    sx, sy = ow / cw, oh / ch
    folder = out / face.split / face.subset
    folder.mkdir(parents=True, exist_ok=True)
    if (x0, y0, x1, y1) == (0, 0, w, h) and (ow, oh) == (w, h):
        dest = folder / (face.name + face.image.suffix.lower())
        shutil.copyfile(face.image, dest)  # untouched: the publisher's bytes
    else:
        dest = folder / (face.name + ".jpg")
        crop = rgb[y0:y1, x0:x1]
        if (ow, oh) != (cw, ch):
            crop = cv2.resize(crop, (ow, oh), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise FacepointsError(f"{face.image}: cannot encode the crop as JPEG")
        dest.write_bytes(buf.tobytes())
    # pixel centres: source pixel x (from x0) lands on (x - x0 + 0.5) * s - 0.5
    pts = (face.points.astype(np.float64) - [x0, y0] + 0.5) * [sx, sy] - 0.5
    write_pts(dest.with_suffix(".pts"), pts.astype(np.float32))
    return {
        "file": dest.relative_to(out).as_posix(),
        "split": face.split,
        "subset": face.subset,
        "source": face.source,
        "original": face.original,
        "crop_x0": x0,
        "crop_y0": y0,
        "crop_x1": x1,
        "crop_y1": y1,
        "scale_x": f"{sx:.6g}",
        "scale_y": f"{sy:.6g}",
        "orig_w": w,
        "orig_h": h,
        "out_w": ow,
        "out_h": oh,
    }


def readme(counts: Counter, options: PrepareOptions, command: str) -> str:
    lines = [
        "# 300-W, prepared by `facepoints prepare 300w`",
        "",
        f"Command: `{command}`" if command else "",
        "",
        "| split | subset | faces |",
        "|---|---|---|",
    ]
    lines += [f"| {split} | {subset} | {n} |" for (split, subset), n in sorted(counts.items())]
    crop = f"{options.crop:g}x the landmark box, square, clipped to the image" if options.crop else "none (whole image)"
    scale = f"the landmark box at most {options.max_side} px (never upscaled)" if options.max_side else "none"
    lines += [
        "",
        f"Crop: {crop}. Scale: {scale}. Both are recorded per face in manifest.csv.",
        "",
        "train/ is the standard 300-W training split (afw + helen/trainset + lfpw/trainset), test/ the common",
        "test subset (helen/testset + lfpw/testset), challenging/ the iBUG subset. Points are 300-W's (1-based),",
        "mapped into each output image; manifest.csv's scale_x/scale_y say how far they sit from what they mark.",
        "",
        "The 300-W images and annotations are for non-commercial research use only; so are models trained on them.",
        "",
    ]
    return "\n".join(lines)


def check_output(out: Path) -> None:
    """OUT may not exist yet, or be an empty folder; anything else is refused before any work."""
    if out.is_dir():
        if any(out.iterdir()):
            raise UsageError(f"-o {out}: the folder exists and is not empty; give a new folder")
    elif out.exists() or out.is_symlink():
        raise UsageError(f"-o {out}: exists and is not a folder")
    for p in out.parents:
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"-o {out}: {p} is a file")
            break


@dataclass(frozen=True)
class Prepared:
    """What prepare_300w wrote: faces per (split, subset), and annotations left out (outside the standard split)."""

    counts: Counter
    ignored: int


def prepare_300w(
    sources: list[str | Path],
    out: str | Path,
    options: PrepareOptions = PrepareOptions(),
    progress: bool = True,
    command: str = "",
) -> Prepared:
    """Build OUT from the 300-W download(s) in `sources` (folders or archives). `command`: how it was asked
    for, recorded in OUT/README.md.

    Work happens in a hidden folder beside OUT, renamed into place at the end: an error (a malformed
    .pts or XML, a missing image) leaves nothing behind."""
    out = Path(out)
    if options.form not in ("auto", "pts", "xml"):
        raise UsageError(f"--format {options.form}: choose auto, pts or xml")
    if options.crop is not None and not options.crop >= 1:
        raise UsageError(f"--crop {options.crop}: must be at least 1 (a multiple of the landmark box)")
    if options.max_side is not None and options.max_side < 1:
        raise UsageError(f"--max-side {options.max_side}: must be a positive number of pixels")
    paths = [Path(s) for s in sources]
    for p in paths:
        if not p.exists():
            raise FacepointsError(f"{p}: no such file or folder")
        if not (p.is_dir() or is_archive(p)):
            raise FacepointsError(f"{p}: neither a folder nor a .zip/.tar(.gz) archive")
        if p.is_dir() and out.resolve().is_relative_to(p.resolve()):
            raise UsageError(f"-o {out}: lies inside the download {p}; write it elsewhere")
    check_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.prepare.{os.getpid()}.tmp"
    if work.exists():
        shutil.rmtree(work)
    try:
        roots = [extract(p, work / "sources" / str(i)) if is_archive(p) else p for i, p in enumerate(paths)]
        faces, ignored = collect(roots, options.form)
        built = work / "out"
        built.mkdir(parents=True)
        with tqdm(faces, desc="preparing", unit="face", disable=not progress, leave=False) as bar:
            rows = [write_face(f, built, options) for f in bar]  # the bar is cleared before an error prints
        rows.sort(key=lambda r: r["file"])
        text = io.StringIO()
        writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (built / MANIFEST).write_text(text.getvalue())
        counts = Counter((f.split, f.subset) for f in faces)
        (built / "README.md").write_text(readme(counts, options, command))
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(built, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Prepared(counts, ignored)


def summary(prepared: Prepared, out: str | Path) -> str:
    """What was written, against the standard split's counts."""
    counts, lines = prepared.counts, []
    for split in ("train", "test", "challenging"):
        subsets = {s: n for (sp, s), n in sorted(counts.items()) if sp == split}
        total = sum(subsets.values())
        parts = ", ".join(f"{s} {n}" for s, n in subsets.items()) or "none"
        note = "" if total == STANDARD[split] else f" (the standard split has {STANDARD[split]})"
        lines.append(f"{split:<12} {total:>5} faces{note}: {parts}")
    if prepared.ignored:
        lines.append(
            f"ignored: {prepared.ignored} annotations outside the standard split "
            "(300W/ indoor/outdoor, dlib's mirrored copies)"
        )
    lines.append(f"-> {out} (manifest.csv, README.md)")
    return "\n".join(lines)
