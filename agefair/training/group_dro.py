"""Group DRO (Sagawa, Koh, Hashimoto & Liang, ICLR 2020): minimise the worst group's training loss.

The paper's online algorithm, per batch: each group's mean loss loss_g; q_g <- q_g * exp(eta * (loss_g
+ C / sqrt(n_g))) (C the group adjustment, n_g the group's training count), normalised; the step
minimises sum_g q_g * loss_g (with the updated q, as the paper's code does). Groups are the
combinations of the configured attributes (``group_dro.groups``, e.g. ethnicity x age bin) found in
the training rows: a combination with no training rows is no group. A group absent from a batch keeps
its q: the present groups share the weight they held before the update.

Under DDP the group loss sums and counts are summed across processes before the update, so every
process holds the same q, and each process's loss is scaled so that DDP's gradient average equals the
gradient of sum_g q_g * (mean loss of group g over the whole job's batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from agefair.core.errors import AgefairError
from agefair.core.fair_config import GroupDROSettings
from agefair.core.io import write_csv_atomic
from agefair.data.labels import age_bin
from agefair.training.objectives import MeanLoss, Objective

GROUP_WEIGHTS = "group_weights.csv"  # in the run folder: q of every group at the end of each epoch


def group_table(manifest: pd.DataFrame, train_rows: np.ndarray, attributes: list[str],
                age_bins: list[int]) -> tuple[np.ndarray, pd.DataFrame]:
    """(group index of every manifest row, -1 outside the training rows; one row per group: its
    attribute values and training count ``n``), groups in sorted order of their values."""
    cols = {}
    for a in attributes:
        if a == "age_bin":
            cols[a] = age_bin(manifest["age"].to_numpy(dtype=float), age_bins)
        elif a in manifest.columns and a not in ("file", "age", "split", "sha256", "width", "height"):
            cols[a] = manifest[a].astype(str).to_numpy()
        else:
            raise AgefairError(f"group_dro.groups: {a!r} is not an attribute of the data (use a column such as "
                               f"ethnicity or gender, or age_bin)")
    train = pd.DataFrame({a: v[train_rows] for a, v in cols.items()})
    groups = train.groupby(attributes, sort=True).size().rename("n").reset_index()
    index = {tuple(r): i for i, r in enumerate(groups[attributes].itertuples(index=False, name=None))}
    row_group = np.full(len(manifest), -1, dtype=np.int64)
    row_group[train_rows] = [index[t] for t in train[attributes].itertuples(index=False, name=None)]
    return row_group, groups


class GroupDRO(Objective):
    """q over the groups, updated every batch; the loss is sum_g q_g * loss_g of the base's per-sample losses."""

    def __init__(self, base: MeanLoss, row_group: np.ndarray, groups: pd.DataFrame, attributes: list[str],
                 settings: GroupDROSettings, device: torch.device | str = "cpu"):
        self.base, self.settings, self.attributes, self.groups = base, settings, attributes, groups
        self.row_group = torch.from_numpy(row_group)
        counts = torch.tensor(groups["n"].to_numpy(), dtype=torch.float64, device=device)
        self.adjust = settings.adjustment / counts.sqrt()
        self.q = torch.full((len(groups),), 1.0 / len(groups), dtype=torch.float64, device=device)
        self.history: list[tuple[int, list[float]]] = []  # (epoch, q at its end)
        self.names = ["/".join(map(str, r)) for r in groups[attributes].itertuples(index=False, name=None)]

    def update(self, means: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """One step of the paper's exponentiated-gradient update from the groups' mean losses; groups not
        ``present`` keep their q. Returns q."""
        with torch.no_grad():
            step = torch.where(present, torch.exp(self.settings.eta * (means.double() + self.adjust)),
                               torch.ones_like(self.q))
            new = self.q * step
            held, now = self.q[present].sum(), new[present].sum()
            if now > 0:
                new[present] *= held / now
            self.q = new / new.sum()
        return self.q

    def robust_loss(self, losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """sum_g q_g * (group g's mean loss), q updated first from this batch (summed over processes)."""
        n_groups = len(self.q)
        sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, groups, losses)
        counts = torch.bincount(groups, minlength=n_groups).to(losses.dtype)
        world = 1
        total = torch.cat([sums.detach(), counts])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total, op=dist.ReduceOp.SUM)
            world = dist.get_world_size()
        all_sums, all_counts = total[:n_groups], total[n_groups:]
        present = all_counts > 0
        q = self.update(all_sums / all_counts.clamp(min=1), present)
        return (q.to(losses.dtype) * sums / all_counts.clamp(min=1)).sum() * world

    def __call__(self, model, out, ages, rows):
        losses = self.base.sample_losses(model, out, ages, rows)
        return self.robust_loss(losses, self.row_group[rows].to(losses.device))

    def param_groups(self) -> list[dict]:
        return self.base.param_groups()

    def after_backward(self) -> None:
        self.base.after_backward()

    def end_epoch(self, epoch: int) -> None:
        self.history = [h for h in self.history if h[0] < epoch] + [(epoch, self.q.cpu().tolist())]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        q = self.q.cpu().tolist()
        order = sorted(range(len(q)), key=lambda i: -q[i])[:k]
        return [(self.names[i], q[i]) for i in order]

    def describe(self) -> str:
        return " | q " + ", ".join(f"{name} {w:.3f}" for name, w in self.top())

    def summary(self) -> dict:
        q = self.q.cpu().tolist()
        return {"group_dro": {"groups": self.attributes, "q": dict(zip(self.names, q)),
                              "n_train": dict(zip(self.names, self.groups["n"].astype(int).tolist())),
                              **self.base.summary()}}

    def write_files(self, out: Path) -> None:
        """group_weights.csv: epoch, the group's attribute values, its training count, q (atomically)."""
        frames = []
        for epoch, q in self.history:
            frame = self.groups.copy()
            frame.insert(0, "epoch", epoch)
            frame["q"] = q
            frames.append(frame)
        if frames:
            write_csv_atomic(Path(out) / GROUP_WEIGHTS, pd.concat(frames, ignore_index=True))

    def state_dict(self) -> dict:
        return {"q": self.q.cpu().clone(), "names": list(self.names),
                "history_epochs": [e for e, _ in self.history], "history_q": [q for _, q in self.history],
                **self.base.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if "q" in state:
            if list(state["names"]) != self.names:
                raise AgefairError("last.pt: its Group DRO groups differ from this run's; use --overwrite")
            self.q = state["q"].to(self.q.device, torch.float64)
            self.history = list(zip(state["history_epochs"], state["history_q"]))
        self.base.load_state_dict(state)
