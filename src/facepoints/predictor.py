"""Crops -> model -> points: runs a landmark model (PyTorch or ONNX Runtime) on face boxes.

Boxes given here are in the landmark-box convention (the tight box of the 68 points);
detectors convert their own boxes to it first (see detectors.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .crop import crop_face, mirror_points, preprocess, to_gray
from .errors import FacepointsError, require
from .graph_choice import GraphChoice, choice_key, choose_graph, cpu_id, int8_is_exact, optimized_copy
from .io_utils import atomic_write_text
from .landmarks import FLIP
from .metrics import expected_error
from .model_files import (
    DEFAULT_MODEL,
    TRUST_CALIBRATION,
    TRUST_OUTPUTS,
    ModelSpec,
    OnnxFile,
    check_file,
    resolve,
    sha256_file,
    shift_in_graph,
    shipped_graphs,
    shipped_models,
    shipped_trust_graphs,
    spec_from_onnx_metadata,
)


@dataclass
class Landmarks:
    """A batch of faces' answers: points (N, 68, 2) float32 and, from a model with trust heads (else None),
    presence (N,) and visibility (N, 68) probabilities in [0, 1] and uncertainty (N, 68), the expected point
    error. In crop pixels from `run_crops_trust`, image pixels from `predict_landmarks`."""

    points: np.ndarray
    presence: np.ndarray | None = None
    visibility: np.ndarray | None = None
    uncertainty: np.ndarray | None = None

    def take(self, keep) -> "Landmarks":
        def pick(a):
            return None if a is None else a[keep]

        return Landmarks(self.points[keep], pick(self.presence), pick(self.visibility), pick(self.uncertainty))


class LandmarkPredictor:
    """One landmark model on face crops: `spec` says how to crop and read it, `backend` runs it.

    A shipped model runs one of its shipped ONNX graphs and needs no torch; so does an exported .onnx file given by
    path. `int8`: True or False runs the int8 or the fp32 graph; None (the default) runs whichever is faster on this
    CPU, timed at first use and remembered per CPU (graph_choice.py); `graph_choice` says which and why. With
    `trust`, the choice is between the two graphs with trust outputs. A .pt file, and backend="torch", need
    PyTorch: the ONNX Runtime path then exports the .pt once into the user cache."""

    def __init__(
        self,
        model: str | None = None,
        backend: str = "auto",
        threads: int | None = None,
        flip_test: bool = False,
        int8: bool | None = None,
        trust: bool = True,
    ):
        if backend not in ("auto", "onnxruntime", "torch"):
            raise FacepointsError(f"unknown backend {backend!r}; choose auto, onnxruntime or torch")
        self.flip_test = flip_test
        self.threads = threads
        self.model = self.head = self.session = None  # model and head: the torch backend's (and export's) only
        self.trust_head = None  # the torch backend's TrustOutputs, when the model ships trust heads
        self.calibration: dict | None = None  # expected_error's knots, when the model has trust outputs
        path, _ = resolve(model)
        shipped = path.suffix == ".pt"
        fp32, int8_graph = shipped_graphs(model or DEFAULT_MODEL) if shipped else (None, None)
        # a model with trust heads ships graphs with the extra outputs; the plain ones stay for trust=False
        fp32_t, int8_t = shipped_trust_graphs(model or DEFAULT_MODEL) if shipped and trust else (None, None)
        session = None
        self.graph_choice = GraphChoice("fp32", "only")
        if int8 is None and backend != "torch" and (fp32_t or fp32) and (int8_t if fp32_t else int8_graph):
            ort = _onnxruntime()
            self.graph_choice, session = self._choose(ort, fp32_t or fp32, int8_t if fp32_t else int8_graph)
        elif int8 is not None and int8_graph is not None and backend != "torch":
            self.graph_choice = GraphChoice("int8" if int8 else "fp32", "user")
        self.int8 = self.graph_choice.int8
        graph = (int8_t or int8_graph) if self.int8 else (fp32_t or fp32)
        if backend != "torch" and (graph is not None or path.suffix.lower() == ".onnx"):
            ort = _onnxruntime()
            graph = graph or OnnxFile(str(path), "")
            self.session = session or (self._open_shipped(ort, graph) if graph.sha256 else self._open(ort, graph.path))
            meta = self.session.get_modelmeta().custom_metadata_map
            spec = spec_from_onnx_metadata(meta, path)
            self.spec = ModelSpec(**{**spec.__dict__, "onnx": fp32, "int8_onnx": int8_graph})
        else:
            if path.suffix.lower() == ".onnx":
                raise FacepointsError(f"{path}: an ONNX graph runs on ONNX Runtime (--backend auto or onnxruntime)")
            require("torch", f"{path}: a .pt model" if backend != "torch" else "the torch backend", "train")
            # torch: only the torch backend and .pt files need it
            from .export import PointsHead
            from .weights import load_model

            self.model, self.spec = load_model(model)
            if backend != "torch":
                self.session = self._ort_session(required=backend == "onnxruntime")
            self.head = PointsHead(self.model).eval()  # raw decode; run_crops subtracts the spec's shift
            if trust and shipped and self.session is None:
                self._torch_trust(model or DEFAULT_MODEL)
        self.backend = "onnxruntime" if self.session is not None else "torch"
        self._input = self.session.get_inputs()[0].name if self.session is not None else ""  # read once: not free
        self.session_calibrated = self.session is not None and shift_in_graph(self.session)
        if self.session is not None:
            outputs = [o.name for o in self.session.get_outputs()]
            meta = self.session.get_modelmeta().custom_metadata_map
            if tuple(outputs[:4]) == TRUST_OUTPUTS and TRUST_CALIBRATION in meta:
                self.calibration = json.loads(meta[TRUST_CALIBRATION])

    def _torch_trust(self, name: str) -> None:
        """The shipped trust heads on the torch model (same outputs as the trust graph)."""
        if "trust" in shipped_models().get(name, {}):
            self.use_trust_heads(name)

    def use_trust_heads(self, path_or_model: str) -> None:
        """Run these trust heads (a trust-head file, or a shipped model's name) on the torch backend's model: how a
        candidate head is judged before it ships (benchmarks/trust_stress.py --trust)."""
        if self.model is None:
            raise FacepointsError("trust heads from a file need the torch backend (backend='torch')")
        # torch: the torch backend's only, loaded with its model
        from .models.trust import TrustOutputs
        from .trust import load_trust

        head, self.calibration, _ = load_trust(path_or_model)
        self.trust_head = TrustOutputs(self.model, head).eval()

    @property
    def has_trust(self) -> bool:
        """Whether this model gives presence, visibility and uncertainty (a model with trust heads)."""
        return self.calibration is not None

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def margin(self) -> float:
        return self.spec.margin

    def _choose(self, ort, fp32: OnnxFile, int8: OnnxFile) -> tuple[GraphChoice, Any]:
        """The faster of the two graphs on this CPU (cached, else timed on one thread), and the chosen graph's
        session when timing opened it with this predictor's own settings (else None: opened by the caller)."""
        sessions: dict[str, Any] = {}

        def runs() -> dict[str, Callable[[], object]]:
            for name, graph in (("fp32", fp32), ("int8", int8)):
                sessions[name] = self._open_shipped(ort, graph, threads=1)
            size = sessions["fp32"].get_inputs()[0].shape[-1]  # a shipped graph's input is (batch, 1, S, S)
            crop = np.random.default_rng(0).random((1, 1, size, size), np.float32)
            return {n: (lambda s=s: s.run(None, {s.get_inputs()[0].name: crop})) for n, s in sessions.items()}

        key = choice_key(cpu_id(), ort.__version__, fp32.sha256, int8.sha256)
        choice = choose_graph(key, runs, int8_exact=int8_is_exact())
        same_threads = (self.threads or min(4, os.cpu_count() or 1)) == 1
        return choice, sessions.get(choice.graph) if same_threads else None

    def _open_shipped(self, ort, graph: OnnxFile, threads: int | None = None):
        """A shipped graph's session (its checksum checked), loaded from ONNX Runtime's optimized copy in the cache
        when there is a sound one, else made from the shipped file and its optimized copy saved for next time.
        A damaged or foreign copy is made again; a cache that cannot be written costs only the faster load."""
        path = check_file(graph)
        copy = optimized_copy(graph.sha256, ort.__version__)
        digest = copy.with_name(copy.name + ".sha256")
        try:
            if copy.exists() and digest.exists() and digest.read_text().strip() == sha256_file(copy):
                opts = self._ort_options(ort, threads)
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done when it was saved
                return ort.InferenceSession(str(copy), opts, providers=["CPUExecutionProvider"])
        except Exception:  # ONNX Runtime's own exception types: a damaged copy is made again
            pass
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            opts = self._ort_options(ort, threads)
            opts.optimized_model_filepath = str(tmp)
            opts.log_severity_level = 3  # its warning that the copy suits this CPU only: the key says so already
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            atomic_write_text(digest, sha256_file(tmp) + "\n")
            os.replace(tmp, copy)
            return session
        except Exception:  # ORT cannot write the copy (cache not writable): the shipped file alone, as before
            return self._open(ort, path, threads)
        finally:
            if tmp.is_file():
                tmp.unlink()

    def _open(self, ort, path: str, threads: int | None = None):
        try:
            opts = self._ort_options(ort, threads)
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime's own exception types: a damaged or foreign file
            first = (str(e).strip().splitlines() or [""])[0][:160]
            raise FacepointsError(f"{path}: not a readable ONNX graph ({e.__class__.__name__}: {first})") from None

    def _ort_session(self, required: bool):
        """An ONNX Runtime session of the spec's shipped graph, or of the .pt exported into the user cache."""
        ort = _onnxruntime()
        shipped = self.spec.int8_onnx if self.int8 else self.spec.onnx
        if shipped is not None:
            return self._open_shipped(ort, shipped)
        # torch and the exporter: only a .pt model gets here
        from .export import export_onnx_cached

        try:
            path = export_onnx_cached(self.model, self.spec)
        except Exception as e:  # no onnx exporter available: fall back to torch
            if required:
                raise FacepointsError(f"cannot build the ONNX model ({e.__class__.__name__}: {e})") from None
            return None
        return self._open(ort, path)

    def _ort_options(self, ort, threads: int | None = None):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or self.threads or min(4, os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        return opts

    def _calibrated(self, x: np.ndarray) -> np.ndarray:
        """Model inputs -> calibrated points (output_shift removed), whichever backend runs."""
        return self._outputs(x)[0]

    def _outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Model inputs -> [calibrated points] or, with trust, [points, presence, visibility, log b]."""
        if self.session is not None:
            outs = self.session.run(None, {self._input: np.ascontiguousarray(x)})
            if not self.has_trust:
                outs = outs[:1]
            if not self.session_calibrated:
                outs[0] = outs[0] - np.asarray(self.spec.output_shift, np.float32)
            return outs
        import torch  # the torch backend's: loaded with its model in __init__

        # torch's thread count is process-wide: set it for this call only, so a predictor asked for 1 thread
        # does not slow down (or change the float sums of) every other torch user in the process
        shift = np.asarray(self.spec.output_shift, np.float32)
        with torch.inference_mode(), _torch_threads(self.threads):
            crops = torch.from_numpy(np.ascontiguousarray(x))
            if self.trust_head is None:
                return [self.head(crops).numpy() - shift]
            points, presence, vis, log_b = self.trust_head(crops)
            return [points.numpy() - shift, torch.sigmoid(presence).numpy(), torch.sigmoid(vis).numpy(), log_b.numpy()]

    def run_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S) uint8 gray crops -> (N, 68, 2) calibrated points in crop pixels."""
        return self.run_crops_trust(crops).points

    def run_crops_trust(self, crops: np.ndarray) -> Landmarks:
        """(N, S, S) uint8 gray crops -> calibrated points in crop pixels and, with trust heads, presence,
        visibility and uncertainty (crop pixels). Under flip_test the two views' answers are averaged: points
        (mirrored back), and presence, visibility and uncertainty alike (per point, matched left <-> right)."""
        n = len(crops)
        if n == 0:
            empty = np.zeros((0, 68), np.float32) if self.has_trust else None
            return Landmarks(
                np.zeros((0, 68, 2), np.float32), None if empty is None else np.zeros(0, np.float32), empty, empty
            )
        x = preprocess(crops)
        outs = self._outputs(np.concatenate([x, x[..., ::-1]]) if self.flip_test else x)
        points = outs[0]
        if self.flip_test:
            # the mirrored crop's answer, mirrored back: calibrated points sit annotation_offset - output_shift
            # from what they mark, and keep that direction in a mirror
            offset_x = self.spec.annotation_offset[0] - self.spec.output_shift[0]
            points = (points[:n] + mirror_points(points[n:], self.input_size, offset_x)) / 2
        result = Landmarks(points.astype(np.float32))
        if self.calibration is not None:
            presence, vis = outs[1], outs[2]
            unc = expected_error(outs[3], self.calibration)
            if self.flip_test:
                presence = (presence[:n] + presence[n:]) / 2
                vis = (vis[:n] + vis[n:][:, FLIP]) / 2
                unc = (unc[:n] + unc[n:][:, FLIP]) / 2
            result.presence = np.asarray(presence, np.float32)
            result.visibility = np.asarray(vis, np.float32)
            result.uncertainty = np.asarray(unc, np.float32)
        return result

    def predict(self, image: np.ndarray, boxes, angles=None) -> np.ndarray:
        """RGB image and (N, 4) landmark-convention boxes -> (N, 68, 2) points in image pixels.

        `angles`: each face's roll in degrees, to crop it upright (boxes then in its upright frame)."""
        return self.predict_landmarks(image, boxes, angles).points

    def predict_landmarks(self, image: np.ndarray, boxes, angles=None) -> Landmarks:
        """`predict`'s points, and with trust heads presence, visibility and uncertainty in image pixels (crop
        pixels x crop side / input size)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        angles = np.zeros(len(boxes)) if angles is None else np.asarray(angles, np.float64).reshape(-1)
        # gray after the warp: cheaper
        crops = [crop_face(image, tuple(b), self.input_size, self.margin, a) for b, a in zip(boxes, angles)]
        if not crops:
            return self.run_crops_trust(np.zeros((0, self.input_size, self.input_size), np.uint8))
        out = self.run_crops_trust(np.stack([to_gray(c.image) for c in crops]))
        out.points = np.stack([c.to_source(p) for c, p in zip(crops, out.points)]).astype(np.float32)
        if out.uncertainty is not None:  # image px per crop px: the crop matrix's inverse scale
            scale = np.array([1 / np.sqrt(abs(np.linalg.det(c.matrix[:, :2]))) for c in crops], np.float32)
            out.uncertainty = (out.uncertainty * scale[:, None]).astype(np.float32)
        return out

    @property
    def name(self) -> str:
        return self.spec.name


class _torch_threads:
    """torch's thread count is process-wide: set it for one call only."""

    def __init__(self, threads: int | None):
        self.threads = threads

    def __enter__(self):
        import torch  # the torch backend's: loaded with its model

        self.previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        import torch  # the torch backend's: loaded with its model

        torch.set_num_threads(self.previous)
        return False


def _onnxruntime():
    # a core dependency; imported on first use as it is slow to load
    import onnxruntime

    return onnxruntime


__all__ = ["LandmarkPredictor", "Landmarks", "ModelSpec", "expected_error"]
