import numpy as np
import pytest
import torch

from facepoints.metrics import fr_and_auc, nme, summary
from facepoints.models import MODELS, create_model, xception


def test_xception_matches_the_seed_table():
    m = xception()
    assert sum(p.numel() for p in m.parameters()) == 2_630_888
    x = torch.zeros(2, 1, 128, 128)
    e = m.entry_block(x)
    assert e.shape == (2, 256, 32, 32)
    mid = m.middle_block(e)
    assert mid.shape == (2, 256, 32, 32)
    assert len(m.middle_block.blocks) == 6
    ex = m.exit_block(mid)
    assert ex.shape == (2, 1024, 1, 1)
    assert m(x).shape == (2, 136)


@pytest.mark.parametrize("arch", list(MODELS))
def test_forward_backward_every_parameter_gets_gradient(arch):
    torch.manual_seed(0)
    m = create_model(arch)
    x = torch.rand(2, 1, 128, 128)
    target = torch.rand(2, 68, 2) * 127
    loss = m.loss(m(x), target)
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    m.eval()
    with torch.no_grad():
        pts = m.decode(m(x))
    assert pts.shape == (2, 68, 2) and torch.isfinite(pts).all()


@pytest.mark.parametrize(
    "arch", ["pipnet_small", "pipnet_fast", "pipnet_fast_wide", "pipnet_fast_detail", "pipnet_accurate"]
)
def test_pipnet_decodes_a_perfect_output_exactly(arch):
    m = create_model(arch)
    t = torch.rand(3, 68, 2) * 127
    t[0, :4] = torch.tensor([[0.0, 0.0], [127.0, 0.0], [0.0, 127.0], [127.0, 127.0]])  # corner cells: padded neighbours
    g = m.grid
    cell = (t + 0.5) / m.stride
    idx = cell.floor()
    score = torch.full((3, 68, g * g), -5.0).scatter_(2, (idx[..., 1] * g + idx[..., 0]).long()[..., None], 5.0)
    ox = (cell[..., 0] - idx[..., 0] - 0.5)[..., None].expand(3, 68, g * g)
    oy = (cell[..., 1] - idx[..., 1] - 0.5)[..., None].expand(3, 68, g * g)
    raw = torch.stack([score, ox, oy], 1).reshape(3, 68 * 3, g, g)
    torch.testing.assert_close(m.decode(raw), t, atol=1e-4, rtol=0)
    # and the loss prefers it to a shifted one
    shifted = torch.stack([score.roll(1, dims=2), ox, oy], 1).reshape(3, 68 * 3, g, g)
    assert m.loss(raw, t) < m.loss(shifted, t)


def test_stride_4_head_has_a_32x32_grid_and_only_4_or_8_are_accepted():
    m = create_model("pipnet_accurate")
    assert (m.stride, m.grid) == (4, 32)
    assert m(torch.rand(1, 1, 128, 128)).shape == (1, 68 * 3, 32, 32)
    # the stride-8 models keep their state dict (shipped weights must still load): no stride-4 lateral in them
    assert not any(k.startswith("lateral4") for k in create_model("pipnet_fast").state_dict())
    with pytest.raises(ValueError, match="stride must be 4 or 8"):
        create_model("pipnet_fast", stride=2)


def test_xception_decode_inverts_its_target():
    m = xception()
    t = torch.rand(2, 68, 2) * 127
    raw = ((t + 0.5) / 128 - 0.5).reshape(2, 136)
    torch.testing.assert_close(m.decode(raw), t, atol=1e-4, rtol=0)
    assert m.loss(raw, t) < 1e-10


def test_unknown_architecture():
    from facepoints.errors import FacepointsError

    with pytest.raises(FacepointsError, match="unknown architecture 'resnet'; choose from xception, pipnet_small"):
        create_model("resnet")


def test_nme_and_failure_metrics():
    gt = np.zeros((68, 2))
    gt[36], gt[45] = (0, 0), (100, 0)
    pred = gt + [3.0, 4.0]  # 5 px everywhere, inter-ocular 100 -> 0.05
    np.testing.assert_allclose(nme(pred, gt), [0.05])
    fr, auc = fr_and_auc(np.array([0.0, 0.04, 0.1]))
    assert fr == pytest.approx(1 / 3)
    assert auc == pytest.approx((1 + 0.5) / 3, abs=0.01)  # area: a perfect face + one at half the threshold
    s = summary(np.array([0.01, 0.03]))
    assert s["nme_mean"] == pytest.approx(0.02) and s["n_faces"] == 2 and s["fr_0.08"] == 0
