"""The cpu preset, one change at a time: validation MAE and minutes of the baseline variant (issue 18).

    python benchmarks/ablation.py --data DIR --work DIR --out DIR [--only NAME ...]

Each row trains ``baseline`` with the cpu preset plus one override (``python -m agefair.train --variant
baseline --preset cpu --config OVERRIDE``), one after another (never two at once: on 2 cores they would
slow each other down many times), and reads the best validation MAE and the training time from the run's
summary.json. A row whose run folder already holds a finished run is read, not trained again. ``flip-tta``
trains nothing: it evaluates the ``preset`` row's checkpoint on the validation split with each image's
mirror image averaged in (``flip-tta ROW``: that row's checkpoint). Prints a markdown table with the machine's CPU capability.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROWS = {  # name -> override of the cpu preset (None: the preset itself)
    "preset": None,
    "64px": {"model": {"image_size": 64}},
    "10 epochs": {"train": {"epochs": 10}},
    "lr 0.005": {"optim": {"lr": 0.005}},
    "weight decay 0.01": {"optim": {"weight_decay": 0.01}},
    "EMA 0.995": {"train": {"ema_decay": 0.995}},
    "label sigma 2": {"train": {"label_sigma": 2.0}},
    "mixup 0.2": {"augment": {"mixup": 0.2}},
    "framing jitter": {"augment": {"scale": 0.1, "translate": 0.05}},
    "64px 6 epochs": {"model": {"image_size": 64}, "train": {"epochs": 6}},
}
ROOT = Path(__file__).resolve().parents[1]


def train(name: str, override: dict | None, a) -> dict:
    out = Path(a.out) / name.replace(" ", "_")
    summary = out / "baseline" / "summary.json"
    if not summary.exists():
        cmd = [sys.executable, "-m", "agefair.train", "--variant", "baseline", "--preset", "cpu", "--data", a.data,
               "--work", a.work, "--out", str(out), "--quiet"]
        if override:
            out.mkdir(parents=True, exist_ok=True)
            (out / "override.yaml").write_text(yaml.safe_dump(override))
            cmd += ["--config", str(out / "override.yaml")]
        print(f"training {name}: {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, cwd=ROOT, check=True)
    s = json.loads(summary.read_text())
    return {"val_mae": s["best_val_mae"], "minutes": s["seconds"] / 60, "epochs": s["epochs_run"]}


def flip_tta(checkpoint: Path, a) -> dict:
    """Validation MAE of ``checkpoint`` with and without averaging each image's horizontal mirror."""
    from agefair.core.config import load_data_config
    from agefair.data.image_cache import build_image_cache
    from agefair.data.prepare import prepare
    from agefair.models.checkpoint import model_from_checkpoint
    from agefair.models.network import to_input

    model, cfg, _ = model_from_checkpoint(checkpoint)
    model.eval().flip_tta = False  # the two passes are made here, each image and its mirror apart
    prepared = prepare(Path(a.data), load_data_config(), work_root=a.work, progress=False)
    images = build_image_cache(prepared.data_dir, prepared.manifest, prepared.data_hash, cfg.model.image_size,
                               prepared.work_dir, progress=False)
    rows = np.flatnonzero(prepared.manifest["split"].to_numpy() == "val")
    ages = prepared.manifest["age"].to_numpy(float)[rows]
    t0 = time.perf_counter()
    plain, flipped = [], []
    with torch.no_grad():
        for i in range(0, len(rows), 256):
            x = to_input(torch.from_numpy(images[rows[i:i + 256]]).permute(0, 3, 1, 2))
            plain.append(model.predict(x).numpy())
            flipped.append(model.predict(torch.flip(x, dims=[3])).numpy())
    p, f = np.concatenate(plain), np.concatenate(flipped)
    return {"val_mae": float(np.abs((p + f) / 2 - ages).mean()), "val_mae_plain": float(np.abs(p - ages).mean()),
            "minutes": (time.perf_counter() - t0) / 60, "epochs": 0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--only", nargs="+", help="rows to run (default: all, then flip-tta)")
    a = p.parse_args()
    names = a.only or [*ROWS, "flip-tta"]
    results = {}
    for name in names:
        if name.startswith("flip-tta"):
            row = name.removeprefix("flip-tta").strip() or "preset"
            results[name] = flip_tta(Path(a.out) / row.replace(" ", "_") / "baseline" / "model.pt", a)
        else:
            results[name] = train(name, ROWS[name], a)
    print(f"\nCPU capability: {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}")
    print("| change (one at a time) | best val MAE | epochs | training minutes |")
    print("| --- | ---: | ---: | ---: |")
    for name, r in results.items():
        extra = f" (without: {r['val_mae_plain']:.2f})" if "val_mae_plain" in r else ""
        print(f"| {name} | {r['val_mae']:.2f}{extra} | {r['epochs']} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
