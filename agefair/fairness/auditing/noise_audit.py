"""The audit's label-noise part (configs/fairness.yaml ``label_noise:``): rows every audited model misses
by far while the models agree (agefair.fairness.stats.label_noise), over the rows all models predicted (exact
ages, at least two models). Each suspect is listed with its file, label, every model's prediction and a
small face thumbnail (a PNG data URI, at most ``MAX_THUMBNAILS``) where the image can be read; the
sensitivity table gives each group's MAE and each gap with and without the suspects (never a silent drop).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from PIL import Image

from agefair.core.label_noise_config import LabelNoiseSettings
from agefair.data.image_cache import load_face
from agefair.fairness.auditing.decisions import aligned
from agefair.fairness.stats.label_noise import label_noise_suspects
from agefair.fairness.stats.metrics import attribute_groupings

MAX_THUMBNAILS = 30
MAX_LISTED = 200  # suspects listed (the largest errors first); n_flagged counts them all
THUMB = 64


def _thumbnail(path) -> str | None:
    from agefair.models.gradcam import png_data_uri

    try:
        return png_data_uri(Image.fromarray(load_face(path, THUMB)))
    except Exception:  # noqa: BLE001 - a thumbnail is a courtesy: an unreadable image shows none
        return None


def label_noise(preds: Mapping[str, pd.DataFrame], *, groupings: Mapping[str, list[str]], data_dir,
                settings: LabelNoiseSettings, min_group_size: int, thumbnails: bool = True) -> dict | None:
    """summary.label_noise (None: disabled, fewer than two models, or age-group labels)."""
    if not settings.enabled or len(preds) < 2 or any("age" not in f.columns for f in preds.values()):
        return None
    frame = aligned(preds)
    names = list(preds)
    single = {g: frame[groupings[g][0]].to_numpy() for g in attribute_groupings(dict(groupings))
              if groupings[g][0] in frame.columns}
    ln = label_noise_suspects(preds={m: frame[m].to_numpy(float) for m in names}, age=frame["age"].to_numpy(float),
                              groupings=single, k_years=settings.k_years, k_rel=settings.k_rel,
                              max_spread=settings.max_spread, min_group_size=min_group_size).to_json()
    order = sorted(range(len(ln["suspects"])), key=lambda i: -ln["suspects"][i]["min_abs_error"])
    ln["n_flagged"] = len(order)
    order = order[:MAX_LISTED]  # a table of a million rows may flag thousands: the summary and report stay small
    for rank, i in enumerate(order):
        s = ln["suspects"][i]
        r = frame.iloc[s["row"]]
        s.update(file=str(r["file"]), predictions={m: float(r[m]) for m in names},
                 thumbnail=_thumbnail(data_dir / str(r["file"])) if thumbnails and rank < MAX_THUMBNAILS else None)
        s["row"] = int(r["row"])
    ln["suspects"] = [ln["suspects"][i] for i in order]
    return ln

