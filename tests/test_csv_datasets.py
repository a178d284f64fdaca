"""Labels-CSV datasets (agefair.data.csv_dataset), age groups, interval metrics, predictions matching."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import face_array, jpeg_bytes
from PIL import Image

from agefair.core.config import DataConfig, DatasetConfig, ThresholdRule, load_dataset_config, validate
from agefair.core.errors import AgefairError
from agefair.data.age_groups import interval_error, parse_age_group
from agefair.data.prepare import prepare
from agefair.fairness.auditing.external import Matcher
from agefair.fairness.auditing.thresholds import judge, not_applicable
from agefair.fairness.stats.metrics import AuditSettings, audit_variant, grouped_metrics

FAIRFACE_GROUPS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]
FAIRFACE_RACES = ["White", "Black", "East Asian", "Southeast Asian", "Indian", "Middle Eastern", "Latino_Hispanic"]


# --------------------------------------------------------------------------- age groups

@pytest.mark.parametrize("label, lo, hi, canonical", [
    ("20-29", 20, 30, "20-29"), (" 60 - 69 ", 60, 70, "60-69"), ("30 to 39", 30, 40, "30-39"), ("10–19", 10, 20, "10-19"),
    ("0-2", 0, 3, "0-2"), ("70+", 70, math.inf, "70+"), ("more than 70", 70, math.inf, "70+"),
    ("70 and over", 70, math.inf, "70+"), ("Over 80", 80, math.inf, "80+"), (">=65", 65, math.inf, "65+"),
    ("under 3", 0, 3, "0-2"), ("<18", 0, 18, "0-17"), ("25", 25, 26, "25-25"),
])
def test_age_group_labels(label, lo, hi, canonical):
    g = parse_age_group(label)
    assert (g.lo, g.hi, g.label) == (lo, hi, canonical)


@pytest.mark.parametrize("label", ["", "adult", "29-20", "20-", "-5", "20-29 years old", "200+", "under 0"])
def test_age_group_labels_not_understood(label):
    assert parse_age_group(label) is None


def test_age_group_aliases():
    assert parse_age_group("Senior", {"senior": "65+"}).label == "65+"
    assert parse_age_group("senior") is None


def test_interval_error_inside_above_below_open():
    lo = np.array([20, 20, 20, 70, 0])
    hi = np.array([30, 30, 30, np.inf, 3])
    pred = np.array([25.0, 31.5, 17.0, 99.0, 3.0])
    assert list(interval_error(lo, hi, pred)) == [0.0, 1.5, -3.0, 0.0, 0.0]


# --------------------------------------------------------------------------- reading a labels CSV

def write_images(root, files, seed=0, size=(200, 200)):
    rng = np.random.default_rng(seed)
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(jpeg_bytes(rng, size))


def fairface_folder(root, n=63):
    """FairFace's own layout and label file: val/N.jpg and fairface_label_val.csv."""
    rows = [{"file": f"val/{i + 1}.jpg", "age": FAIRFACE_GROUPS[i % 9], "gender": ["Male", "Female"][i % 2],
             "race": FAIRFACE_RACES[i % 7], "service_test": str(i % 3 == 0)} for i in range(n)]
    write_images(root, [r["file"] for r in rows])
    pd.DataFrame(rows).to_csv(root / "fairface_label_val.csv", index=False)
    return root / "fairface_label_val.csv"


def test_fairface_label_file_loads_with_the_shipped_mapping(tmp_path):
    csv = fairface_folder(tmp_path / "fairface")
    p = prepare(csv, DataConfig(), work_root=tmp_path / "work", progress=False,
                dataset_cfg=load_dataset_config("fairface"))
    assert (p.kind, p.labels, p.name, p.attributes) == ("csv", "interval", "FairFace", ["gender", "race"])
    m = p.manifest
    assert len(m) == 63 and "service_test" not in m.columns
    assert set(m["age_group"]) == {"0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70+"}
    assert set(m["race"]) == set(FAIRFACE_RACES)  # the dataset's own category names
    old = m[m["age_group"] == "70+"]
    assert (old["age_lo"] == 70).all() and np.isinf(old["age_hi"]).all()
    assert set(p.groupings) == {"age_group", "gender", "race", "gender x race", "age_group x gender",
                                "age_group x race"}
    assert p.split_meta["stratified_by"] == ["age_group", "gender", "race"]
    assert p.data_dir == csv.parent


def test_folder_with_labels_csv_and_default_columns(tmp_path):
    """No config: 'file', a numeric 'age' (exact ages) and every other column as an attribute."""
    root = tmp_path / "ds"
    files = [f"img/{i}.jpg" for i in range(40)]
    write_images(root, files)
    pd.DataFrame({"file": files, "age": [20 + i % 10 for i in range(40)], "sex": ["f", "m"] * 20,
                  "skin_tone": ["light", "medium", "dark", "dark"] * 10}).to_csv(root / "labels.csv", index=False)
    p = prepare(root, DataConfig(), work_root=tmp_path / "work", progress=False)
    assert (p.labels, p.attributes, p.age_key) == ("exact", ["sex", "skin_tone"], "age_bin")
    assert set(p.groupings) == {"age_bin", "sex", "skin_tone", "sex x skin_tone", "age_bin x sex", "age_bin x skin_tone"}
    assert p.manifest["age"].dtype == float and len(p.manifest) == 40
    assert set(p.manifest["split"]) == {"train", "val", "test"}
    again = prepare(root, DataConfig(), work_root=tmp_path / "work2", progress=False)
    assert list(again.manifest["split"]) == list(p.manifest["split"])  # seeded


def test_every_row_problem_is_reported_with_its_action(tmp_path):
    root = tmp_path / "ds"
    good = [f"img/{i}.jpg" for i in range(12)]
    write_images(root, good)
    (root / "img/empty.jpg").write_bytes(b"")
    (root / "img/text.jpg").write_text("not an image")
    Image.fromarray(face_array(np.random.default_rng(5))).convert("L").save(root / "img/gray.jpg")
    (root / "img/copy.jpg").write_bytes((root / "img/0.jpg").read_bytes())  # same content, same labels
    (root / "img/clash.jpg").write_bytes((root / "img/1.jpg").read_bytes())  # same content, other labels
    rows = [{"path": f, "age_group": "20-29", "group": "a" if i % 2 else "b"} for i, f in enumerate(good)]
    rows[1]["age_group"] = "30-39"
    rows += [{"path": "img/gray.jpg", "age_group": "70+", "group": "a"},
             {"path": "img/missing.jpg", "age_group": "20-29", "group": "a"},
             {"path": "img/empty.jpg", "age_group": "20-29", "group": "a"},
             {"path": "img/text.jpg", "age_group": "20-29", "group": "a"},
             {"path": "img/2.jpg", "age_group": "twenties", "group": "a"},
             {"path": "img/3.jpg", "age_group": "20-29", "group": ""},
             {"path": "", "age_group": "20-29", "group": "a"},
             {"path": "img/copy.jpg", "age_group": "20-29", "group": "b"},
             {"path": "img/clash.jpg", "age_group": "50-59", "group": "a"},
             {"path": "img/4.jpg", "age_group": "20-29", "group": "b"}]  # the same file listed twice
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    cfg = DatasetConfig.model_validate({"columns": {"image": "path"}})
    p = prepare(root / "labels.csv", DataConfig(), work_root=tmp_path / "work", progress=False, dataset_cfg=cfg)
    counts = p.quality_report["counts"]
    assert counts == {"missing_path": 1, "missing_file": 1, "outside_folder": 0, "not_regular_file": 0, "zero_byte": 1,
                      "unreadable": 1, "bad_age": 0, "bad_age_group": 1, "missing_attribute": 1, "non_rgb": 1, "duplicate_agreeing": 4,
                      "duplicate_conflicting": 2}
    kept = set(p.manifest["file"])
    assert "img/gray.jpg" in kept and "img/0.jpg" in kept and "img/4.jpg" in kept
    assert not kept & {"img/missing.jpg", "img/empty.jpg", "img/text.jpg", "img/copy.jpg", "img/1.jpg", "img/clash.jpg"}
    assert p.manifest["file"].is_unique and len(p.manifest) == 12
    # the rows with a label problem are dropped; the same images' good rows are kept
    assert p.manifest.set_index("file").loc["img/2.jpg", "age_group"] == "20-29"
    assert p.quality_report["files_scanned"] == len(rows)
    details = {d["problem"]: d["detail"] for d in p.quality_report["problems"]}
    assert details["bad_age_group"].startswith("line 18: age group 'twenties'")


@pytest.mark.parametrize("content, config, needle", [
    ("image,age\na.jpg,3\n", {}, "no image-path column 'file' (columns: image, age)"),
    ("file,years\na.jpg,3\n", {}, "no 'age' or 'age_group' column"),
    ("file,age\na.jpg,3\n", {"columns": {"attributes": ["race"]}}, "no attribute column 'race'"),
    ("file,age,split\na.jpg,3,x\n", {}, "attribute column 'split' clashes"),
    ("", {}, "empty labels file"),
    ("file,age\n", {}, "no rows under the header"),
])
def test_bad_labels_csv_is_a_one_line_error(tmp_path, content, config, needle):
    csv = tmp_path / "labels.csv"
    csv.write_text(content)
    with pytest.raises(AgefairError) as exc:
        prepare(csv, DataConfig(), work_root=tmp_path / "w", progress=False,
                dataset_cfg=DatasetConfig.model_validate(config))
    assert needle in str(exc.value) and "\n" not in str(exc.value) and str(csv) in str(exc.value)


@pytest.mark.parametrize("data, key", [
    ({"columns": {"imag": "x"}}, "columns.imag"),
    ({"columns": {"age": "a", "age_group": "g"}}, "columns"),
    ({"aligned": "maybe"}, "aligned"),
    ({"intersections": [["sex"]]}, "intersections"),
])
def test_bad_dataset_config_names_the_key(data, key):
    with pytest.raises(AgefairError) as exc:
        validate(DatasetConfig, data, "ds.yaml")
    assert str(exc.value).startswith(f"ds.yaml: {key}")


def test_unknown_intersection_column(tmp_path):
    root = tmp_path / "ds"
    write_images(root, ["a.jpg", "b.jpg"])
    pd.DataFrame({"file": ["a.jpg", "b.jpg"], "age": [3, 40], "sex": ["f", "m"]}).to_csv(root / "labels.csv", index=False)
    cfg = DatasetConfig.model_validate({"intersections": [["sex", "race"]]})
    with pytest.raises(AgefairError, match="'race' is not an attribute"):
        prepare(root, DataConfig(), work_root=tmp_path / "w", progress=False, dataset_cfg=cfg)


# --------------------------------------------------------------------------- interval metrics

def interval_predictions(n=900, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    groups = [parse_age_group(g) for g in ["0-2", "3-9", "20-29", "40-49", "more than 70"]]
    pick = rng.integers(0, len(groups), n)
    tone = rng.choice(["light", "dark"], n)
    centre = np.array([g.lo + 2 for g in groups])[pick]
    pred = centre + rng.normal(0, 4, n) + np.where(tone == "dark", 6.0, 0.0)  # dark: pushed too old
    return pd.DataFrame({"age_group": [groups[i].label for i in pick], "age_lo": [groups[i].lo for i in pick],
                         "age_hi": [groups[i].hi for i in pick], "pred": pred, "skin_tone": tone,
                         "sex": rng.choice(["f", "m"], n)})


def test_interval_metrics_per_group_match_numpy():
    df = interval_predictions()
    res = grouped_metrics(df, ["skin_tone"], AuditSettings(n_boot=200, seed=1))
    e = interval_error(df["age_lo"], df["age_hi"], df["pred"])
    for g in res["groups"]:
        sel = (df["skin_tone"] == g["group"]).to_numpy()
        assert g["n"] == sel.sum()
        assert g["in_group"]["value"] == pytest.approx(np.mean(e[sel] == 0))
        assert g["dist"]["value"] == pytest.approx(np.mean(np.abs(e[sel])))
        assert g["signed"]["value"] == pytest.approx(np.mean(e[sel]))
        assert g["too_old"]["value"] == pytest.approx(np.mean(e[sel] > 0))
        assert g["too_young"]["value"] == pytest.approx(np.mean(e[sel] < 0))
        lo, hi = g["dist"]["ci"]
        assert lo < g["dist"]["value"] < hi
        assert "mae" not in g
    d = res["disparity"]
    assert d["dist"]["worst_group"] == "dark" and d["dist"]["difference_ci"][0] > 0
    assert d["in_group"]["worst_group"] == "dark"  # the lowest share inside
    assert d["signed"]["worst_group"] == "dark"


def test_interval_bootstrap_agrees_with_fairlearn_metricframe():
    df = interval_predictions(400)
    fast = grouped_metrics(df, ["sex"], AuditSettings(n_boot=200, seed=2))
    slow = grouped_metrics(df, ["sex"], AuditSettings(n_boot=200, seed=2, bootstrap="fairlearn"))
    for a, b in zip(fast["groups"], slow["groups"]):
        for m in ("in_group", "dist", "signed"):
            assert a[m]["value"] == pytest.approx(b[m]["value"])
            width = b[m]["ci"][1] - b[m]["ci"][0]
            assert a[m]["ci"][0] == pytest.approx(b[m]["ci"][0], abs=0.3 * width)


def test_interval_audit_thresholds_every_attribute_and_not_applicable():
    df = interval_predictions()
    groupings = {"age_group": ["age_group"], "sex": ["sex"], "skin_tone": ["skin_tone"],
                 "sex x skin_tone": ["sex", "skin_tone"]}
    audit = audit_variant(df, AuditSettings(n_boot=100), groupings)
    assert audit["labels"] == "interval" and audit["attributes"] == ["sex", "skin_tone"]
    assert "age_bin_spread" not in audit and set(audit["overall"]) == {"in_group", "dist", "signed", "too_old",
                                                                       "too_young", "n"}
    rules = [ThresholdRule(metric="dist", grouping="every attribute", statistic="difference", max=0.5),
             ThresholdRule(metric="mae", max=8.0),
             ThresholdRule(metric="in_group", grouping="race", statistic="worst_group", min=0.1)]
    rows = judge(rules, {"m": audit})
    assert [(r["grouping"], r["passed"]) for r in rows] == [("sex", True), ("skin_tone", False), ("race", False)]
    assert rows[1]["rule"] == "dist difference by skin_tone" and rows[1]["group"] == "dark vs light"
    assert "no grouping 'race'" in rows[2]["group"]
    assert not_applicable(rules, {"m": audit}) == [{"rule": "mae value", "metric": "mae",
                                                     "reason": "mae is for exact ages"}]


# --------------------------------------------------------------------------- matching predictions to images

def test_matcher_path_suffix_name_stem_ambiguous_unknown():
    m = Matcher(["val/1.jpg", "val/2.jpg", "a/x.png", "b/x.png"])
    assert m.match("val/1.jpg") == (0, "path")
    assert m.match("/data/fairface/val/2.jpg") == (1, "path suffix")
    assert m.match("1.jpg") == (0, "path suffix")
    assert m.match("2") == (1, "file stem")
    assert m.match("2.png") == (1, "file stem")
    assert m.match("x.png") == (None, "ambiguous")
    assert m.match("/else/a/x.png") == (2, "path suffix")
    assert m.match("val/3.jpg") == (None, "unknown")
