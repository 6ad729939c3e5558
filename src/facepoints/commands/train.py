"""`facepoints train`: options -> TrainConfig -> train.train (or --resume a run)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..annotations import dataset_fingerprint, same_dataset
from ..config import ARCHITECTURES, AugmentConfig, TrainConfig, config_from_dict
from ..errors import FacepointsError, UsageError, require
from .options import (
    AUGMENT,
    TRAIN,
    degrees,
    fraction,
    margin,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)


def add(sub):
    p = sub.add_parser("train", help="train a landmark model on 68-point data")
    p.add_argument("--data", help="folder of image+.pts pairs, or a dlib XML file (not needed with --resume)")
    p.add_argument(
        "-o", "--out", default=TRAIN["out"], help="run folder: checkpoints, progress.gif, curves.png, model.pt"
    )
    p.add_argument(
        "--arch",
        "--model",
        dest="arch",
        default=TRAIN["arch"],
        choices=ARCHITECTURES,
        metavar="ARCH",
        help=f"architecture: {', '.join(ARCHITECTURES)} (--model: the same option, another name)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs to train (default {TRAIN['epochs']}); with --resume: train on up to this epoch",
    )
    p.add_argument("--batch-size", type=positive_int, default=TRAIN["batch_size"])
    p.add_argument("--lr", type=positive_float, default=TRAIN["lr"])
    p.add_argument("--optimizer", choices=["adam", "adamw"], default=TRAIN["optimizer"])
    p.add_argument("--weight-decay", type=non_negative_float, default=TRAIN["weight_decay"])
    p.add_argument("--schedule", choices=["constant", "cosine"], default=TRAIN["schedule"])
    p.add_argument("--warmup-epochs", type=non_negative_float, default=TRAIN["warmup_epochs"])
    p.add_argument(
        "--ema",
        type=fraction,
        default=TRAIN["ema"],
        help="moving average of the weights, decay per step (e.g. 0.998); 0 = off",
    )
    p.add_argument(
        "--val-fraction",
        type=fraction,
        default=TRAIN["val_fraction"],
        help="share of faces held out to validate and select the epoch; 0 = train on every face, keep the last epoch",
    )
    p.add_argument(
        "--margin", type=margin, default=TRAIN["margin"], help="crop side as a multiple of the face box's longer side"
    )
    p.add_argument(
        "--cache-side",
        type=positive_int,
        default=TRAIN["cache_side"],
        help="px of the source crops cached for training (2.2x the face box)",
    )
    p.add_argument("--seed", type=non_negative_int, default=TRAIN["seed"])
    p.add_argument("--workers", type=non_negative_int, default=TRAIN["workers"])
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=TRAIN["precision"])
    p.add_argument(
        "--blur", type=probability, default=AUGMENT["blur"], help="probability of Gaussian blur augmentation"
    )
    p.add_argument(
        "--occlusion",
        type=probability,
        default=AUGMENT["occlusion"],
        help="probability of a random occluding rectangle",
    )
    p.add_argument("--rotation", type=degrees, default=AUGMENT["rotation"], help="max rotation augmentation, degrees")
    p.add_argument(
        "--shift",
        type=non_negative_float,
        default=AUGMENT["shift"],
        help="max box-centre shift augmentation, fraction of the crop side",
    )
    p.add_argument(
        "--shift-x",
        type=non_negative_float,
        default=AUGMENT["shift_x"],
        help="max shift across, if it should differ from --shift",
    )
    p.add_argument(
        "--scale-jitter",
        type=non_negative_float,
        default=AUGMENT["scale"],
        help="crop side multiplied by exp(U(-s, s))",
    )
    p.add_argument("--no-flip", action="store_true", help="disable mirror augmentation")
    p.add_argument(
        "--ignore-annotation-offsets",
        dest="annotation_offsets",
        action="store_false",
        help="mirror the points as written, not what they mark (the 300-W manifest's 1-based offsets)",
    )
    p.add_argument(
        "--teacher",
        default=TRAIN["teacher"],
        help="distil: a trained model (shipped name, e.g. accurate, or a .pt file) whose flip-tested points on each "
        "training face are blended into the targets",
    )
    p.add_argument(
        "--teacher-weight",
        type=probability,
        default=TRAIN["teacher_weight"],
        help="with --teacher: 0 = the labels, 1 = the teacher's points",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last complete epoch, with its saved settings",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over the processes torchrun starts (implied under torchrun); --batch-size stays the "
        "global batch",
    )
    p.set_defaults(func=run)


# flattened TrainConfig field -> its option, where the names differ
OPTION_NAMES = {
    "arch": "arch",
    "augment.scale": "scale-jitter",
    "augment.flip": "no-flip",
    "annotation_offsets": "ignore-annotation-offsets",
}


def _check_resume_options(args) -> None:
    """--resume takes the run's saved settings; an option set to something else is refused, not ignored.
    --epochs is the exception: it extends (or shortens, if not yet reached) the run. --data may name the
    run's dataset by another path, or where it was moved (annotations.same_dataset)."""
    from ..checkpoint import saved_run  # torch: commands/__init__.py

    out = Path(args.out)
    if not any((out / name).exists() for name in ("last.pt", "best.pt", "config.json")):
        return  # nothing saved yet: train.prepare_run starts the run (or says there is nothing to resume)

    def flat(cfg):
        d = asdict(cfg)
        return {
            **{k: v for k, v in d.items() if k != "augment"},
            **{f"augment.{k}": v for k, v in d["augment"].items()},
        }

    from ..cli import build_parser  # the whole parser, for the options' defaults as parsed
    from ..train import _teacher_path  # torch, as above

    asked, default = flat(train_config(args)), flat(train_config(build_parser().parse_args(["train"])))
    asked["teacher"] = _teacher_path(asked["teacher"])  # the saved one is absolute (or a shipped name)
    state, saved_config = saved_run(args.out)
    saved = flat(config_from_dict(saved_config))
    differ = [
        k for k in asked if k not in ("epochs", "out", "data") and asked[k] != default[k] and asked[k] != saved.get(k)
    ]
    if args.data and Path(saved["data"]).exists() and not same_dataset(args.data, saved["data"]):
        differ.insert(0, "data")
    known = (state or {}).get("data_fingerprint")
    if args.data and not Path(saved["data"]).exists() and known and dataset_fingerprint(args.data) != known:
        differ.insert(0, "data")  # the run's data moved: what is given must hold the same faces
    if differ:
        names = ", ".join("--" + OPTION_NAMES.get(k, k.removeprefix("augment.")).replace("_", "-") for k in differ)
        raise UsageError(
            f"{args.out}: --resume continues with the run's saved settings; {names} differ from them "
            "(only --epochs may change)"
        )


def train_config(args) -> TrainConfig:
    aug = AugmentConfig(
        rotation=args.rotation,
        flip=not args.no_flip,
        blur=args.blur,
        occlusion=args.occlusion,
        shift=args.shift,
        shift_x=args.shift_x,
        scale=args.scale_jitter,
    )
    values = {k: v for k, v in vars(args).items() if k in TRAIN}
    values["epochs"] = args.epochs or TRAIN["epochs"]
    return TrainConfig(augment=aug, **values)


def run(args):
    require("torch", "training", "train")
    require("matplotlib", "training (its curves.png and progress.gif)", "train")
    from ..models import MODELS  # the verb's own heavy imports (torch): commands/__init__.py
    from ..train import train

    if not args.data and not args.resume:
        raise UsageError("train needs --data (a folder of image+.pts pairs or a dlib XML file)")
    if args.arch not in MODELS:
        raise FacepointsError(f"unknown architecture {args.arch!r}; choose from {', '.join(MODELS)}")
    if args.resume:
        _check_resume_options(args)
    train(
        train_config(args),
        resume=args.resume,
        epochs=args.epochs if args.resume else None,
        distributed=args.distributed,
    )
