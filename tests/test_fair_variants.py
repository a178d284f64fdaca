"""The variants that target the demographic gaps: Group DRO (its group weights, their resume) and Balanced
MSE (its invariance to the batch's label distribution), and short training runs of both."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from train_helpers import train_env, train_settings  # noqa: F401

import agefair.training.trainer
from agefair.core.config import TrainConfig, read_yaml, validate
from agefair.core.errors import AgefairError
from agefair.core.fair_config import BalancedMSESettings, GroupDROSettings
from agefair.train import main
from agefair.training.group_dro import GROUP_WEIGHTS, GroupDRO, group_table
from agefair.training.objectives import BalancedMSE, MeanLoss
from agefair.training.variants import VARIANTS, recorded_config, variant_config

WORKTREE_PRESETS = Path(__file__).resolve().parent.parent / "configs" / "presets"


def two_group_dro(counts=(50, 50), **settings) -> GroupDRO:
    manifest = pd.DataFrame({"age": [30.0] * sum(counts), "ethnicity": ["A"] * counts[0] + ["B"] * counts[1]})
    rows = np.arange(len(manifest))
    row_group, groups = group_table(manifest, rows, ["ethnicity"], [0, 10])
    return GroupDRO(MeanLoss(), row_group, groups, ["ethnicity"], GroupDROSettings(groups=["ethnicity"], **settings))


def feed(dro: GroupDRO, loss_a: float, loss_b: float, steps: int) -> list[list[float]]:
    groups = torch.tensor([0] * 8 + [1] * 8)
    losses = torch.tensor([loss_a] * 8 + [loss_b] * 8)
    out = []
    for _ in range(steps):
        loss = dro.robust_loss(losses, groups)
        q = dro.q.tolist()
        assert loss.item() == pytest.approx(q[0] * loss_a + q[1] * loss_b)  # sum_g q_g * loss_g, updated q
        out.append(q)
    return out


def test_group_dro_weights_rise_monotonically_toward_the_worse_group():
    qs = feed(two_group_dro(eta=0.05), 1.0, 2.0, 30)
    q_b = [q[1] for q in qs]
    assert all(b > a for a, b in zip([0.5, *q_b], q_b)) and q_b[-1] > 0.8
    assert all(sum(q) == pytest.approx(1.0) for q in qs)
    # the paper's update in closed form: q_B / q_A = exp(eta * t * (loss_B - loss_A))
    assert q_b[-1] / (1 - q_b[-1]) == pytest.approx(math.exp(0.05 * 30 * 1.0))


def test_group_dro_weights_stay_uniform_when_the_groups_lose_equally():
    assert all(q == pytest.approx([0.5, 0.5]) for q in feed(two_group_dro(eta=0.05), 1.5, 1.5, 20))


def test_group_dro_adjustment_favours_the_smaller_group():
    qs = feed(two_group_dro(counts=(100, 4), eta=0.05, adjustment=2.0), 1.0, 1.0, 10)
    assert qs[-1][1] > qs[0][1] > 0.5  # C / sqrt(n): 0.2 for A, 1.0 for B


def test_group_dro_groups_without_training_rows_are_ignored_and_absent_groups_keep_their_weight():
    manifest = pd.DataFrame({"age": [5.0, 25.0, 25.0, 75.0, 75.0, 50.0],
                             "ethnicity": ["A", "A", "B", "B", "C", "C"]})
    train = np.array([0, 1, 2, 3, 4])  # row 5 (C, 50-59) is not a training row
    row_group, groups = group_table(manifest, train, ["ethnicity", "age_bin"], [0, 10, 20, 30, 40, 50, 60, 70])
    assert groups[["ethnicity", "age_bin"]].values.tolist() == [["A", "0-9"], ["A", "20-29"], ["B", "20-29"],
                                                                ["B", "70+"], ["C", "70+"]]
    assert groups["n"].tolist() == [1] * 5 and row_group.tolist() == [0, 1, 2, 3, 4, -1]
    dro = GroupDRO(MeanLoss(), row_group, groups, ["ethnicity", "age_bin"], GroupDROSettings(eta=0.1))
    dro.robust_loss(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))  # only groups 0 and 1 in the batch
    q = dro.q.tolist()
    assert q[2:] == pytest.approx([0.2, 0.2, 0.2]) and q[0] + q[1] == pytest.approx(0.4) and q[1] > q[0]
    with pytest.raises(AgefairError, match="group_dro.groups: 'religion'"):
        group_table(manifest, train, ["religion"], [0, 10])


def test_group_dro_state_round_trips():
    dro = two_group_dro(eta=0.1)
    feed(dro, 1.0, 3.0, 5)
    dro.end_epoch(1)
    fresh = two_group_dro(eta=0.1)
    fresh.load_state_dict(dro.state_dict())
    assert torch.equal(fresh.q, dro.q) and fresh.history == dro.history


def bmc_loss_paper(pred, target, noise_var):
    """The paper's reference code (github.com/jiawei-ren/BalancedMSE, README)."""
    logits = -(pred - target.T).pow(2) / (2 * noise_var)
    return F.cross_entropy(logits, torch.arange(pred.shape[0])) * (2 * noise_var).detach()


def test_balanced_mse_is_the_papers_bmc_loss():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.rand(16, generator=gen) * 80, torch.rand(16, generator=gen) * 80
    bmc = BalancedMSE(BalancedMSESettings(noise_sigma=6.0))
    assert bmc.per_sample(pred, target).mean().item() == pytest.approx(
        bmc_loss_paper(pred[:, None], target[:, None], torch.tensor(36.0)).item(), rel=1e-6)


@pytest.mark.parametrize("share_of_20", [0.5, 0.7, 0.9, 0.97])
@pytest.mark.parametrize("sigma", [2.0, 5.0, 12.0])
def test_balanced_mse_optimum_does_not_follow_the_label_distribution(share_of_20, sigma):
    """Ren et al.'s point (Sec. 3): MSE fitted on a skewed label distribution predicts the training prior's
    posterior, pulled toward frequent labels; Balanced MSE predicts the uniform-prior one. Here inputs that
    are equally likely to be 20 or 40 years old (one shared prediction p) come in a batch with a share of
    20s from 50% to 97%: the MSE-optimal p is the batch mean (toward 20), the BMC-optimal p stays 30, what
    MSE gives on the balanced batch, whatever the skew and the noise scale."""
    n20 = round(100 * share_of_20)
    targets = torch.tensor([20.0] * n20 + [40.0] * (100 - n20), dtype=torch.float64)
    grid = torch.arange(15.0, 45.0001, 0.01, dtype=torch.float64)
    bmc = BalancedMSE(BalancedMSESettings(noise_sigma=sigma, learnable=False))
    bmc_loss = torch.stack([bmc.per_sample(p.expand(100), targets).mean() for p in grid])
    mse_loss = ((grid[:, None] - targets[None, :]) ** 2).mean(dim=1)
    assert grid[bmc_loss.argmin()].item() == pytest.approx(30.0, abs=0.011)
    assert grid[mse_loss.argmin()].item() == pytest.approx(targets.mean().item(), abs=0.011)
    # and the gradient at the balanced answer is zero, where MSE's pulls toward the majority
    p = torch.tensor(30.0, dtype=torch.float64, requires_grad=True)
    bmc.per_sample(p.expand(100), targets).mean().backward()
    assert abs(p.grad.item()) < 1e-9


def test_mean_loss_is_the_weighted_mean_of_the_per_sample_losses():
    from agefair.models.network import create_model
    from agefair.models.runtime import per_sample_loss

    model = create_model(TrainConfig().model.model_copy(update={"backbone": "resnet18", "image_size": 32}))
    out, ages = torch.randn(4, 117), torch.tensor([3.0, 20.0, 41.0, 80.0])
    weights, rows = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0]), torch.tensor([4, 0, 2, 1])
    want = (per_sample_loss(model, out, ages, "l1") * weights[rows]).mean()
    assert torch.equal(MeanLoss("l1", weights)(model, out, ages, rows), want)


def test_presets_carry_the_new_sections_and_the_variants_configure_them():
    for preset in ("cpu", "reference"):
        cfg = validate(TrainConfig, read_yaml(WORKTREE_PRESETS / f"{preset}.yaml"), preset)
        assert cfg.group_dro.groups == ["ethnicity", "age_bin"] and cfg.bmse.learnable
        assert cfg.variants == ["baseline", "oversample", "weighted", "groupdro", "bmse", "calibrated"]
    cfg = TrainConfig(group_dro=GroupDROSettings(weight_decay=0.5))
    assert variant_config("groupdro", cfg).optim.weight_decay == 0.5
    assert variant_config("bmse", cfg).train.loss == "bmse"
    # the other variants record what they did before these sections existed (so their runs still resume)
    assert "group_dro" not in recorded_config("baseline", cfg) and "bmse" not in recorded_config("baseline", cfg)
    assert "group_dro" in recorded_config("groupdro", cfg) and "bmse" in recorded_config("bmse", variant_config("bmse", cfg))
    assert list(VARIANTS)[-3:] == ["groupdro", "bmse", "calibrated"]
    assert "calibrated" not in recorded_config("groupdro", cfg) and "calibrated" in recorded_config("calibrated", cfg)


# --------------------------------------------------------------------------- training runs


@pytest.fixture(scope="module")
def dro_runs(train_env):
    """A 2-epoch groupdro run, and the same run interrupted during epoch 2 then resumed."""
    whole = train_env.root / "dro_whole"
    assert main(train_env.args("groupdro", 2, out=whole)) == 0
    split = train_env.root / "dro_split"
    real = agefair.training.trainer.train_one_epoch

    def interrupted_in_epoch_2(*args, epoch, **kwargs):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(*args, epoch=epoch, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(agefair.training.trainer, "train_one_epoch", interrupted_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            main(train_env.args("groupdro", 2, out=split))
    after_one = torch.load(split / "groupdro" / "last.pt", weights_only=True)["objective"]
    assert after_one["history_epochs"] == [1]
    assert main(train_env.args("groupdro", 2, "--resume", out=split)) == 0
    return whole / "groupdro", split / "groupdro", after_one


def test_groupdro_run_writes_its_group_weights(dro_runs, train_env):
    whole, _, _ = dro_runs
    table = pd.read_csv(whole / GROUP_WEIGHTS)
    assert list(table.columns) == ["epoch", "ethnicity", "age_bin", "n", "q"]
    assert table["epoch"].tolist() == sorted(table["epoch"].tolist()) and set(table["epoch"]) == {1, 2}
    assert table.groupby("epoch")["q"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert (table["q"] > 0).all() and table.groupby("epoch")["q"].std().gt(0).all()  # some groups upweighted
    summary = json.loads((whole / "summary.json").read_text())
    last = table[table["epoch"] == 2]
    final = {f"{e}/{b}": q for e, b, q in zip(last["ethnicity"], last["age_bin"], last["q"])}
    assert summary["group_dro"]["q"] == pytest.approx(final)
    assert yaml.safe_load((whole / "config.yaml").read_text())["group_dro"]["groups"] == ["ethnicity", "age_bin"]


def test_groupdro_resume_continues_q_exactly(dro_runs):
    whole, split, after_one = dro_runs
    resumed = torch.load(split / "last.pt", weights_only=True)["objective"]
    uninterrupted = torch.load(whole / "last.pt", weights_only=True)["objective"]
    assert resumed["history_epochs"] == [1, 2]
    assert resumed["history_q"][0] == after_one["q"].tolist()  # epoch 1's q as saved before the resume
    assert torch.allclose(resumed["q"], uninterrupted["q"], atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(split / GROUP_WEIGHTS), pd.read_csv(whole / GROUP_WEIGHTS), atol=1e-6)


def test_bmse_run_trains_with_the_balanced_loss(train_env, capsys):
    out = train_env.root / "bmse"
    assert main(train_env.args("bmse", 1, out=out)) == 0
    run = out / "bmse"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["loss"] == "bmse" and config["bmse"]["noise_sigma"] == 1.0
    assert config["model"]["head"] == "expectation"
    summary = json.loads((run / "summary.json").read_text())
    assert math.isfinite(summary["bmse_noise_sigma"]) and summary["bmse_noise_sigma"] != 1.0  # learned
    assert "bmse_sigma" in torch.load(run / "last.pt", weights_only=True)["objective"]
    assert math.isfinite(pd.read_csv(run / "history.csv")["train_loss"].iloc[0])


def test_train_takes_several_variants():
    from agefair.train import build_parser

    assert build_parser().parse_args(["--variant", "groupdro", "bmse"]).variant == ["groupdro", "bmse"]


def _dro_worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        w, losses, groups = _dro_batch()
        dro = two_group_dro(eta=0.1)
        for _ in range(3):  # three steps on this process's shard
            w.grad = None
            dro.robust_loss(w * losses[rank::world], groups[rank::world]).backward()
            dist.all_reduce(w.grad)  # as DistributedDataParallel does: the mean of the processes' gradients
            w.grad /= world
        torch.save({"q": dro.q, "grad": w.grad}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _dro_batch():
    w = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
    losses = torch.tensor([1.0, 2.0, 3.0, 1.5, 4.0, 0.5, 2.5], dtype=torch.float64)
    return w, losses, torch.tensor([0, 1, 1, 0, 1, 0, 1])


def test_group_dro_under_ddp_matches_one_process_on_the_whole_batch(tmp_path):
    """Two gloo processes, each with half of every batch (unequal halves): both hold the q that one process
    computes on the whole batch, and the gradient DDP averages is the whole batch's robust gradient."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dro_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    w, losses, groups = _dro_batch()
    dro = two_group_dro(eta=0.1)
    for _ in range(3):
        w.grad = None
        dro.robust_loss(w * losses, groups).backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.allclose(got["q"], dro.q) and torch.allclose(got["grad"], w.grad)
