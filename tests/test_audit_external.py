"""``python -m agefair.audit`` with external predictions, labels-CSV datasets and cross-dataset evaluation.

One tiny baseline run is trained on a synthetic UTKFace-style folder (32 px, one epoch); the audits
then compare it with predictions files from "other models" on that folder, and evaluate it across
datasets on a labels CSV with age-group labels and its own attribute names.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from train_helpers import REPO_ROOT, face_image, make_train_folder, subprocess_env, write_override

from agefair.core.config import DataConfig
from agefair.data.age_groups import interval_error
from agefair.data.prepare import prepare
from agefair.fairness.results.result import load_summary

GROUPS = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    make_train_folder(root / "data")
    cfg = write_override(root / "small.yaml")
    args = ["--variant", "baseline", "--preset", "cpu", "--config", str(cfg), "--data", str(root / "data"),
            "--work", str(root / "work"), "--out", str(root / "runs"), "--epochs", "1", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "agefair.train", *args], cwd=REPO_ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (root / "lenient.yaml").write_text(yaml.safe_dump({
        "n_boot": 100, "min_group_size": 2, "gallery_k": 1,
        "rules": [{"metric": "mae", "max": 1000}, {"metric": "dist", "max": 1000},
                  {"metric": "dist", "grouping": "every attribute", "statistic": "difference", "max": 1000}]}))
    return root


def audit(root, *args, timeout=300):
    cmd = [sys.executable, "-m", "agefair.audit", "--work", str(root / "work"), "--thresholds",
           str(root / "lenient.yaml"), "--quiet", *map(str, args)]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)


def test_two_predictions_files_and_a_variant_in_one_report(trained):
    m = prepare(trained / "data", DataConfig(), work_root=trained / "work", progress=False).manifest
    test, train = m[m["split"] == "test"], m[m["split"] == "train"]
    rng = np.random.default_rng(1)
    pred_a = test["age"].to_numpy() + rng.normal(0, 3, len(test))
    files_a = ["/elsewhere/utk/" + f if i % 2 else f for i, f in enumerate(test["file"])]  # paths or tails
    pd.DataFrame({"file": files_a, "pred": pred_a}).to_csv(trained / "a.csv", index=False)
    ids = list(test["file"].iloc[:-1])  # one test image without a prediction
    b = pd.DataFrame({"image_id": ids + ["nosuch_1.jpg", "nosuch_2.jpg", "nosuch_3.jpg", train["file"].iloc[0],
                                         train["file"].iloc[1], ids[0], ids[1]],
                      "predicted_age": list(test["age"].iloc[:-1] + 10.0) + [30, 30, 30, 30, 30, 55, "n/a"]})
    b.to_csv(trained / "b.csv", index=False)

    done = audit(trained, "--runs", trained / "runs", "--data", trained / "data", "--out", trained / "rep",
                 "--predictions", trained / "a.csv", "--name", "model_a", "--predictions", trained / "b.csv",
                 "--name", "model_b")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "model_a" in out and "baseline" in out
    assert (f"{len(test) - 1} of {len(b)} rows matched; 3 unknown ids (e.g. nosuch_1.jpg, nosuch_2.jpg, nosuch_3.jpg); "
            "2 images outside the audited split") in out
    for part in ("1 repeated images (first kept)", "1 no usable predicted age (e.g. ", ": 'n/a')",
                 f"1 of {len(test)} audited images have no prediction"):
        assert part in out, part

    summary = json.loads((trained / "rep" / "summary.json").read_text())
    assert [r["variant"] for r in summary["leaderboard"]] == ["baseline", "model_a", "model_b"]
    mb = summary["variants"]["model_b"]["predictions"]
    assert (mb["matched"], mb["unknown"], mb["outside_split"], mb["duplicate"], mb["invalid_age"],
            mb["images_without_prediction"]) == (len(test) - 1, 3, 2, 1, 1, 1)
    ma = summary["variants"]["model_a"]["predictions"]
    assert ma["matched"] == len(test) and ma["matched_by"]["path"] == (len(test) + 1) // 2
    assert summary["variants"]["baseline"]["source"] == "agefair"
    assert summary["variants"]["baseline"]["trained_on"] == "this dataset's train split"
    assert summary["dataset"]["split"] == "test" and summary["dataset"]["labels"] == "exact"
    # the numbers are the predictions' numbers
    assert summary["variants"]["model_a"]["audit"]["overall"]["mae"]["value"] == pytest.approx(
        np.mean(np.abs(np.round(pred_a, 4) - test["age"].to_numpy())), abs=1e-6)
    assert summary["variants"]["model_b"]["audit"]["overall"]["bias"]["value"] == pytest.approx(10.0)
    for model in ("baseline", "model_a", "model_b"):  # the same groupings for every model
        assert set(summary["variants"][model]["audit"]["groupings"]) == {
            "age_bin", "gender", "ethnicity", "gender x ethnicity", "age_bin x ethnicity", "shot"}
    preds = pd.read_csv(trained / "rep" / "predictions.csv")
    assert preds.groupby("variant").size().to_dict() == {"baseline": len(test), "model_a": len(test),
                                                         "model_b": len(test) - 1}
    html = (trained / "rep" / "report.html").read_text()
    assert 'id="models-table"' in html and "3 unknown ids" in html and "predictions file" in html
    assert all(name in html for name in ("baseline", "model_a", "model_b"))
    assert "data:image/jpeg;base64," in html  # the variant's Grad-CAM gallery


def interval_dataset(root, n=54, photos=2):
    """A labels CSV with age groups and custom attribute names; ``photos`` wide pictures with no face."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        group = GROUPS[i % len(GROUPS)]
        lo = 70 if group.startswith("more") else int(group.split("-")[0])
        buf = io.BytesIO()
        Image.fromarray(face_image(rng, lo + 2)).save(buf, format="JPEG", quality=85)
        (root / "pics").mkdir(parents=True, exist_ok=True)
        (root / "pics" / f"p{i:03d}.jpg").write_bytes(buf.getvalue())
        rows.append({"path": f"pics/p{i:03d}.jpg", "age_range": group, "sex": ["F", "M"][i % 2],
                     "skin_tone": ["I-II", "III-IV", "V-VI"][(i // 2) % 3], "camera": "x"})
    for j in range(photos):
        Image.fromarray(np.full((200, 320, 3), 100 + 20 * j, np.uint8)).save(root / "pics" / f"wide{j}.jpg")
        rows.append({"path": f"pics/wide{j}.jpg", "age_range": "20-29", "sex": "F", "skin_tone": "I-II",
                     "camera": "y"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    (root / "dataset.yaml").write_text("columns: {image: path, age_group: age_range, attributes: [sex, skin_tone]}\n")
    return pd.DataFrame(rows)


def test_cross_dataset_audit_on_age_groups_with_custom_attributes(trained):
    ds = trained / "groups"
    rows = interval_dataset(ds)
    rng = np.random.default_rng(2)
    ext = pd.DataFrame({"file": rows["path"], "pred": rng.uniform(0, 90, len(rows)).round(2)})
    ext.to_csv(trained / "ext.csv", index=False)

    done = audit(trained, "--runs", trained / "runs", "--data", ds / "labels.csv", "--dataset-config",
                 ds / "dataset.yaml", "--predictions", trained / "ext.csv", "--out", trained / "rep_groups")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "audited on labels.csv" in done.stdout and "all split" in done.stdout and "age-group labels" in done.stdout
    summary = json.loads((trained / "rep_groups" / "summary.json").read_text())
    d = summary["dataset"]
    assert (d["labels"], d["split"], d["attributes"], d["images_in_split"]) == ("interval", "all", ["sex", "skin_tone"],
                                                                                len(rows))
    base = summary["variants"]["baseline"]
    assert "cross-dataset" in base["trained_on"] and base["evaluated_on"].startswith("labels.csv (all split")
    faces = base["coverage"]["faces"]
    assert faces["no_face"] == 2 and faces["whole"] == len(rows) - 2 and base["coverage"]["predicted"] == len(rows) - 2
    assert summary["thresholds"] and all(r["metric"] == "dist" for r in summary["thresholds"])
    assert {r["rule"] for r in summary["thresholds_not_applicable"]} == {"mae value"}

    preds = pd.read_csv(trained / "rep_groups" / "predictions.csv")
    for model in ("baseline", "ext"):
        audit_ = summary["variants"][model]["audit"]
        assert audit_["labels"] == "interval"
        assert set(audit_["groupings"]) == {"age_group", "sex", "skin_tone", "sex x skin_tone", "age_group x sex",
                                            "age_group x skin_tone"}
        p = preds[preds["variant"] == model]
        e = interval_error(p["age_lo"], p["age_hi"], p["pred"])
        for g in audit_["groupings"]["skin_tone"]["groups"]:
            sel = (p["skin_tone"] == g["group"]).to_numpy()
            assert g["n"] == sel.sum()
            assert g["in_group"]["value"] == pytest.approx(np.mean(e[sel] == 0))
            assert g["dist"]["value"] == pytest.approx(np.mean(np.abs(e[sel])))
            assert g["signed"]["value"] == pytest.approx(np.mean(e[sel]))
            assert g["dist"]["ci"][0] <= g["dist"]["value"] <= g["dist"]["ci"][1]
        assert {g["group"] for g in audit_["groupings"]["sex"]["groups"]} == {"F", "M"}
    assert set(preds.loc[preds["variant"] == "ext", "age_group"]) >= {"0-2", "70+"}

    # the age gates, on the rows they can judge: a group straddling a boundary is excluded and counted
    typed = load_summary(trained / "rep_groups" / "summary.json")  # the written JSON parses as the typed summary
    for model in ("baseline", "ext"):
        gates = typed.audit(model).gates
        assert {r.grouping for r in gates} == {"overall", "sex", "skin_tone", "sex x skin_tone"}  # no age grouping
        c25 = next(r for r in gates if r.gate.name == "challenge-25" and r.grouping == "overall")
        p = preds[preds["variant"] == model]
        straddling = ((p["age_lo"] < 18) & (p["age_hi"] > 18)).sum()
        g = c25.groups[0]
        assert c25.labels == "interval" and straddling > 0
        assert g.n_excluded == straddling and g.n_kept + g.n_excluded == g.n_rows == len(p)
        assert g.false_pass.n == (p["age_hi"] <= 18).sum() and g.false_challenge.n == (p["age_lo"] >= 18).sum()
        assert c25.curves is not None and len(c25.curves.challenge_ages) == 41
        assert next(r for r in gates if r.grouping == "sex x skin_tone").curves is None  # kept for one attribute only

    html = (trained / "rep_groups" / "report.html").read_text()
    for needle in ("<h2>Age gates</h2>", "chart-gate-challenge-25-0", "excluded rows", "straddl"):
        assert needle.lower() in html.lower(), needle
    for needle in ("in age group", "Every number below comes from", "chart-group-sex", "chart-group-skin-tone",
                   "chart-group-age-group-x-sex", "Share in age group", "cross-dataset evaluation",
                   "2 without a face found (no prediction)", "Grad-CAM galleries were skipped: galleries rank errors"):
        assert needle.lower() in html.lower(), needle


def test_cross_dataset_audit_on_exact_ages_with_galleries(trained):
    """A labels CSV with exact ages (paths reaching outside its folder) and aligned crops: MAE metrics by its
    own attributes, Grad-CAM galleries of the crops."""
    files = sorted(p.name for p in (trained / "data").iterdir())[::2]
    (trained / "exact").mkdir(exist_ok=True)
    pd.DataFrame({"file": ["../data/" + f for f in files], "age": [int(f.split("_")[0]) + 0.5 for f in files],
                  "sex": ["s" + f.split("_")[1] for f in files], "tone": ["t" + f.split("_")[2] for f in files]}
                 ).to_csv(trained / "exact" / "labels.csv", index=False)
    (trained / "exact.yaml").write_text("aligned: 'yes'\nname: exact-demo\nallow_paths_outside: yes\n")
    done = audit(trained, "--runs", trained / "runs", "--data", trained / "exact", "--dataset-config",
                 trained / "exact.yaml", "--out", trained / "rep_exact")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((trained / "rep_exact" / "summary.json").read_text())
    assert summary["dataset"]["name"] == "exact-demo" and summary["dataset"]["labels"] == "exact"
    a = summary["variants"]["baseline"]["audit"]
    assert set(a["groupings"]) == {"age_bin", "sex", "tone", "sex x tone", "age_bin x sex", "age_bin x tone"}
    preds = pd.read_csv(trained / "rep_exact" / "predictions.csv")
    assert len(preds) == len(files) and list(preds.columns[:4]) == ["file", "variant", "age", "pred"]
    assert a["overall"]["mae"]["value"] == pytest.approx((preds["pred"] - preds["age"]).abs().mean())
    row = summary["leaderboard"][0]
    assert row["ethnicity_gap"] is None and row["gap_grouping"] in ("sex", "tone")
    html = (trained / "rep_exact" / "report.html").read_text()
    assert "largest attribute MAE gap" in html and "data:image/jpeg;base64," in html and "Worst errors by tone" in html


@pytest.mark.parametrize("case", ["split_all_on_training_data", "no_age_column", "nothing_matches", "csv_for_train",
                                  "name_clash"])
def test_bad_usage_is_one_line_exit_2(trained, tmp_path, case):
    data = ["--data", trained / "data"]
    if case == "split_all_on_training_data":
        args, needle = ["--runs", trained / "runs", "--split", "all", *data], "--split all would audit baseline"
    elif case == "no_age_column":
        (tmp_path / "p.csv").write_text("file,score\na.jpg,3\n")
        args, needle = ["--predictions", tmp_path / "p.csv", *data], "no predicted-age column"
    elif case == "nothing_matches":
        (tmp_path / "p.csv").write_text("file,pred\na.jpg,3\nb.jpg,4\n")
        args, needle = ["--predictions", tmp_path / "p.csv", *data], "none of its 2 rows matches"
    elif case == "name_clash":
        (tmp_path / "p.csv").write_text("file,pred\na.jpg,3\n")
        args, needle = ["--runs", trained / "runs", "--predictions", tmp_path / "p.csv", "--name", "baseline",
                        *data], "a trained variant has that name"
    else:
        interval_dataset(tmp_path / "ds", n=9, photos=0)
        done = subprocess.run([sys.executable, "-m", "agefair.train", "--variant", "baseline", "--data",
                               tmp_path / "ds", "--work", tmp_path / "w", "--out", tmp_path / "r"],
                              cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
        args, needle = None, "this command reads a UTKFace image folder"
    if args is not None:
        done = audit(trained, "--out", tmp_path / "rep", *args)
    assert done.returncode == 2, done.stdout[-1000:] + done.stderr[-1000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agefair: error:") and needle in lines[0], lines
