"""`facepoints VERB ...`: one verb per job (detect, train, evaluate, export)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from .errors import FacepointsError


def _add_train(sub):
    p = sub.add_parser("train", help="train a landmark model on 68-point data")
    p.add_argument("--data", required=True, help="folder of image+.pts pairs, or a dlib XML file")
    p.add_argument("--out", default="runs/train", help="run folder: checkpoints, progress.gif, curves.png, model.pt")
    p.add_argument("--model", dest="arch", default="xception", help="architecture: xception or pipnet_small")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.0008)
    p.add_argument("--optimizer", choices=["adam", "adamw"], default="adam")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    p.add_argument("--blur", type=float, default=0.0, help="probability of Gaussian blur augmentation")
    p.add_argument("--occlusion", type=float, default=0.0, help="probability of a random occluding rectangle")
    p.add_argument("--rotation", type=float, default=30.0, help="max rotation augmentation, degrees")
    p.add_argument("--no-flip", action="store_true", help="disable mirror augmentation")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.set_defaults(func=_run_train)


def _run_train(args):
    from .augment import AugmentConfig
    from .models import MODELS
    from .train import TrainConfig, train

    if args.arch not in MODELS:
        raise FacepointsError(f"unknown architecture {args.arch!r}; choose from {', '.join(MODELS)}")
    aug = AugmentConfig(rotation=args.rotation, flip=not args.no_flip, blur=args.blur, occlusion=args.occlusion)
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(augment=aug, **{k: v for k, v in vars(args).items() if k in names and k != "augment"})
    train(cfg, resume=args.resume)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facepoints", description="68-point face landmarks on a plain CPU")
    sub = parser.add_subparsers(dest="verb", required=True)
    _add_train(sub)
    for add in _EXTRA_VERBS:
        add(sub)
    return parser


_EXTRA_VERBS: list = []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except FacepointsError as e:
        print(f"facepoints: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("facepoints: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
