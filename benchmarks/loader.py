"""Loader throughput: plain PIL decoding vs the uint8 image cache, both with train-time augmentation.

    python benchmarks/loader.py [--data DIR] [--size 128] [--n 2000]

Reads the first N training images of the shared UTKFace folder (AGEFAIR_DATA or --data) and
prints images/second of: (1) open + decode + resize the JPEG with PIL, then augment;
(2) read the row from the memory-mapped uint8 cache, then augment; (3) the cache without
augmentation. One process, as the training loop uses it (num_workers=0). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from agefair.config import load_data_config
from agefair.data.dataset import AugmentConfig, FaceDataset, train_transform
from agefair.data.image_cache import build_image_cache, load_face
from agefair.data.prepare import prepare
from agefair.errors import run_cli
from agefair.paths import resolve_data_dir


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n", type=int, default=2000)
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    data_dir = resolve_data_dir(args.data)
    prepared = prepare(data_dir, load_data_config(), progress=False)
    train = prepared.manifest.index[prepared.manifest["split"] == "train"].to_numpy()[: args.n]
    files = prepared.manifest["file"].to_numpy()
    ages = prepared.manifest["age"].to_numpy(np.float32)
    aug = train_transform(AugmentConfig())

    t0 = time.perf_counter()
    images = build_image_cache(data_dir, prepared.manifest, prepared.data_hash, args.size, prepared.work_dir)
    build_s = time.perf_counter() - t0

    def pil(i):
        arr = load_face(data_dir / files[train[i]], args.size)
        aug(torch.from_numpy(arr).permute(2, 0, 1))

    cached_aug = FaceDataset(images, train, ages[train], aug)
    cached_plain = FaceDataset(images, train, ages[train])
    n = len(train)
    results = {
        "PIL decode + resize + augment": rate(pil, n),
        "cache + augment": rate(lambda i: cached_aug[i], n),
        "cache, no augmentation": rate(lambda i: cached_plain[i], n),
    }
    print(f"loader benchmark: {n} UTKFace training images at {args.size}px, 1 process, 1 torch thread, "
          f"{os.cpu_count()} CPUs; cache ready in {build_s:.1f} s (0 s when it already existed)")
    for name, r in results.items():
        print(f"  {name:<32} {r:8.0f} img/s")
    return 0


if __name__ == "__main__":
    run_cli(main)
