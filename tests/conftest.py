"""Tiny fixtures the tests build themselves: synthetic faces with painted landmarks, a tiny trained model."""

import os

import cv2
import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from facepoints.annotations import write_pts  # noqa: E402
from facepoints.pose import MODEL_POINTS  # noqa: E402

# the tiny PIPNet every training test trains: a few thousand parameters, a second an epoch
TINY = {"widths": [8, 8, 16, 16], "depths": [1, 1, 1, 1], "head_chs": 16}


def tiny_config(data, out, **overrides):
    """The TrainConfig of a tiny training run on `data` into `out`; `overrides` change any field."""
    from facepoints.config import TrainConfig

    base = dict(
        data=str(data),
        out=str(out),
        arch="pipnet_small",
        epochs=1,
        batch_size=4,
        workers=0,
        model_kwargs=TINY,
        progress_faces=2,
        precision="fp32",
    )
    return TrainConfig(**{**base, **overrides})


def image_file(path, seed: int = 0):
    """A painted face written to `path` (folders made): an input for the CLI."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(painted_face(template(), seed=seed), cv2.COLOR_RGB2BGR))
    return path


def video_file(path, n: int = 3):
    """A short MP4 of painted faces written to `path`."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (200, 200))
    for i in range(n):
        vw.write(cv2.cvtColor(painted_face(template(), seed=i), cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def files_in(folder) -> dict:
    """Every file under folder (hidden ones too) -> its bytes: what a refused run must leave unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys, *needles) -> str:
    """The run's one message (progress bars aside), and no traceback."""
    full = capsys.readouterr().err
    lines = [x for x in full.replace("\r", "\n").splitlines() if x.startswith("facepoints:")]
    assert "Traceback" not in full and len(lines) == 1, full
    err = lines[0]
    assert err.startswith("facepoints: error: "), err
    for n in needles:
        assert n in err, err
    return err


def read_rows(path) -> dict:
    """A batch output's rows by path; a path that landed twice fails the test."""
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a path landed twice"
    return by_path


def template(size: float = 80.0, centre=(100.0, 100.0)) -> np.ndarray:
    """A frontal 68-point face shape of `size` px (jaw width) at `centre`."""
    p = MODEL_POINTS[:, :2].astype(np.float64)
    p = (p - p.mean(0)) / np.ptp(p[:, 0]) * size
    return (p + np.asarray(centre)).astype(np.float32)


def painted_face(points: np.ndarray, shape=(200, 200), seed: int = 0) -> np.ndarray:
    """RGB image with a distinct colour dot on each landmark over a smooth textured background."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(40, 90, (*shape, 3), dtype=np.uint8), (0, 0), 3)
    x1, y1 = points.min(0).astype(int)
    x2, y2 = points.max(0).astype(int)
    cv2.ellipse(
        img, ((int((x1 + x2) / 2), int((y1 + y2) / 2)), (int(x2 - x1) + 10, int(y2 - y1) + 30), 0), (170, 140, 120), -1
    )
    for x, y in points:
        cv2.circle(img, (int(round(x)), int(round(y))), 2, (20, 20, 20), -1)
    return img


@pytest.fixture
def face_folder(tmp_path):
    """12 synthetic annotated faces in two subfolders, jpg and png."""
    root = tmp_path / "faces"
    rng = np.random.default_rng(0)
    for i in range(12):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        pts = template(rng.uniform(70, 100), rng.uniform(90, 110, 2))
        img = painted_face(pts, seed=i)
        ext = ".jpg" if i % 3 else ".png"
        cv2.imwrite(str(sub / f"face{i}{ext}"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        write_pts(sub / f"face{i}.pts", pts)
    return root


def write_painted_faces(root, n: int, seed: int, digits: int = 1):
    """n painted faces with their .pts in root (f0.png, f0.pts, ...): a training set in a few milliseconds."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        pts = template(rng.uniform(70, 100), rng.uniform(90, 110, 2))
        cv2.imwrite(str(root / f"f{i:0{digits}d}.png"), cv2.cvtColor(painted_face(pts, seed=i), cv2.COLOR_RGB2BGR))
        write_pts(root / f"f{i:0{digits}d}.pts", pts)
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny PIPNet trained for 2 epochs on synthetic faces: exercises the whole training path."""
    from facepoints.augment import AugmentConfig
    from facepoints.train import TrainConfig, train

    root = write_painted_faces(tmp_path_factory.mktemp("tinydata"), 10, seed=1)
    out = tmp_path_factory.mktemp("run") / "tiny"
    os.environ["FACEPOINTS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    cfg = TrainConfig(
        data=str(root),
        out=str(out),
        arch="pipnet_small",
        epochs=2,
        batch_size=4,
        lr=1e-3,
        workers=0,
        model_kwargs=TINY,
        augment=AugmentConfig(rotation=10),
        progress_faces=2,
        precision="fp32",
    )
    train(cfg)
    return out


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """40 photos for batch landmarking: the example photo shrunk, shifted and mirrored (one face each, at
    ~1/3 size so a detector pass is cheap), in two subfolders, jpg and png, plus two files that are not images."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("photos")
    photo = cv2.imread(str(Path(__file__).resolve().parents[1] / "examples" / "grace_hopper.jpg"))
    rng = np.random.default_rng(7)
    for i in range(40):
        scale = rng.uniform(0.3, 0.45)
        im = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        dx, dy = rng.integers(0, 20, 2)
        im = im[dy:, dx:]
        if i % 2:
            im = im[:, ::-1]
        sub = root / ("a" if i % 3 else "b")
        sub.mkdir(exist_ok=True)
        cv2.imwrite(str(sub / f"photo{i:02d}{'.png' if i % 4 == 0 else '.jpg'}"), np.ascontiguousarray(im))
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "b" / "empty.png").write_bytes(b"")
    return root


@pytest.fixture(scope="session")
def playwright():
    """One Playwright driver for the session (tests/test_web*.py): its sync API refuses a second one at a time.
    Session-scoped, so pytest sets it up before the tests' own skip checks: it skips by itself without the [web]
    extra (and fails under FACEPOINTS_REQUIRE_WEB=1, as they do)."""
    try:
        from playwright.sync_api import sync_playwright  # the [web] extra
    except ImportError:
        if os.environ.get("FACEPOINTS_REQUIRE_WEB") == "1":
            raise
        pytest.skip("playwright not installed (pip install -e '.[web]')")

    with sync_playwright() as p:
        yield p
