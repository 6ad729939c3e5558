"""What the benchmark scripts share. A script in benchmarks/ imports from this module and from facepoints, never
from another script (tests/test_structure.py holds them to it), so each one can be read, run or deleted alone.

- The report: ROOT, DATA and RESULTS; `write_section` (one section of BENCHMARKS.md, stamped with the code, data,
  machine and weights it was made with); `table`; the README's table of shipped models (`write_readme_models`;
  `python benchmarks/common.py` rewrites it from the stored results, measuring nothing).
- Timing: `median_ms`, `per_face_ms` and `fastest_ms` (ONNX Runtime sessions), and the images they time:
  `test_faces`, `on_canvas`, `make_640x480`.
- The reference and the detectors: dlib's 68-point predictor (`DlibShapePredictor`) and `CachedDetector`, which
  runs a detector once per image and replays its boxes for every landmark model.
- Trained weights judged on held-out faces: `held_out_weights`, `predict` (torch), the ONNX graphs (`session`,
  `onnx_bytes`, `fp32_and_int8`, `onnx_nme`), `macs`, and a run's scores (`held_out_and_test`, `int8_cost`).

torch and dlib are imported in the functions that need them: benchmarks such as install.py and big_folders.py
run without loading either.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np
import onnxruntime as ort

from facepoints.annotations import read_pts_folder
from facepoints.crop import points_box
from facepoints.detectors import DETECTOR_WEIGHTS
from facepoints.evaluate import PointsOf, evaluate
from facepoints.images import load_image
from facepoints.metrics import nme
from facepoints.predictor import LandmarkPredictor
from facepoints.provenance import data_hash, git_commit, machine

if TYPE_CHECKING:
    import torch

    from facepoints.checkpoint import RunSplit
    from facepoints.weights import ModelSpec

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
EXPERIMENTS = ROOT / "docs" / "experiments.md"  # ablations and run logs: how the shipped models were chosen
REPORTS = (REPORT, EXPERIMENTS)
COMMIT = git_commit(ROOT)  # the code as the run started: a benchmark's own outputs do not make it "+changes"
# 300-W as `facepoints prepare 300w` writes it: $FACEPOINTS_300W, else data/300w in the checkout, else the
# project machines' shared copy beside it
DATA = Path(
    os.environ.get("FACEPOINTS_300W")
    or next(
        (p for p in (ROOT / "data" / "300w", ROOT.parent / "shared" / "data" / "300w") if p.is_dir()),
        ROOT / "data" / "300w",
    )
)
RESULTS = ROOT / "benchmarks" / "results"


# --- the report ---


def weights_line() -> str:
    """The shipped landmark models and face detectors a figure was made with, by file and sha256."""
    from facepoints.weights import shipped_models  # torch: only once a section is written

    models = shipped_models()
    heads = {f"{n}.trust": m["trust"] for n, m in models.items() if "trust" in m}  # trust heads: figures of their own
    files = {**models, **heads, **json.loads((DETECTOR_WEIGHTS / "DETECTORS.json").read_text())}
    return "; ".join(f"`{n}` = {m['file']} sha256 {m['sha256'][:16]}…" for n, m in files.items())


MAX_LINE = 200  # BENCHMARKS.md's longest line (`--check`); prose is wrapped at WRAP
WRAP = 120


def short_machine(machine_line: str) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, Linux ...' -> 'Intel Xeon, 2 cores': what a heading names."""
    cpu, cores = (machine_line.split(",") + [""])[:2]
    cpu = cpu.replace("(R)", "").replace("(TM)", "").replace(" Processor", "").replace(" CPU", "")
    return f"{' '.join(cpu.split())},{cores}".rstrip(",")


def wrap_prose(text: str, width: int = WRAP) -> str:
    """Prose lines longer than `width` broken at spaces (list items keep their indent); tables, headings, code
    blocks, HTML comments and lines of one long word stay as they are. Idempotent: a reflowed text is unchanged."""
    out, fenced = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or len(line) <= width or line.lstrip().startswith(("|", "#", "<", "```", "![")):
            out.append(line)
            continue
        indent = "  " if line.startswith(("- ", "* ")) else ""
        words, current = line.split(" "), ""
        for word in words:
            # a word that would open a line as Markdown syntax (a list, heading, quote, table) stays on this one
            risky = word[:1] in "#-+*>|" or re.fullmatch(r"\d+[.)]", word)
            if current.strip() and len(current) + 1 + len(word) > width and not risky:
                out.append(current)
                current = indent + word
            else:
                current = f"{current} {word}" if current else word
        out.append(current)
    return "\n".join(out)


def format_section(name: str, body: str, stamp: str) -> str:
    """One section between its markers: an anchor `#name` that survives reruns, the body with the machine named in
    its first heading (from the stamp), prose wrapped, and the stamp."""
    found = re.search(r"Machine:\s+(.*?)\.\s+Weights:", " ".join(stamp.split()))
    lines = body.strip().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("#"):
            heading = line.split(" · ")[0]
            lines[i] = f"{heading} · {short_machine(found.group(1))}" if found else heading
            break
    return (
        f'<!-- {name}:start -->\n<a id="{name}"></a>\n\n' + wrap_prose("\n".join(lines)) + "\n\n"
        f"{wrap_prose(' '.join(stamp.split()))}\n<!-- {name}:end -->"
    )


SECTION = re.compile(r"<!-- ([\w-]+):start -->\n(.*?)\n<!-- \1:end -->", re.S)


def split_section(inner: str) -> tuple[str, str]:
    """A written section's text between its markers -> (body, stamp); the anchor line is dropped."""
    inner = re.sub(r'^<a id="[\w-]+"></a>\n\n?', "", inner)
    at = inner.rfind("_Written by")
    return (inner[:at].rstrip(), inner[at:].strip()) if at >= 0 else (inner.rstrip(), "")


def write_section(name: str, body: str, command: str, data: str | Path = DATA, path: Path | None = None) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md, or of `path` (EXPERIMENTS for the ablations and
    run logs); the stamp names the code (git commit) and the data (a hash of the folder the figures were computed
    on), so a figure can be traced to what made it. BENCHMARKS.md's summary table is rewritten after it."""
    path = path or REPORT
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = format_section(
        name,
        body,
        f"_Written by `{command}` on {stamp} at commit {COMMIT}, data {Path(data).name}/ sha256 "
        f"{data_hash(data)}…. Machine: {machine()}. Weights: {weights_line()}._",
    )
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmarks\n\nEvery figure below is written by a script in `benchmarks/`; "
        "rerun it to refresh its section.\n"
    )
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    _replace(path, text)
    print(f"-> {path} [{name}]")
    write_summary()


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def reflow(text: str) -> str:
    """Every written section of a report put in the current format (anchor, machine in the heading, wrapped
    prose and stamp) without measuring anything: for sections written by an older common.py."""
    return SECTION.sub(
        lambda m: m.group(0) if m.group(1) == "summary" else format_section(m.group(1), *split_section(m.group(2))),
        text,
    )


# --- the summary at the top of BENCHMARKS.md ---


class Figure(NamedTuple):  # not a dataclass: tests load this file without registering it as a module
    """One headline figure: the cell of a table in a written section (the row whose cells match `row`, a trailing
    `*` matching a prefix; the column `col`), and the peer it is compared with in the same run."""

    label: str
    section: str
    row: dict
    col: str
    peer: str = ""  # what the peer is, as the summary names it
    peer_row: dict | None = None
    peer_col: str = ""


# accuracy.py's label for `fast`'s default graph on the machine that ran it: int8 where it is exact and faster
# (graph_choice.py), else fp32 (the label then has no suffix; the fp32 comparison rows are "(fp32 ONNX)")
FAST_DEFAULT = ("facepoints fast (int8 ONNX)", "facepoints fast")

SUMMARY = [
    Figure(
        "300-W NME, `fast`, landmark boxes",
        "accuracy",
        {"method": FAST_DEFAULT, "boxes": "landmarks"},
        "NME mean",
        "dlib 68-point",
        {"method": "dlib shape_predictor_68", "boxes": "landmarks, in dlib's box convention"},
    ),
    Figure(
        "300-W NME, `fast`, RetinaFace boxes (default)",
        "accuracy",
        {"method": FAST_DEFAULT, "boxes": "RetinaFace"},
        "NME mean",
        "dlib 68-point",
        {"method": "dlib shape_predictor_68", "boxes": "RetinaFace, in dlib's box convention"},
    ),
    Figure(
        "300-W NME, `fast`, dlib HOG boxes",
        "accuracy",
        {"method": FAST_DEFAULT, "boxes": "dlib HOG"},
        "NME mean",
        "dlib 68-point",
        {"method": "dlib shape_predictor_68", "boxes": "dlib HOG"},
    ),
    Figure(
        "300-W NME, `accurate`, RetinaFace boxes",
        "accuracy",
        {"method": "facepoints accurate", "boxes": "RetinaFace"},
        "NME mean",
        "dlib 68-point",
        {"method": "dlib shape_predictor_68", "boxes": "RetinaFace, in dlib's box convention"},
    ),
    Figure(
        "Landmark step, one face, 1 thread, `fast` with trust heads (default graph)",
        "landmark-step",
        {"method": "fast auto + trust (default)"},
        "ms/face (best)",
        "dlib 68-point",
        {"method": "dlib"},
    ),
    Figure(
        "End to end at 640x480, 1 thread, images/s (coarse-to-fine detector)",
        "end_to_end",
        {"detector": "coarse pass at half size, full pass if needed"},
        "images/s",
        "one full detector pass",
        {"detector": "one full pass (before)"},
    ),
    Figure(
        "`facepoints detect`, 640x480 photos, images/s",
        "speed",
        {"detector": "retinaface (coarse pass, default)"},
        "images/s",
        "dlib HOG detector",
        {"detector": "dlib"},
    ),
    Figure(
        "Video 640x480, tracking + smoothing, fps",
        "speed",
        {"mode": "tracking + One Euro smoothing"},
        "fps",
        "detector every frame",
        {"mode": "detector every frame, raw"},
    ),
    Figure(
        "Detector recall / false faces per image, blurred faces",
        "detectors",
        {"detector": "retinaface (default: 1280 px cap)"},
        "blur",
        "dlib HOG",
        {"detector": "dlib HOG, upsample 1"},
    ),
    Figure(
        "`fast` NME, faces rolled 60° (found/all)",
        "detectors",
        {"boxes": "retinaface (default: 1280 px cap) + upright crop"},
        "rolled60",
        "dlib HOG boxes",
        {"boxes": "dlib HOG, upsample 1"},
    ),
    Figure(
        "Trust: visibility AUROC, occluders never trained on",
        "trust",
        {"occluder family on test/": "`photo_patch` (held out)"},
        "visibility AUROC",
    ),
    Figure(
        "Trust: failure AUROC (NME > 8%), RetinaFace boxes", "trust", {"boxes": "RetinaFace boxes*"}, "failure AUROC"
    ),
    Figure(
        "Trust: presence AUROC, faces vs face-free crops", "trust", {"negatives": "all negatives"}, "presence AUROC"
    ),
    Figure("Trust heads' cost, fp32 graph, batch 1", "trust", {"graph": "fp32", "batch": "1"}, "cost (best)"),
    Figure("Trust heads' cost, int8 graph, batch 1", "trust", {"graph": "int8", "batch": "1"}, "cost (best)"),
    Figure(
        "Browser webcam tracking, processed frames/s (isolated, wasm threads)",
        "web",
        {"cross-origin isolated": "yes*"},
        "webcam processed fps",
        "not isolated, 1 thread",
        {"cross-origin isolated": "no"},
    ),
    Figure(
        "Browser (wasm), landmarks ms, 640x480, isolated",
        "web",
        {"cross-origin isolated": "yes*"},
        "landmarks ms",
        "not isolated, 1 thread",
        {"cross-origin isolated": "no"},
    ),
    Figure(
        "Browser points vs Python, mean / max px",
        "web",
        {"cross-origin isolated": "no"},
        "points vs Python mean / max px",
    ),
    Figure(
        "`facepoints batch --engine ray --workers 2`, steady images/s, 2,400 photos",
        "scale",
        {"how": "`facepoints batch --engine ray --address ... --workers 2`"},
        "steady img/s",
        "local engine (one process)",
        {"how": "`facepoints batch` (local engine*"},
    ),
    Figure(
        "Data-parallel training, 2 processes, img/s",
        "scale",
        {"how": "2 processes*"},
        "best img/s",
        "1 process",
        {"how": "1 process*"},
    ),
    Figure(
        "Core install, venv MB",
        "install",
        {"install": "`facepoints (this checkout's wheel)`"},
        "venv (MB)",
        "mediapipe",
        {"install": "`mediapipe`"},
    ),
    Figure(
        "Core install, `pip install` to first landmarks, s",
        "install",
        {"install": "`facepoints (this checkout's wheel)`"},
        "install → landmarks (s)",
    ),
    Figure("Peak memory, 9,400 x 9,400 photo", "memory", {"detector": "retinaface (default)"}, "peak memory"),
    Figure("Folder of 10,000 photos: first result", "big_folders", {"photos": "10,000"}, "first result"),
]


def md_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """The Markdown tables of a text: (header cells, rows of cells)."""
    found, lines = [], text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]*-[\s:|-]*", lines[i + 1]):
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in lines[i:]]
            end = next((k for k, row in enumerate(lines[i:]) if not row.startswith("|")), len(lines) - i)
            found.append((cells[0], cells[2:end]))
    return found


def cell(text: str, row: dict, col: str) -> str | None:
    """The cell in column `col` of the first row (of any table of `text` with those columns) matching `row`."""

    def matches(value: str, want: str | tuple) -> bool:
        if isinstance(want, tuple):  # any of these
            return any(matches(value, w) for w in want)
        return value.startswith(want[:-1]) if want.endswith("*") else value == want

    for header, rows in md_tables(text):
        if col in header and all(k in header for k in row):
            for r in rows:
                if len(r) == len(header) and all(matches(r[header.index(k)], v) for k, v in row.items()):
                    return r[header.index(col)]
    return None


def summary_rows() -> tuple[list[list[str]], list[str]]:
    """The summary's rows from the written sections of BENCHMARKS.md, and what could not be found in them."""
    sections = {m.group(1): split_section(m.group(2)) for m in SECTION.finditer(REPORT.read_text())}
    rows, missing = [], []
    for f in SUMMARY:
        body, stamp = sections.get(f.section, ("", ""))
        stamp = " ".join(stamp.split())
        value = cell(body, f.row, f.col)
        peer = cell(body, f.peer_row, f.peer_col or f.col) if f.peer_row else None
        if value is None or (f.peer_row and peer is None):
            missing.append(f"BENCHMARKS.md [{f.section}]: no figure for summary row {f.label!r}")
        when = re.search(r" on (\d{4}-\d\d-\d\d)", stamp)
        host = re.search(r"Machine: (.*?)\. Weights:", stamp)
        rows.append(
            [
                f.label,
                value or "?",
                f"{f.peer}: {peer}" if f.peer_row else "—",
                short_machine(host.group(1)) if host else "?",
                when.group(1) if when else "?",
                f"[{f.section}](#{f.section})",
            ]
        )
    return rows, missing


def summary_block() -> str:
    rows, _ = summary_rows()
    intro = (
        "The headline figures, each from the section its script writes below (`python benchmarks/summary.py` "
        "rebuilds this table from them; every `write_section` does too). The peer is measured in the same run, on "
        "the same machine; the machine and date are the section's."
    )
    return (
        f"<!-- summary:start -->\n## Summary\n\n{wrap_prose(intro)}\n\n"
        + table(["figure", "value", "peer, same run", "machine", "date", "section"], rows)
        + "\n<!-- summary:end -->"
    )


def write_summary() -> None:
    """Rewrite BENCHMARKS.md's summary (between its `summary` markers, when it has them) from its sections."""
    text = REPORT.read_text() if REPORT.exists() else ""
    pattern = re.compile(r"<!-- summary:start -->.*?<!-- summary:end -->", re.S)
    if pattern.search(text):
        new = pattern.sub(lambda _: summary_block(), text)
        if new != text:
            _replace(REPORT, new)


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


README = ROOT / "README.md"
ACCURACY = RESULTS / "accuracy.json"


def model_table() -> str:
    """The README's table of shipped models: weights/MODELS.json (the training record), 300-W common NME from
    benchmarks/results/accuracy.json (benchmarks/accuracy.py), ms a face from BENCHMARKS.md's `frontier` section
    and `fast`'s trust figures from its `trust` section; dlib's 68-point predictor as the reference."""
    from facepoints.model_files import PACKAGE_WEIGHTS
    from facepoints.weights import shipped_models  # torch

    scores = json.loads(ACCURACY.read_text()) if ACCURACY.exists() else {}
    sections = {m.group(1): split_section(m.group(2))[0] for m in SECTION.finditer(REPORT.read_text())}

    def score(labels: str | tuple, boxes: str) -> str:
        labels = (labels,) if isinstance(labels, str) else labels
        hit = next((scores[k] for k in (f"{label} | {boxes}" for label in labels) if k in scores), None)
        return f"{100 * hit['nme_mean']:.2f}%" if hit else "—"

    def trust(name: str) -> str:
        if name != "fast":
            return "— (no trust heads)"
        t = sections.get("trust", "")
        got = [
            cell(t, {"negatives": "all negatives"}, "presence AUROC"),
            cell(t, {"occluder family on test/": "`photo_patch` (held out)"}, "visibility AUROC"),
            cell(t, {"boxes": "RetinaFace boxes*"}, "failure AUROC"),
        ]
        return " / ".join(g or "?" for g in got)

    rows = []
    for i, (name, m) in enumerate(shipped_models().items()):
        labels = (f"facepoints {name} (int8 ONNX)", f"facepoints {name}")  # the default graph: int8 or fp32
        graph = (m.get("trust") or {}).get("int8_onnx") or m.get("int8_onnx") or m.get("onnx") or m
        size = (PACKAGE_WEIGHTS / graph["file"]).stat().st_size / 1e6
        rows.append(
            [
                f"[`{name}`](MODELS.md#{name})" + (" (default)" if i == 0 else ""),
                f"`{m['arch']}`, {m['params'] / 1e3:,.0f}k params",
                f"{size:.1f} MB",
                score(labels, "landmarks"),
                score(labels, "RetinaFace"),
                cell(sections.get("frontier", ""), {"method": labels}, "ms per face") or "—",
                trust(name),
            ]
        )
    dlib = "dlib shape_predictor_68"
    rows.append(
        [
            "dlib's 68-point predictor (reference)",
            "regression trees",
            "99.7 MB",
            score(dlib, "landmarks, in dlib's box convention"),
            score(dlib, "RetinaFace, in dlib's box convention"),
            cell(sections.get("frontier", ""), {"method": dlib}, "ms per face") or "—",
            "—",
        ]
    )
    return table(
        [
            "model",
            "network",
            "file",
            "NME, landmark boxes",
            "NME, RetinaFace boxes",
            "ms a face",
            "presence / visibility / failure AUROC",
        ],
        rows,
    )


def write_readme_models() -> None:
    """Replace the README's model table (between its `models` markers) with `model_table()`."""
    text = README.read_text()
    pattern = re.compile(r"<!-- models:start -->.*?<!-- models:end -->", re.S)
    block = (
        "<!-- models:start -->\n<!-- written by benchmarks/accuracy.py (or `python benchmarks/common.py`, from the "
        "stored results and BENCHMARKS.md); do not edit by hand -->\n" + model_table() + "\n<!-- models:end -->"
    )
    if not pattern.search(text):
        raise SystemExit(f"{README}: no <!-- models:start --> ... <!-- models:end --> markers")
    tmp = README.with_suffix(".tmp")
    tmp.write_text(pattern.sub(lambda _: block, text))
    os.replace(tmp, README)
    print(f"-> {README} [models]")


# --- timing, and the images it runs on ---


def median_ms(fn, repeat: int) -> float:
    """Median wall-clock milliseconds of `fn()` over `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def per_face_ms(predict, images, boxes, repeat: int) -> float:
    """Median ms of `predict(image, one box)`, going round the faces: the landmark step as dlib's predictor call."""
    k = iter(range(10**9))
    return median_ms(lambda: predict(images[(i := next(k) % len(images))], boxes[i][None]), repeat)


def latency_ms(sess: ort.InferenceSession, size: int = 128, repeat: int = 400) -> float:
    """Median ms of one `sess.run` on a (1, 1, size, size) input, after 50 warm-up runs."""
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 1, size, size), np.float32)
    for _ in range(50):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def fastest_ms(timed: list[tuple[ort.InferenceSession, int, int]], rounds: int = 3) -> list[str]:
    """Median latency of each (session, input size, repeats), the fastest of `rounds` interleaved rounds:
    this shared machine slows down for seconds at a time, and one slow spell must not decide a row."""
    best = [min(ms) for ms in zip(*[[latency_ms(s, size, n) for s, size, n in timed] for _ in range(rounds)])]
    return [f"{ms:.3f} ms" for ms in best]


def test_faces(data: str | Path, n: int):
    """The first `n` annotated faces of `data`: their samples, RGB images and landmark boxes (the timing sets)."""
    samples = read_pts_folder(data)[:n]
    images = [load_image(s.image_path) for s in samples]
    return samples, images, np.array([points_box(s.points) for s in samples], np.float32)


def on_canvas(im: np.ndarray) -> np.ndarray:
    """A 300-W crop scaled to 400 px high, centred on a grey 640x480 frame."""
    scale = 400 / im.shape[0]
    im = cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)[:, :600]
    canvas = np.full((480, 640, 3), 110, np.uint8)
    y, x = (480 - im.shape[0]) // 2, (640 - im.shape[1]) // 2
    canvas[y : y + im.shape[0], x : x + im.shape[1]] = im
    return canvas


def make_640x480(samples, n: int, folder: Path) -> list[Path]:
    """One face per 640x480 JPEG."""
    paths = []
    for i, s in enumerate(samples[:n]):
        canvas = on_canvas(load_image(s.image_path))
        p = folder / f"{i:04d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    return paths


# --- the reference predictor, and detections shared between models ---


class DlibShapePredictor:
    """The reference: dlib's 68-point shape predictor (its model file from face_recognition_models) behind the
    landmark predictors' interface."""

    def __init__(self):
        import dlib  # the [dlib] extra; only the benchmarks that compare with dlib load it

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # face_recognition_models warns about pkg_resources on import
            import face_recognition_models

        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self._dlib = dlib

    def predict(self, rgb: np.ndarray, boxes) -> np.ndarray:
        """(N, 4) boxes x1 y1 x2 y2 (given to dlib as they are) -> (N, 68, 2)."""
        rgb = np.ascontiguousarray(rgb)
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
            rect = self._dlib.rectangle(int(round(x1)), int(round(y1)), int(round(x2)) - 1, int(round(y2)) - 1)
            shape = self._predictor(rgb, rect)
            out.append([(p.x, p.y) for p in shape.parts()])
        return np.asarray(out, np.float32).reshape(-1, 68, 2)


class CachedDetector:
    """Runs the detector once per image and times it; replays the boxes for every model."""

    def __init__(self, detector, raw: bool = False):
        self.detector, self.raw, self.cache, self.seconds = detector, raw, {}, []
        self.name = detector.name

    def detect(self, rgb):
        key = hashlib.md5(rgb.tobytes()).hexdigest()
        if key not in self.cache:
            t = time.perf_counter()
            self.cache[key] = self.detector.detect(rgb)
            self.seconds.append(time.perf_counter() - t)
        return self.cache[key]

    def landmark_boxes(self, boxes, angles=None):
        return np.asarray(boxes, np.float64) if self.raw else self.detector.landmark_boxes(boxes, angles)

    def view(self, raw: bool) -> "CachedDetector":
        """The same detections, handed over as the detector drew them (raw) or mapped to landmark boxes."""
        v = CachedDetector(self.detector, raw)
        v.cache, v.seconds = self.cache, self.seconds
        return v


# --- trained weights, judged on held-out faces ---


def held_out_weights(name: str) -> tuple[str, str]:
    """Weights to judge on held-out faces, and how to name them in a report.

    A shipped model trained on every face of train/ (--val-fraction 0) has nothing held out;
    its held-out figures are those of the run that chose its recipe (MODELS.json recipe_run),
    which must be in runs/ (rerun it with the command in MODELS.json if it is not)."""
    import torch  # the [train] extra, as for every function below

    from facepoints.weights import resolve, sha256_file, shipped_models

    path, _ = resolve(name)
    if torch.load(path, map_location="cpu", weights_only=True)["train"]["config"]["val_fraction"] > 0:
        return name, f"`{name}`"
    run = shipped_models().get(name, {}).get("recipe_run")
    recipe = ROOT / "runs" / str(run) / "model.pt"
    if not run or not recipe.exists():
        raise SystemExit(
            f"{name}: trained on every face of train/, nothing held out; its recipe run runs/{run} is missing "
            "(docs/experiments.md has its command)"
        )
    return str(recipe), (
        f"`{name}`'s recipe run (`runs/{run}/model.pt` sha256 {sha256_file(recipe)[:16]}…: "
        "same settings, 10% of train/ held out)"
    )


def predict(model, x: torch.Tensor) -> np.ndarray:
    """A torch landmark model's points for ready crops `x`, in batches of 64."""
    import torch  # the [train] extra

    with torch.no_grad():
        return torch.cat([model.decode(model.eval()(x[i : i + 64])) for i in range(0, len(x), 64)]).numpy()


def macs(model: torch.nn.Module, size: int = 128) -> int:
    """Multiply-adds of one forward pass on a (1, 1, size, size) input (convolutions and linear layers)."""
    import torch  # the [train] extra

    total = 0

    def hook(m, _, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, size, size))
    for h in hooks:
        h.remove()
    return total


def session(onnx: bytes | str, threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime CPU session on `threads` intra-op threads."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(onnx, opts, providers=["CPUExecutionProvider"])


def onnx_bytes(model: torch.nn.Module, size: int = 128) -> bytes:
    """The model's ONNX graph (network + decode), as bytes."""
    from facepoints.export import export_onnx  # torch
    from facepoints.weights import ModelSpec

    with tempfile.TemporaryDirectory() as d:
        return export_onnx(
            model, ModelSpec(arch="candidate", input_size=size, margin=1.1), Path(d) / "m.onnx"
        ).read_bytes()


def fp32_and_int8(model, spec: ModelSpec, calibration: np.ndarray, folder: str) -> dict[str, ort.InferenceSession]:
    """The model's fp32 ONNX graph and its int8 graph as `scripts/quantize_weights.py` makes it; both raw
    (no output_shift), so the two compare like for like."""
    from facepoints.export import export_onnx, quantize_int8  # torch

    f32 = export_onnx(model, spec, Path(folder) / "f32.onnx", calibrated=False)
    q8 = quantize_int8(model, spec, calibration, Path(folder) / "int8.onnx")
    return {"fp32": session(str(f32)), "int8 (static, per-channel, Conv only)": session(str(q8))}


def onnx_nme(sess: ort.InferenceSession, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean NME of an ONNX graph on ready crops `x` against points `y`."""
    p = np.concatenate([sess.run(None, {"crops": x[i : i + 64].numpy()})[0] for i in range(0, len(x), 64)])
    return float(nme(p, y).mean())


def held_out_and_test(weights: Path, run_split: RunSplit, train: list, test: list, det) -> list[dict]:
    """NME reports of `weights` (fp32, torch) on the run's held-out faces and on test/, each with landmark
    boxes and with `det`'s boxes, cropped from the images as the predictor does."""
    predictor = LandmarkPredictor(str(weights), backend="torch")
    held_out = [train[i] for i in run_split.val_idx]
    return [
        evaluate(faces, PointsOf(predictor.predict, det), boxes).report()
        for faces in (held_out, test)
        for boxes in ("landmarks", "detector")
    ]


def int8_cost(weights: Path, run_split: RunSplit) -> tuple[float, float]:
    """Held-out NME (%) of the weights' fp32 ONNX graph and of the int8 graph scripts/quantize_weights.py would
    ship (200 of the run's training crops calibrate it), on crops cut from the run's training cache."""
    from facepoints.weights import load_model  # torch

    model, spec = load_model(str(weights))
    (xt, _), (xv, yv) = run_split.train_crops(), run_split.val_crops()
    with tempfile.TemporaryDirectory() as d:
        f32, q8 = (100 * onnx_nme(s, xv, yv) for s in fp32_and_int8(model, spec, xt[:200].numpy(), d).values())
    return f32, q8


STAMP = re.compile(r"`([\w.-]+)`\s+=\s+([\w.-]+)\s+sha256\s+([0-9a-f]{8,64})")  # stamps are wrapped


def earlier_versions() -> dict[str, list[str]]:
    """Weights file -> the sha256 of its earlier shipped versions (MODELS.json "earlier", of a model or its heads)."""
    from facepoints.model_files import shipped_models

    out: dict[str, list[str]] = {}
    for entry in shipped_models().values():
        for part in (entry, entry.get("trust") or {}):
            for old in part.get("earlier", []):
                out.setdefault(part["file"], []).append(old["sha256"])
    return out


def stale_stamps(text: str, earlier: bool = False) -> list[str]:
    """One line per section of BENCHMARKS.md whose stamp names a weights file that is no longer shipped, or whose
    shipped file's sha256 no longer starts as the stamp says: figures of weights that are gone. With `earlier`
    (docs/experiments.md, the record of how the models were chosen) a stamp may also name an earlier version of a
    shipped file, as MODELS.json lists them under "earlier" (git history holds the file)."""
    from facepoints.model_files import PACKAGE_WEIGHTS, sha256_file  # no torch: CI runs this in the lean layer

    sections = re.findall(r"<!-- ([\w-]+):start -->(.*?)<!-- \1:end -->", text, re.S)
    actual: dict[str, str] = {}
    problems = []
    for name, body in sections:
        for model, file, prefix in STAMP.findall(body.split("Weights:")[-1] if "Weights:" in body else ""):
            path = PACKAGE_WEIGHTS / file
            if file not in actual:
                actual[file] = sha256_file(path) if path.exists() else ""
            if earlier and any(sha.startswith(prefix) for sha in earlier_versions().get(file, ())):
                continue
            if not actual[file].startswith(prefix):
                now = actual[file][: len(prefix)] or "no such file"
                problems.append(f"BENCHMARKS.md [{name}]: `{model}` = {file} sha256 {prefix}…, shipped now: {now}")
    return problems


def check() -> list[str]:
    """What CI's `python benchmarks/common.py --check` refuses: figures of weights that no longer ship (in either
    report), a BENCHMARKS.md line over MAX_LINE characters, and a summary that its sections no longer give."""
    problems = []
    for path in REPORTS:
        if path.exists():
            found = stale_stamps(path.read_text(), earlier=path == EXPERIMENTS)
            problems += [p.replace("BENCHMARKS.md", path.name, 1) for p in found]
    text = REPORT.read_text()
    problems += [
        f"BENCHMARKS.md:{i}: {len(line)} characters (at most {MAX_LINE}; shorten the script's cells or split its table)"
        for i, line in enumerate(text.split("\n"), 1)
        if len(line) > MAX_LINE
    ]
    problems += summary_rows()[1]
    summary = re.search(r"<!-- summary:start -->.*?<!-- summary:end -->", text, re.S)
    if not summary or summary.group(0) != summary_block():
        problems.append("BENCHMARKS.md: the summary differs from its sections: run python benchmarks/summary.py")
    return problems


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--check"]:  # CI: every figure was made with the weights that ship, and the report reads
        problems = check()
        print("\n".join(problems) or "BENCHMARKS.md, docs/experiments.md: every section's weights are the shipped ones")
        sys.exit(1 if problems else 0)
    if sys.argv[1:] == ["--reflow"]:  # sections written by an older common.py, in today's format; nothing measured
        for path in REPORTS:
            if path.exists():
                _replace(path, reflow(path.read_text()))
        write_summary()
        sys.exit(0)
    write_readme_models()  # from the stored results: no measuring
