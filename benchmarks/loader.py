"""Loader throughput: PIL decoding vs the uint8 image cache, with and without train-time augmentation.

    python benchmarks/loader.py [--data DIR] [--size 128] [--n 2048] [--batch 64]

Reads the first N training images of the UTKFace folder (AGEFAIR_DATA or --data) and prints
images/second of: (1) per image, open + decode + resize the JPEG with PIL (what every epoch would
cost without the cache); (2) batches from the memory-mapped uint8 cache through the training
DataLoader (num_workers=0, as the training loop uses it); (3) the same plus BatchAugment (flip,
rotation, colour jitter) on each batch; (4) for comparison, torchvision's per-image v2 transforms
with the same augmentation. Run it on a quiet machine, never beside a torch job.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from agefair.core.config import AugmentSection, load_data_config
from agefair.core.errors import run_cli
from agefair.core.paths import resolve_data_dir
from agefair.data.dataset import FaceDataset
from agefair.data.image_cache import build_image_cache, load_face
from agefair.data.prepare import prepare
from agefair.models.network import to_input
from agefair.training.augment import BatchAugment


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)

    data_dir = resolve_data_dir(args.data)
    prepared = prepare(data_dir, load_data_config(), progress=False)
    manifest = prepared.manifest
    rows = np.flatnonzero(manifest["split"].to_numpy() == "train")[: args.n]
    n = len(rows)
    files = manifest["file"].to_numpy()
    ages = manifest["age"].to_numpy(np.float32)
    build_s = timed(lambda: build_image_cache(data_dir, manifest, prepared.data_hash, args.size, prepared.work_dir,
                                              progress=False))
    images = build_image_cache(data_dir, manifest, prepared.data_hash, args.size, prepared.work_dir, progress=False)
    augment = BatchAugment(AugmentSection())
    loader = DataLoader(FaceDataset(images, rows, ages[rows]), batch_size=args.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    cfg = AugmentSection()
    per_image = v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(cfg.rotation),
                            v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation)])

    def pil():
        for r in rows:
            load_face(data_dir / files[r], args.size)

    def cache(aug: bool):
        for x, _, _ in loader:
            x = to_input(x)
            if aug:
                augment(x)

    def cache_v2():
        for x, _, _ in loader:
            to_input(torch.stack([per_image(img) for img in x]))

    results = [("PIL decode + resize (per image)", timed(pil)), ("cache -> batches", timed(lambda: cache(False))),
               ("cache -> batches + BatchAugment", timed(lambda: cache(True))),
               ("cache -> batches + per-image v2 augment", timed(cache_v2))]
    print(f"loader benchmark: {n} UTKFace training images at {args.size}px, batch {args.batch}, num_workers 0, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs; image cache built in {build_s:.1f} s "
          f"(~0 when it already existed)")
    for name, seconds in results:
        print(f"  {name:<42} {n / seconds:8.0f} img/s")
    return 0


if __name__ == "__main__":
    run_cli(main)
