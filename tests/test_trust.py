"""Trust heads: occluder labels, negatives' labels, the head's outputs, its training and resume.

Tiny fixtures only: painted faces (conftest), a tiny random PIPNet; nothing reads 300-W or scikit-image."""

import numpy as np
import pytest
import torch

from facepoints.crop import crop_matrix, points_box, square_from_box, transform_points, warp
from facepoints.models.pipnet import PIPNet
from facepoints.models.trust import TrustHead, TrustOutputs, decode_with_stats
from facepoints.negatives import _unturn_box, texture_crop, wrong_box
from facepoints.occluders import FAMILIES, HELD_OUT_FAMILY, TRAIN_FAMILIES, occlude, visibility_from_mask
from facepoints.trust import (
    TrustDataset,
    expected_error,
    head_for,
    isotonic,
    load_trust,
    losses,
    predict_trust,
    save_trust,
    train_trust_heads,
)

from .conftest import painted_face, template

S = 64
EPOCHS = {"GridTrustHead": 60, "TrustHead": 30}  # the lean head reads less (no pixels): it learns slower here


def tiny_pipnet(seed: int = 0) -> PIPNet:
    torch.manual_seed(seed)
    return PIPNet(input_size=S, widths=(8, 8, 16, 16), depths=(1, 1, 1, 1), head_chs=16).eval()


def face_crop(seed: int = 0):
    pts = template(80, (100, 100))
    img = painted_face(pts, seed=seed)
    cx, cy, side = square_from_box(points_box(pts), 1.1)
    m = crop_matrix(cx, cy, side, S)
    return warp(img, m, S), transform_points(pts, m)


def faces(n: int = 8):
    rng = np.random.default_rng(3)
    pts = [template(rng.uniform(70, 90), rng.uniform(95, 105, 2)) for _ in range(n)]
    return np.stack([painted_face(p, seed=i) for i, p in enumerate(pts)]), np.stack(pts)


def test_visibility_follows_the_mask():
    alpha = np.zeros((S, S), np.float32)
    alpha[:, : S // 2] = 1.0
    pts = np.array([[5.0, 10.0], [40.0, 10.0], [31.0, 3.0], [-4.0, 70.0]] + [[50.0, 50.0]] * 64)
    vis = visibility_from_mask(alpha, pts)
    assert vis.tolist()[:4] == [False, True, False, False]  # a point outside the crop reads the nearest border pixel
    assert vis[4:].all()


@pytest.mark.parametrize("family", [*TRAIN_FAMILIES, HELD_OUT_FAMILY])
def test_each_family_masks_and_labels(family):
    rgb, pts = face_crop()
    hidden_any = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        photo = (np.random.default_rng(seed).random((90, 120, 3)) * 255).astype(np.uint8)
        occ = occlude(rgb, pts, rng, [family], (1, 1), donors=[rgb[::-1].copy()], photos=[photo])
        assert occ.image.shape == rgb.shape and occ.image.dtype == np.uint8
        assert occ.alpha.shape == rgb.shape[:2] and 0 <= occ.alpha.min() and occ.alpha.max() <= 1
        assert occ.alpha.max() > 0.5, family  # something was pasted
        assert occ.families == (family,)
        # the labels are the mask at the points: hidden points lie under it, and covered pixels changed
        np.testing.assert_array_equal(occ.visible, visibility_from_mask(occ.alpha, pts))
        hidden_any += (~occ.visible).sum()
    assert hidden_any > 0, family


def test_placed_families_cover_their_parts():
    rgb, pts = face_crop()
    eyes = occlude(rgb, pts, np.random.default_rng(0), ["sunglasses"], (1, 1))
    assert (~eyes.visible[36:48]).mean() > 0.5 and eyes.visible[48:68].all()
    mouth = occlude(rgb, pts, np.random.default_rng(0), ["scarf"], (1, 1))
    assert (~mouth.visible[48:68]).all() and mouth.visible[17:27].all()


def test_photo_patch_needs_photos():
    rgb, pts = face_crop()
    with pytest.raises(ValueError):
        FAMILIES["photo_patch"](rgb, pts, np.random.default_rng(0))


def test_head_outputs_shapes_and_ranges():
    model = tiny_pipnet()
    head = TrustHead(channels=16, detail_channels=8)
    x = torch.rand(3, 1, S, S)
    out = model(x)
    points, stats, flat, w = decode_with_stats(model, out)
    torch.testing.assert_close(points, model.decode(out), rtol=0, atol=0)  # the trunk's answer is untouched
    feats, detail = model.forward_features_detail(x)
    presence, vis, log_b = head(feats, detail, x, points, stats, flat, w)
    assert presence.shape == (3,) and vis.shape == (3, 68) and log_b.shape == (3, 68)
    assert torch.isfinite(stats).all()
    r = predict_trust(model, head, {"log_b": [0.0, 1.0], "error_px": [1.0, 3.0]}, x.numpy())
    assert r["points"].shape == (3, 68, 2) and r["presence"].shape == (3,)
    assert r["visibility"].shape == r["uncertainty"].shape == (3, 68)
    assert (0 <= r["presence"]).all() and (r["presence"] <= 1).all()
    assert (0 <= r["visibility"]).all() and (r["visibility"] <= 1).all()
    assert (r["uncertainty"] > 0).all()
    p2, *_ = TrustOutputs(model, head)(x)
    torch.testing.assert_close(p2, points)


def test_gradients_reach_the_heads_only():
    model = tiny_pipnet()
    for p in model.parameters():
        p.requires_grad_(False)
    head = TrustHead(channels=16, detail_channels=8)
    imgs, pts = faces(4)
    ds = TrustDataset(imgs, pts, np.zeros((4, 2)), S, 1.1, [], [], neg_fraction=0.5)
    batch = [torch.stack([ds[i][k] for i in range(len(ds))]) for k in range(5)]
    loss = losses(head, model, torch.zeros(2), batch)
    loss["total"].backward()
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    assert head.point_out.weight.grad.abs().sum() > 0 and head.presence.weight.grad.abs().sum() > 0


def test_negatives_are_labelled_absent():
    imgs, pts = faces(6)
    ds = TrustDataset(imgs, pts, np.zeros((6, 2)), S, 1.1, [], [], neg_fraction=1.0)
    ds.epoch = 1
    for i in range(len(ds)):
        x, target, visible, label, weight = ds[i]
        assert x.shape == (1, S, S) and 0 <= x.min() and x.max() <= 1
        if i < 6:
            assert label == 1.0 and (target != 0).any()
        else:
            assert label == 0.0 and weight == 1.0 and visible.all() and (target == 0).all()
    rng = np.random.default_rng(0)
    assert wrong_box(imgs[0], pts[0], S, 1.1, rng).shape == (S, S, 3)
    assert texture_crop(S, rng).shape == (S, S, 3)


def test_unturned_detector_boxes():
    """A box found in np.rot90(image, k) names the same square of the image after _unturn_box."""
    h, w = 30, 50
    for k in range(4):
        turned_shape = np.rot90(np.zeros((h, w)), k).shape
        x, y = 7.0, 11.0  # a pixel of the turned image, and where it came from
        src = np.rot90(np.arange(h * w).reshape(h, w), k)[int(y), int(x)]
        sy, sx = divmod(int(src), w)
        box = np.array([x - 2, y - 3, x + 2, y + 3])
        back = _unturn_box(box, k, (h, w))
        assert np.allclose([(back[0] + back[2]) / 2, (back[1] + back[3]) / 2], [sx, sy]), (k, turned_shape)


@pytest.mark.parametrize("kind", ["GridTrustHead", "TrustHead"])
def test_training_lowers_covered_points_visibility(tmp_path, kind):
    """A few epochs of head training on painted faces with flat blobs: covered points end up less visible."""
    model = tiny_pipnet()
    imgs, pts = faces(16)
    ds = TrustDataset(
        imgs,
        pts,
        np.zeros((16, 2)),
        S,
        1.1,
        [],
        [],
        neg_fraction=0.25,
        occluded=1.0,
        families=("blob", "scarf", "sunglasses"),
    )
    train_trust_heads(
        out=tmp_path / "run",
        epochs=EPOCHS[kind],
        batch_size=4,
        lr=1e-2,
        workers=0,
        dataset=ds,
        model=model,
        log=lambda *a: None,
        head_kind=kind,
    )
    head = head_for(model, kind)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    head.load_state_dict(state["head"])
    head.eval()
    rgb, p = face_crop(seed=99)
    occ = occlude(rgb, p, np.random.default_rng(5), ["scarf"], (1, 1))
    from facepoints.crop import preprocess, to_gray

    r = predict_trust(model, head, {"log_b": [0.0], "error_px": [1.0]}, preprocess(to_gray(occ.image))[None])
    v = r["visibility"][0]
    assert v[~occ.visible].mean() < v[occ.visible].mean() - 0.05


def test_resume_continues_the_same_run(tmp_path):
    imgs, pts = faces(6)

    def run(out, **kw):
        ds = TrustDataset(imgs, pts, np.zeros((6, 2)), S, 1.1, [], [], neg_fraction=0.5)
        return train_trust_heads(
            out=out, epochs=2, batch_size=4, workers=0, dataset=ds, model=tiny_pipnet(), log=lambda *a: None, **kw
        )

    whole = run(tmp_path / "a")
    cut = run(tmp_path / "b", max_minutes=0.0)  # stops after epoch 1, checkpointed
    assert cut["epoch"] == 1 and not cut["complete"]
    resumed = run(tmp_path / "b", resume=True)
    assert resumed["complete"] and [h["epoch"] for h in resumed["history"]] == [1, 2]
    for k, v in whole["head"].state_dict().items():
        torch.testing.assert_close(resumed["head"].state_dict()[k], v)


def test_trust_file_round_trip_and_calibration(tmp_path):
    head = TrustHead(channels=16, detail_channels=8)
    kx, ky = isotonic(np.log(np.linspace(0.5, 5, 400)), np.linspace(0.5, 5, 400) * 1.3 + np.sin(np.arange(400)))
    assert (np.diff(ky) >= 0).all()
    cal = {"log_b": kx.tolist(), "error_px": ky.tolist()}
    e = expected_error(np.linspace(-3, 4, 50), cal)
    assert (np.diff(e) >= -1e-9).all() and (e > 0).all()
    save_trust(tmp_path / "t.pt", head, cal, "tiny", "abc")
    back, cal2, header = load_trust(tmp_path / "t.pt", base_sha256="abc")
    assert cal2 == cal and header["base"] == "tiny"
    for k, v in head.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v)
    with pytest.raises(Exception, match="another landmark model"):
        load_trust(tmp_path / "t.pt", base_sha256="def")


def tiny_recipe(imgs, pts):
    """Landmark batches for joint training: the painted faces under the default augmentation."""
    from facepoints.config import AugmentConfig
    from facepoints.training_data import LandmarkDataset

    ds = LandmarkDataset(imgs, pts, S, 1.1, AugmentConfig())

    def batch(epoch, step):
        ds.epoch = epoch
        items = [ds[int(i)] for i in np.random.default_rng((epoch, step)).choice(len(ds), 2, replace=False)]
        return torch.stack([x for x, _ in items]), torch.stack([t for _, t in items])

    return batch


def test_joint_training_moves_the_trunk_but_not_its_batchnorm(tmp_path):
    """With trunk_lr the trunk learns (landmark loss on the recipe's batches beside the heads' losses); its
    BatchNorm statistics stay; the run returns the weights' moving average; resume gives the uncut run's weights."""
    imgs, pts = faces(6)

    def run(out, **kw):
        ds = TrustDataset(imgs, pts, np.zeros((6, 2)), S, 1.1, [], [], neg_fraction=0.5)
        model = tiny_pipnet()
        r = train_trust_heads(
            out=out,
            epochs=2,
            batch_size=4,
            workers=0,
            dataset=ds,
            model=model,
            log=lambda *a: None,
            trunk_lr=1e-2,
            ema=0.5,
            recipe=tiny_recipe(imgs, pts),
            **kw,
        )
        return r, model

    before = tiny_pipnet().state_dict()
    whole, model = run(tmp_path / "a")
    after = model.state_dict()
    assert "landmarks" in whole["history"][-1] and whole["model"] is model
    moved = [k for k in before if k.endswith("weight") and not torch.equal(before[k], after[k])]
    assert len(moved) > 10
    for k in before:
        if "running_" in k:
            torch.testing.assert_close(after[k], before[k])
    assert not any(p.requires_grad for p in model.parameters())
    cut, _ = run(tmp_path / "b", max_minutes=0.0)
    assert not cut["complete"]
    resumed, model2 = run(tmp_path / "b", resume=True)
    assert resumed["complete"]
    for k, v in after.items():
        torch.testing.assert_close(model2.state_dict()[k], v)
    for k, v in whole["head"].state_dict().items():
        torch.testing.assert_close(resumed["head"].state_dict()[k], v)


def test_joint_training_needs_landmark_batches_without_a_run_record(tmp_path):
    imgs, pts = faces(4)
    ds = TrustDataset(imgs, pts, np.zeros((4, 2)), S, 1.1, [], [], neg_fraction=0.5)
    with pytest.raises(Exception, match="recipe"):
        train_trust_heads(out=tmp_path, epochs=1, workers=0, dataset=ds, model=tiny_pipnet(), trunk_lr=1e-3)
