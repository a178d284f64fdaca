"""Training throughput (images/second) of fp32 vs the fast paths, for ResNet-50@128 and the cpu preset's model.

    python benchmarks/train_throughput.py [--device auto] [--steps 8] [--models resnet50@128,cpu] [--batch N] [--compile]

Times full training steps (forward, loss, backward, optimizer step) on a fixed random batch after
two warm-up steps, for: fp32, fp32 + channels_last, bf16 autocast + channels_last (and fp16 on CUDA),
and marks the mode the `auto` precision picks on this machine. Model throughput only: the loader is
measured by benchmarks/loader.py. Run it on a quiet machine; never beside another torch job.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from agefair.core.config import load_train_config
from agefair.core.errors import run_cli
from agefair.models.network import create_model
from agefair.models.runtime import make_runtime, per_sample_loss


def step_rate(cfg, device: str, precision: str, channels_last: bool, batch: int, steps: int,
              compile_model: bool = False) -> float:
    rt = make_runtime(device, precision, channels_last)
    torch.manual_seed(0)
    model = create_model(cfg.model).to(rt.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    net = torch.compile(model) if compile_model else model
    size = cfg.model.image_size
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)
    y = torch.randint(1, 90, (batch,)).float()
    scaler = torch.amp.GradScaler("cuda") if rt.dtype == torch.float16 else None
    model.train()

    def one():
        xi = rt.to_device(x)
        with rt.autocast():
            out = net(xi)
        loss = per_sample_loss(model, out, y.to(rt.device), "l1").mean()
        opt.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    for _ in range(3 if compile_model else 2):  # compiling happens in the first steps
        one()
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        one()
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--models", default="resnet50@128,cpu",
                   help="comma list: 'cpu' (the cpu preset's model) and/or BACKBONE@SIZE (reference preset otherwise)")
    p.add_argument("--batch", type=int, help="batch size (default: each preset's)")
    p.add_argument("--compile", action="store_true", help="also time bf16 + channels_last under torch.compile")
    args = p.parse_args(argv)
    auto = make_runtime(args.device, "auto", True)
    modes = [("fp32", "fp32", False), ("fp32 + channels_last", "fp32", True), ("bf16 + channels_last", "bf16", True)]
    if auto.device.type == "cuda":
        modes.append(("fp16 + channels_last", "fp16", True))
    modes = [(label, precision, cl, False) for label, precision, cl in modes]
    if args.compile:
        modes.append(("bf16 + CL + compile", "bf16", True, True))
    print(f"train throughput on {auto.device} ({torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
          f"{', GPU ' + torch.cuda.get_device_name() if auto.device.type == 'cuda' else ''}); "
          f"auto precision here: {auto.precision_name}")
    for spec in args.models.split(","):
        if spec == "cpu":
            cfg = load_train_config("cpu")
        else:
            backbone, size = spec.split("@")
            cfg = load_train_config("reference", overrides={"model": {"backbone": backbone, "image_size": int(size)}})
        batch = args.batch or cfg.train.batch_size
        name = f"{cfg.model.backbone}@{cfg.model.image_size} {cfg.model.head} head, batch {batch}"
        for label, precision, cl, comp in modes:
            r = step_rate(cfg, args.device, precision, cl, batch, args.steps, comp)
            mark = "  <- auto" if (precision, cl, comp) == (auto.precision_name, auto.channels_last, False) else ""
            print(f"  {name:<44} {label:<22} {r:8.1f} img/s{mark}", flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
