"""`facepoints export`: a model -> an ONNX file (export.export_onnx)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError, require
from ..io_utils import check_outputs


def add(sub):
    p = sub.add_parser("export", help="export a model to ONNX (dynamic batch)")
    p.add_argument("--model", default=None, help="shipped model name or .pt path")
    p.add_argument("-o", "--output", required=True, help="output .onnx path")
    p.add_argument(
        "--no-trust",
        action="store_true",
        help="points only, without the trust outputs (presence, visibility, log_b) of a model that has them",
    )
    p.set_defaults(func=run)


def run(args):
    require("torch", "export", "train")
    require("onnx", "export", "train")
    from ..export import export_onnx, export_trust_onnx  # the verb's own heavy imports: commands/__init__.py
    from ..model_files import DEFAULT_MODEL, shipped_models
    from ..trust import load_trust
    from ..weights import load_model, resolve

    if Path(args.output).suffix.lower() != ".onnx":
        raise UsageError(f"-o {args.output}: an ONNX file needs the .onnx suffix")
    check_outputs([args.output], inputs=[resolve(args.model)[0]])
    model, spec = load_model(args.model)
    name = args.model or DEFAULT_MODEL
    if not args.no_trust and "trust" in shipped_models().get(name, {}):
        head, calibration, _ = load_trust(name)
        path = export_trust_onnx(model, head, calibration, spec, args.output)
        outputs = (
            "points: batch x 68 x 2, crop pixels, output_shift applied; presence: batch, visibility: "
            "batch x 68 (probabilities); log_b: batch x 68, expected error in crop pixels by the knots in "
            "the metadata"
        )
    else:
        path = export_onnx(model, spec, args.output)
        outputs = "points: batch x 68 x 2, crop pixels, output_shift applied"
    print(
        f"{spec.arch} -> {path} (input crops: batch x 1 x {spec.input_size} x {spec.input_size}, gray in [0, 1]; "
        f"outputs {outputs}; settings in the ONNX metadata)"
    )
