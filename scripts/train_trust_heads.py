"""Train the trust heads (presence, visibility, expected error; issue 23) on a shipped model's frozen trunk,
calibrate the expected error on the run's held-out faces, and write `<out>/<model>.trust.pt`.

Run: nice -n 10 python scripts/train_trust_heads.py fast --epochs 40 --out runs/trust-fast [--resume]
     [--data ../shared/data/300w/train] [--workers 1] [--max-minutes 25]
Progress goes to <out>/train.log (and stdout); `<out>/last.pt` is checkpointed atomically every epoch, so a
killed run resumes with --resume. A run stopped by --max-minutes also resumes.
Ship the result: cp <out>/fast.trust.pt src/facepoints/weights/ and record its sha256 in MODELS.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="fast")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default="runs/trust-fast")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "300w" / "train"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the data loader's workers come on top)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--head", default="GridTrustHead", choices=["GridTrustHead", "TrustHead"])
    ap.add_argument("--mass", action="store_true", help="GridTrustHead: the window's mass as a second statistic")
    ap.add_argument("--detail", action="store_true", help="GridTrustHead: the stride-4 map read at the point")
    ap.add_argument("--patch", action="store_true", help="GridTrustHead: 3x3 gray values around the point")
    ap.add_argument("--mix", action="store_true", help="GridTrustHead: each point hears the others")
    ap.add_argument(
        "--blur-max",
        type=float,
        default=None,
        help="blur positives and negatives alike with sigma up to this (crop px; default: the augmentation's 2.0), "
        "so that a soft face still reads as a face",
    )
    ap.add_argument(
        "--trunk-lr",
        type=float,
        default=None,
        help="joint training: the trunk learns too, at this rate, with its landmark loss beside the heads' "
        "(writes <out>/<model>.pt beside the heads)",
    )
    ap.add_argument("--landmark-weight", type=float, default=1.0, help="joint training: the landmark loss's weight")
    ap.add_argument("--init-head", default=None, help="a trust file whose head to start from (default: a fresh head)")
    args = ap.parse_args(argv)

    from facepoints.checkpoint import RunSplit
    from facepoints.detectors import create_detector
    from facepoints.negatives import HIT_THRESHOLD, POSITIVE_GEOMETRY
    from facepoints.trust import _base_weights, calibrate, save_trust, train_trust_heads
    from facepoints.weights import sha256_file

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a", buffering=1)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")

    log(f"command: {' '.join(sys.argv)}")
    t = time.time()
    result = train_trust_heads(
        args.model,
        out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        data=args.data,
        resume=args.resume,
        workers=args.workers,
        threads=args.threads,
        seed=args.seed,
        max_minutes=args.max_minutes,
        log=log,
        head_kind=args.head,
        head_kwargs={
            "mass": args.mass,
            "detail_channels": -1 if args.detail else 0,
            "patch": args.patch,
            "mix": args.mix,
        }
        if args.head == "GridTrustHead"
        else {},
        hit_detector=create_detector("retinaface", threshold=HIT_THRESHOLD),
        geometry=POSITIVE_GEOMETRY
        if args.blur_max is None
        else dataclasses.replace(POSITIVE_GEOMETRY, blur=0.4, blur_max=args.blur_max),
        trunk_lr=args.trunk_lr,
        landmark_weight=args.landmark_weight,
        init_head=args.init_head,
    )
    minutes = (time.time() - t) / 60
    if not result["complete"]:
        log(f"not finished (epoch {result['epoch']} of {args.epochs}); rerun with --resume")
        return 2
    command = "python scripts/train_trust_heads.py " + " ".join(argv if argv is not None else sys.argv[1:])
    model, spec, sha = _base_weights(args.model)
    split = RunSplit.from_config(spec.train_config, args.data)
    if args.trunk_lr is not None:  # the tuned trunk is a new landmark model: its own file, shift and sha256
        model = result["model"]
        weights = out / f"{args.model}.pt"
        spec = save_tuned_trunk(weights, model, spec, split, args, minutes, command)
        sha = sha256_file(weights)
        log(f"wrote {weights} sha256 {sha}; held-out NME {spec.train['val_nme']:.5f}, output_shift {spec.output_shift}")
    cal = calibrate(model, result["head"], spec, split, log=log)
    meta = {
        "command": command,
        "epochs": args.epochs,
        "history": result["history"],
        "session_minutes": round(minutes, 1),
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d"),
        "data": "training faces of the model's run (its held-out 10% never trained on; used for calibration)",
    }
    path = out / f"{args.model}.trust.pt"
    save_trust(path, result["head"], cal, args.model, sha, meta)
    log(f"wrote {path} sha256 {sha256_file(path)} ({path.stat().st_size} bytes)")
    log(json.dumps(cal))
    return 0


def save_tuned_trunk(path: Path, model, spec, split, args, minutes: float, command: str):
    """The jointly trained trunk as a weights file like the one it started from: its output_shift measured again
    on un-augmented training faces (as `facepoints train` does), its held-out NME, the joint run recorded."""
    from facepoints.config import config_from_dict
    from facepoints.metrics import nme
    from facepoints.weights import load_model, save_weights

    xt, tt = split.train_crops()
    xv, tv = split.val_crops()
    with torch.no_grad():
        pt = torch.cat([model.decode(model(xt[i : i + 256])) for i in range(0, len(xt), 256)]).numpy()
        pv = torch.cat([model.decode(model(xv[i : i + 256])) for i in range(0, len(xv), 256)]).numpy()
    shift = [round(float(v), 4) for v in (pt - tt).mean((0, 1))]
    val_nme = float(nme(pv - np.asarray(shift), tv).mean())
    cfg = config_from_dict(spec.train_config)
    old = torch.load(spec.path, map_location="cpu", weights_only=True)["train"]
    meta = {k: v for k, v in old.items() if k != "config"} | {
        "output_shift": shift,
        "val_nme": val_nme,
        "joint": {
            "command": command,
            "base_val_nme": old.get("val_nme"),
            "trunk_lr": args.trunk_lr,
            "landmark_weight": args.landmark_weight,
            "epochs": args.epochs,
            "minutes": round(minutes, 1),
        },
    }
    save_weights(path, model, cfg, meta)
    return load_model(str(path))[1]


def _machine() -> str:
    from facepoints.provenance import machine

    return machine()


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
