"""Property tests: random bytes, random CSV shapes and random YAML trees thrown at every reader.

The readers: config loading (agefair.core.config.load_config for each config model), labels CSVs
(agefair.data.csv_dataset.read_labels), predictions CSVs (agefair.fairness.auditing.external.read_predictions)
and images (agefair.data.images.open_rgb). Each must return, or raise AgefairError with a ONE-line
message; any other exception, or a hang (hypothesis deadline, pytest timeout), fails.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agefair.core.config import DataConfig, DatasetConfig, FairnessConfig, TrainConfig, load_config
from agefair.core.errors import AgefairError
from agefair.data.csv_dataset import read_labels
from agefair.data.images import open_rgb
from agefair.fairness.auditing.external import read_predictions

FUZZ = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)
MODELS = [TrainConfig, FairnessConfig, DataConfig, DatasetConfig]


def assert_one_line(call) -> None:
    try:
        call()
    except AgefairError as exc:
        text = str(exc)
        assert text and "\n" not in text and "\r" not in text, repr(text)


def in_file(data: bytes, suffix: str, call) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        assert_one_line(lambda: call(path))


def read_any_config(path: Path) -> None:
    for model in MODELS:
        try:
            load_config(model, path)
        except AgefairError as exc:
            assert "\n" not in str(exc)


random_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.text(max_size=200).map(lambda t: t.encode("utf-16")),
)


@pytest.mark.timeout(60)
@FUZZ
@given(random_bytes)
def test_random_bytes_at_every_reader(data):
    in_file(data, ".yaml", read_any_config)
    in_file(data, ".csv", lambda p: read_labels(p, DatasetConfig(), 116))
    in_file(data, ".csv", read_predictions)
    in_file(data, ".jpg", open_rgb)


cell = st.one_of(st.sampled_from(["", " ", "30", "-4", "1e9", "nan", "inf", "20-29", "70+", "../x.jpg", "/etc/x",
                                  "img/a.jpg", "=1+1", "a,b", 'say "hi"', "\t", "ñ", "sex", "file", "age"]),
                 st.text(max_size=12))
header = st.lists(st.sampled_from(["file", "age", "age_group", "sex", "race", "pred", "id", "image", "x", "",
                                   " age ", "split"]), min_size=0, max_size=5)


def to_csv(head: list[str], rows: list[list[str]]) -> bytes:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogatepass")


@pytest.mark.timeout(60)
@FUZZ
@given(header, st.lists(st.lists(cell, max_size=6), max_size=8))
def test_random_csv_shapes_at_the_csv_readers(head, rows):
    data = to_csv(head, rows)
    in_file(data, ".csv", lambda p: read_labels(p, DatasetConfig(), 116))
    in_file(data, ".csv", read_predictions)


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=10), st.sampled_from(["mae", "overall", "resnet18", "inverse", "yes", "auto"]))
keys = st.one_of(st.sampled_from(["model", "train", "optim", "rules", "metric", "max", "min", "grouping", "columns",
                                  "image", "age", "attributes", "age_bins", "n_boot", "epochs", "image_size",
                                  "robustness", "severities", "split", "intersections", "aligned"]),
                 st.text(max_size=8), st.integers(-3, 3))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@pytest.mark.timeout(60)
@FUZZ
@given(trees)
def test_random_yaml_trees_at_every_config(tree):
    text = yaml.safe_dump(tree, allow_unicode=True)
    in_file(text.encode("utf-8", "surrogatepass"), ".yaml", read_any_config)
