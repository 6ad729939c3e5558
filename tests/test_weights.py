"""Weights files: a hand-built or damaged file is one line naming the file and the field at fault."""

import pytest
import torch

from facepoints import FacepointsError
from facepoints.cli import main
from facepoints.weights import load_model

from .conftest import one_line_error


def _payload(tiny_model):
    return torch.load(tiny_model / "model.pt", weights_only=True)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda p: p.pop("arch"), "missing field 'arch'"),
        (lambda p: p.pop("input_size"), "missing field 'input_size'"),
        (lambda p: p.update(input_size="128"), "field 'input_size'"),
        (lambda p: p.update(margin=0.0), "field 'margin'"),
        (lambda p: p.update(model_kwargs=[1, 2]), "field 'model_kwargs'"),
        (lambda p: p.update(model_kwargs={"nope": 1}), "model_kwargs do not fit"),
        (lambda p: p.update(model=[1, 2]), "field 'model'"),
        (lambda p: p.update(arch="resnet"), "unknown architecture 'resnet'"),
        (lambda p: p.update(format=3), "not a facepoints weights file"),
        (lambda p: p["train"].update(output_shift=5), "field 'train'"),
        (lambda p: p.update(format="facepoints-checkpoint/1", config=None), "malformed checkpoint"),
    ],
)
def test_hand_built_weights_give_one_line_naming_the_file(tiny_model, tmp_path, change, needle, capsys):
    payload = _payload(tiny_model)
    change(payload)
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    with pytest.raises(FacepointsError, match=r"odd\.pt: ") as e:
        load_model(str(path))
    assert needle in str(e.value)
    assert main(["export", "--model", str(path), "-o", str(tmp_path / "o.onnx")]) == 1
    one_line_error(capsys, "odd.pt", needle)
