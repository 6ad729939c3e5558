"""Tiny fabricated 300-W downloads, in the publishers' two layouts: painted faces (conftest.painted_face) with
their 68 points written in 300-W's 1-based convention.

- `published_300w(root)`: afw/, helen/trainset|testset, lfpw/trainset|testset, ibug/ with image + .pts per face
  (lfpw as .png, the rest .jpg, as published), plus 300W/01_Indoor (outside the standard split).
- `dlib_300w(root)`: ibug_300W_large_face_landmark_dataset/ with images and labels_ibug_300W_train.xml /
  labels_ibug_300W_test.xml (integer points, detector boxes, one mirrored training image), no .pts.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np

from facepoints.annotations import write_pts

from .conftest import painted_face, template

# folder -> faces in it; the standard split maps these to train (8), test (4) and challenging (2)
FOLDERS = {
    "afw": 3,
    "helen/trainset": 3,
    "lfpw/trainset": 2,
    "helen/testset": 2,
    "lfpw/testset": 2,
    "ibug": 2,
}
COUNTS = {"train": 8, "test": 4, "challenging": 2}


def _faces(seed: int = 0):
    """(folder, stem, suffix, rgb image, 0-based points) of every fabricated face."""
    rng = np.random.default_rng(seed)
    i = 0
    for folder, n in FOLDERS.items():
        for k in range(n):
            pts = template(rng.uniform(70, 100), rng.uniform(110, 150, 2))
            img = painted_face(pts, shape=(260, 240), seed=i)
            stem = f"image_{i:04d}" if folder.startswith("lfpw") else f"{1000 + i}_{k + 1}"
            suffix = ".png" if folder.startswith("lfpw") else ".jpg"
            yield folder, stem, suffix, img, pts
            i += 1


def published_300w(root: Path) -> Path:
    """The 300-W archives as published, extracted under root; returns root."""
    for folder, stem, suffix, img, pts in _faces():
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{stem}{suffix}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        write_pts(d / f"{stem}.pts", pts + 1)  # 300-W counts pixels from 1
    extra = root / "300W" / "01_Indoor"  # the 2013 challenge's own set: not in the standard split
    extra.mkdir(parents=True)
    pts = template()
    cv2.imwrite(str(extra / "indoor_001.png"), cv2.cvtColor(painted_face(pts), cv2.COLOR_RGB2BGR))
    write_pts(extra / "indoor_001.pts", pts + 1)
    return root


def dlib_300w(root: Path) -> Path:
    """dlib's ibug_300W_large_face_landmark_dataset (images + its two XML files, no .pts); returns its folder."""
    base = root / "ibug_300W_large_face_landmark_dataset"
    entries: dict[str, list[str]] = {"train": [], "test": []}
    for folder, stem, suffix, img, pts in _faces():
        d = base / folder
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"{stem}{suffix}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        which = "train" if folder == "afw" or folder.endswith("trainset") else "test"
        entries[which].append(_xml_image(f"{folder}/{stem}{suffix}", pts + 1))
        if which == "train" and not entries["train"][1:]:  # dlib adds mirrored copies: left out by prepare
            mirror = img[:, ::-1].copy()
            cv2.imwrite(str(d / f"{stem}_mirror{suffix}"), cv2.cvtColor(mirror, cv2.COLOR_RGB2BGR))
            flipped = pts.copy()
            flipped[:, 0] = img.shape[1] - 1 - flipped[:, 0]
            entries["train"].append(_xml_image(f"{folder}/{stem}_mirror{suffix}", flipped + 1))
    for which, images in entries.items():
        (base / f"labels_ibug_300W_{which}.xml").write_text(
            "<?xml version='1.0' encoding='ISO-8859-1'?>\n<dataset>\n<name>iBUG face point dataset</name>\n"
            "<images>\n" + "".join(images) + "</images>\n</dataset>\n"
        )
    return base


def _xml_image(file: str, pts: np.ndarray) -> str:
    p = np.round(pts).astype(int)
    (x1, y1), (x2, y2) = p.min(0), p.max(0)
    parts = "".join(f"    <part name='{i:02d}' x='{x}' y='{y}'/>\n" for i, (x, y) in enumerate(p))
    return (
        f"  <image file='{file}'>\n"
        f"    <box top='{y1 - 10}' left='{x1 - 5}' width='{x2 - x1 + 10}' height='{y2 - y1 + 15}'>\n"
        f"{parts}    </box>\n  </image>\n"
    )


def as_tar_gz(folder: Path, archive: Path) -> Path:
    """folder packed as archive (.tar.gz), its name as the top folder (as downloads come)."""
    with tarfile.open(archive, "w:gz") as t:
        t.add(folder, arcname=folder.name)
    return archive


def published_zips(folder: Path, dest: Path) -> list[Path]:
    """The iBUG page's archives (afw.zip, helen.zip, lfpw.zip, ibug.zip) of a `published_300w` folder."""
    import zipfile

    archives = []
    for name in ("afw", "helen", "lfpw", "ibug"):
        archive = dest / f"{name}.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for f in sorted((folder / name).rglob("*")):
                if f.is_file():
                    z.write(f, f.relative_to(folder).as_posix())
        archives.append(archive)
    return archives
