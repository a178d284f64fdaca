"""The cpu preset's training options: an exponential moving average of the weights, label-distribution
targets and mixup; their mechanics and what a run with them saves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from train_helpers import train_env, train_settings  # noqa: F401

from agefair.core.config import ModelConfig
from agefair.models.network import create_model
from agefair.models.runtime import per_sample_loss
from agefair.train import main
from agefair.training.ema import EVERY, WeightEMA
from agefair.training.loop import mixup_draw


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_ema_moves_each_float_tensor_by_one_minus_decay_and_copies_integer_buffers():
    net = small_net()
    ema = WeightEMA(net, decay=0.9)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()
    net(torch.rand(5, 3, 8, 8))  # BatchNorm's running statistics and batch counter move
    ema.update(0.9)
    live = net.state_dict()
    for name, avg in ema.module.state_dict().items():
        if avg.is_floating_point():
            torch.testing.assert_close(avg, 0.9 * before[name] + 0.1 * live[name], msg=name)
        else:
            assert torch.equal(avg, live[name]), name
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_state_round_trips_and_follows_a_model_loaded_in_place():
    net = small_net()
    ema = WeightEMA(net, decay=0.5)
    with torch.no_grad():
        net[3].bias.fill_(2.0)
    for _ in range(EVERY + 3):
        ema.step()
    state = ema.state_dict()
    fresh = WeightEMA(small_net(), decay=0.5)
    fresh.load_state_dict(state)
    assert fresh.steps == EVERY + 3  # resumed mid-way between two updates
    torch.testing.assert_close(ema.module[3].bias, 0.5**EVERY * small_net()[3].bias + (1 - 0.5**EVERY) * 2.0)
    torch.testing.assert_close(fresh.module[3].bias, ema.module[3].bias)
    # resuming loads the live weights in place: the average keeps following them
    net2 = small_net()
    ema2 = WeightEMA(net2, decay=0.5)
    net2.load_state_dict(net.state_dict())
    ema2.update(0.5)
    torch.testing.assert_close(ema2.module[3].bias, 0.5 * small_net()[3].bias + 0.5 * net[3].bias)


def test_ema_updates_every_eighth_step_with_the_per_step_decay_compounded():
    net = small_net()
    ema = WeightEMA(net, decay=0.9)
    start = ema.module[3].bias.clone()
    with torch.no_grad():
        net[3].bias.add_(1.0)
    for _ in range(EVERY - 1):
        ema.step()
    assert torch.equal(ema.module[3].bias, start)
    ema.step()
    torch.testing.assert_close(ema.module[3].bias, 0.9**EVERY * start + (1 - 0.9**EVERY) * net[3].bias)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1])
def test_ema_refuses_a_decay_outside_zero_one(decay):
    with pytest.raises(ValueError):
        WeightEMA(small_net(), decay)


def expectation_model():
    torch.manual_seed(0)
    return create_model(ModelConfig(backbone="resnet18", head="expectation", image_size=32, max_age=100))


def test_label_distribution_loss_is_smallest_for_the_gaussian_it_targets():
    model = expectation_model()
    ages = torch.tensor([30.0, 30.0, 30.0])
    grid = model.ages
    gauss = -(grid - 30.0) ** 2 / (2 * 3.0**2)
    logits = torch.stack([gauss, -(grid - 36.0) ** 2 / (2 * 3.0**2), -(grid - 30.0) ** 2 / (2 * 0.5**2)])
    losses = per_sample_loss(model, logits, ages, "l1", label_sigma=3.0)
    assert losses[0] < losses[1]  # centred on another age
    assert losses[0] < losses[2]  # right centre, too sharp
    # its minimum is the target distribution's entropy
    p = torch.softmax(gauss, 0)
    assert float(losses[0]) == pytest.approx(float(-torch.special.xlogy(p, p).sum()), rel=1e-5)


def test_label_distribution_loss_tends_to_the_one_hot_cross_entropy_as_sigma_shrinks():
    model = expectation_model()
    torch.manual_seed(1)
    logits = torch.randn(4, 101)
    ages = torch.tensor([3.0, 25.0, 60.0, 99.0])
    one_hot = per_sample_loss(model, logits, ages, "l1")
    torch.testing.assert_close(per_sample_loss(model, logits, ages, "l1", label_sigma=0.05), one_hot)
    assert torch.equal(per_sample_loss(model, logits, ages, "l1", label_sigma=0.0), one_hot)
    assert torch.equal(one_hot, F.cross_entropy(logits, ages.long(), reduction="none"))


def test_mixup_off_and_on():
    assert mixup_draw(8, 0.0) == (1.0, None)
    assert mixup_draw(1, 0.4) == (1.0, None)  # nothing to mix with
    torch.manual_seed(3)
    draws = [mixup_draw(16, 0.4) for _ in range(200)]
    lams = torch.tensor([lam for lam, _ in draws])
    assert ((lams > 0) & (lams < 1)).all()
    assert float(lams.mean()) == pytest.approx(0.5, abs=0.06)  # Beta(a, a) is symmetric
    assert float((lams < 0.1).float().mean() + (lams > 0.9).float().mean()) > 0.3  # a < 1: mostly near 0 or 1
    assert all(sorted(perm.tolist()) == list(range(16)) for _, perm in draws)
    torch.manual_seed(3)
    again = mixup_draw(16, 0.4)
    assert again[0] == draws[0][0] and torch.equal(again[1], draws[0][1])


def test_a_run_with_ema_saves_the_average_as_its_best_checkpoint(train_env):
    cfg = train_env.override("tricks.yaml", {"train": {"ema_decay": 0.9, "label_sigma": 2.0},
                                             "augment": {"mixup": 0.2}})
    out = train_env.root / "tricks"
    assert main(train_env.args("baseline", 3, out=out, config=cfg)) == 0
    last = torch.load(out / "baseline" / "last.pt", map_location="cpu", weights_only=True)
    best = torch.load(out / "baseline" / "model.pt", map_location="cpu", weights_only=True)
    assert last["ema"]["steps"] > 0
    if best["epoch"] == last["epoch"]:
        for name, tensor in best["model"].items():
            assert torch.equal(tensor, last["ema"]["module"][name]), name
    weights = [n for n, t in last["model"].items() if t.is_floating_point() and "running" not in n]
    assert any(not torch.equal(last["model"][n], last["ema"]["module"][n]) for n in weights)
    assert best["val_mae"] == pytest.approx(min(h["val_mae"] for h in last["history"]))


@pytest.mark.parametrize("head", ["expectation", "regression"])
def test_flip_tta_averages_each_image_with_its_mirror_in_eval_mode_only(head):
    torch.manual_seed(0)
    model = create_model(ModelConfig(backbone="resnet18", head=head, image_size=32, flip_tta=True))
    if head == "regression":
        torch.nn.init.normal_(model.head.weight, std=0.5)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        ages, spread = model.predict_with_spread(x)
        mirrored_ages, _ = model.predict_with_spread(x.flip(-1))
        model.flip_tta = False
        once, twice = model.predict(x), model.predict(x.flip(-1))
        model.flip_tta = True
    torch.testing.assert_close(ages, (once + twice) / 2)  # the mixture's mean is the mean of the two ages
    torch.testing.assert_close(mirrored_ages, ages)  # a face and its mirror image get the same age
    assert not torch.allclose(once, twice)  # the model itself is not mirror-symmetric: the test means something
    if head == "expectation":
        assert torch.isfinite(spread).all()
    model.train()
    assert model(x).shape[0] == 4 and not torch.equal(model(x), model(x.flip(-1)))  # one pass while training


def test_grad_cam_explains_the_image_itself_and_reports_the_averaged_age():
    from agefair.models.gradcam import heatmaps_and_ages

    torch.manual_seed(0)
    model = create_model(ModelConfig(backbone="resnet18", head="expectation", image_size=64, flip_tta=True)).eval()
    faces = (torch.rand(2, 64, 64, 3) * 255).to(torch.uint8).numpy()
    maps, ages = heatmaps_and_ages(model, faces)
    assert maps.shape == (2, 64, 64) and model.flip_tta and not model.training
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = model.predict(x).numpy()
    assert ages == pytest.approx(expected, abs=1e-4)
