"""LightGBM, XGBoost and CatBoost members through the CLI: binary and multiclass models trained here, packaged
(converted, checked against the library per class), run, and the submission compared with the library's own
predict; the rounds rung and its measured value factor; the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly
from tests.fixtures.tabular import (
    FEATURES,
    make_table,
    read_submission,
    train_catboost,
    train_lightgbm,
    train_xgboost,
    write_project,
)

pytest.importorskip("onnxmltools")
pytestmark = pytest.mark.timeout(300)

TRAIN, TEST = 600, 240


def _native(library: str, model, x, rounds: int = 0) -> np.ndarray:
    """The library's own probabilities for the test rows: the positive class's, or one per class."""
    if library == "lightgbm":
        p = model.predict(x, num_iteration=rounds or None)
    elif library == "xgboost":
        import xgboost as xgb

        p = model.predict(xgb.DMatrix(x), iteration_range=(0, rounds))
    else:
        p = model.predict_proba(x, ntree_end=rounds)
        p = p[:, 1] if p.shape[1] == 2 else p
    return np.asarray(p, dtype=np.float64).reshape(len(x), -1)


def _save(library: str, model, folder) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    if library == "lightgbm":
        model.save_model(str(folder / "model.txt"))
        return "model.txt"
    if library == "xgboost":
        model.save_model(str(folder / "model.json"))
        return "model.json"
    model.save_model(str(folder / "model.cbm"))
    return "model.cbm"


TRAINERS = {"lightgbm": train_lightgbm, "xgboost": train_xgboost, "catboost": train_catboost}


@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "multiclass"])
@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_tree_model_packages_runs_and_matches_its_library(library, classes, tmp_path, capsys):
    x, y = make_table(TRAIN + TEST, classes, seed=classes)
    model = TRAINERS[library](x[:TRAIN], y[:TRAIN], classes)
    test = x[TRAIN:].reset_index(drop=True)
    folder = tmp_path / "project"
    file = _save(library, model, folder)
    width = 1 if classes == 2 else classes
    spec = write_project(folder, test, width, f'[[model]]\nname = "gbm"\n{library} = "{file}"\n'
                                              '  [[model.variant]]\n  name = "half"\n  rounds = 20\n')
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile", "--target", "t4x2"]) == 0
    capsys.readouterr()
    manifest = Manifest.load(bundle)
    member = manifest.members[0]
    assert member.source == library and member.device == "cpu" and member.missing == "model"
    assert [i.columns for i in member.inputs] == [FEATURES]  # matched by the model's own names, not the table's order
    assert [v.name for v in member.variants] == ["fp32", "half"]
    expected_full, expected_half = _native(library, model, test), _native(library, model, test, rounds=20)
    # The half rung's value factor: R^2 of its outputs against the full model's over the public rows.
    sst = ((expected_full - expected_full.mean(axis=0)) ** 2).sum()
    r2 = 1 - ((expected_half - expected_full) ** 2).sum() / sst
    assert member.variants[1].value_factor == pytest.approx(max(0.01, min(1.0, r2)), abs=1e-6)
    assert 0.01 <= member.variants[1].value_factor < 1
    report = (bundle / "report.md").read_text()
    assert "## Parity with the library's own predictions" in report and f"| gbm | half | rounds20.onnx | {library} |" in report
    classes_checked = 1 if classes == 2 else classes
    parity = [c for r in json.loads((bundle / "verification.json").read_text()) for c in r["checks"]]
    assert len(parity) == 2 * 2 * classes_checked  # two rungs x (batch 1, member batch) x each class
    assert all(c["rows_differing"] <= c["rows_tolerance"] for c in parity)

    out = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(folder), "-o", str(out)]) == 0
    got = read_submission(out)
    cols = [c for c in got.columns if c != "id"]
    assert list(got["id"]) == [f"r{i}" for i in range(TEST)]
    np.testing.assert_allclose(got[cols].to_numpy(), expected_full, atol=1e-5)


@pytest.fixture(scope="module")
def lgb_project(tmp_path_factory):
    x, y = make_table(TRAIN + 100, 2, seed=5)
    model = train_lightgbm(x[:TRAIN], y[:TRAIN], 2)
    folder = tmp_path_factory.mktemp("lgb")
    model.save_model(str(folder / "model.txt"))
    return folder, x[TRAIN:].reset_index(drop=True), model


def test_a_column_the_test_table_lacks_is_named(lgb_project, tmp_path, capsys):
    folder, test, _ = lgb_project
    spec = write_project(tmp_path, test.drop(columns=["visits", "ratio"]), 1,
                         f'[[model]]\nname = "gbm"\nlightgbm = "{folder / "model.txt"}"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "the test table lacks 2 of the model's feature column(s): visits, ratio")


def test_columns_must_match_the_models_own_names(lgb_project, tmp_path, capsys):
    folder, test, _ = lgb_project
    cols = ", ".join(f'"{c}"' for c in ("age", "income", "score", "visits", "tenure", "height"))
    spec = write_project(tmp_path, test, 1, f'[[model]]\nname = "gbm"\nlightgbm = "{folder / "model.txt"}"\n'
                                            f'columns = [{cols}]\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "columns does not match the model's own feature names: missing 1: ratio; extra 1 (not features "
                  "of the model): height")


def test_a_model_trained_without_names_needs_columns(tmp_path, capsys):
    x, y = make_table(TRAIN + 50, 2, seed=7)
    model = train_lightgbm(x[:TRAIN].to_numpy(), y[:TRAIN], 2)  # numpy: LightGBM names them Column_0...
    model.save_model(str(tmp_path / "model.txt"))
    test = x[TRAIN:].reset_index(drop=True)
    spec = write_project(tmp_path, test, 1, '[[model]]\nname = "gbm"\nlightgbm = "model.txt"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "the model was trained without feature names", "columns = [...] (6 names)")
    cols = ", ".join(f'"{c}"' for c in FEATURES)
    spec.write_text(spec.read_text() + f"columns = [{cols}]\n")
    assert main(["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"]) == 0


def test_categorical_features_are_refused_with_their_names(tmp_path, capsys):
    import lightgbm as lgb

    x, y = make_table(TRAIN + 50, 2, seed=8)
    x["visits"] = (np.nan_to_num(x["visits"]) * 3).round().clip(-4, 4) + 4
    model = lgb.train({"objective": "binary", "verbose": -1, "min_data_per_group": 5, "cat_smooth": 1},
                      lgb.Dataset(x[:TRAIN], y[:TRAIN], categorical_feature=["visits"]), 30)
    model.save_model(str(tmp_path / "model.txt"))
    spec = write_project(tmp_path, x[TRAIN:].reset_index(drop=True), 1,
                         '[[model]]\nname = "gbm"\nlightgbm = "model.txt"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "categorical feature(s) visits", "Encode them as numbers")


def test_rounds_beyond_the_model_and_rungs_of_other_kinds_are_refused(lgb_project, tmp_path, capsys):
    folder, test, _ = lgb_project
    base = f'[[model]]\nname = "gbm"\nlightgbm = "{folder / "model.txt"}"\n'
    spec = write_project(tmp_path, test, 1, base + '  [[model.variant]]\n  name = "more"\n  rounds = 400\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "rounds = 400, but the model has 40 boosting rounds")
    spec = write_project(tmp_path, test, 1, base + '  [[model.variant]]\n  name = "half"\n  precision = "fp16"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "a lightgbm model's rungs are its first boosting rounds (rounds = N)")


def test_parity_beyond_the_row_tolerance_fails_with_the_share(lgb_project, tmp_path, capsys):
    """A tolerance nothing passes (atol 0, rtol 0: float32 sums differ from LightGBM's float64 in the last
    bits) makes packaging stop, with the share of rows that differ and the worst row."""
    folder, test, _ = lgb_project
    spec = write_project(tmp_path, test, 1, f'[[model]]\nname = "gbm"\nlightgbm = "{folder / "model.txt"}"\n'
                                            'atol = 0.0\nrtol = 0.0\nrows_tolerance = 0.0\n')
    err = fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                        "does not match lightgbm's own predictions", "of the rows differ on output (class 1)",
                        "(allowed: 0.00%, rows_tolerance)")
    assert not (tmp_path / "b").exists(), err


def test_margins_when_the_spec_asks(lgb_project, tmp_path, capsys):
    folder, test, model = lgb_project
    spec = write_project(tmp_path, test, 1, f'[[model]]\nname = "gbm"\nlightgbm = "{folder / "model.txt"}"\n'
                                            'prediction = "margin"\n')
    bundle = tmp_path / "b"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile"]) == 0
    out = tmp_path / "s.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path), "-o", str(out)]) == 0
    raw = model.predict(test, raw_score=True)
    np.testing.assert_allclose(read_submission(out)["target"].to_numpy(), raw, atol=1e-4)
    assert np.abs(raw).max() > 1  # margins, not probabilities


@pytest.mark.parametrize("library", ["lightgbm", "xgboost", "catboost"])
def test_multiclass_margins_match_the_librarys_raw_scores(library, tmp_path, capsys):
    x, y = make_table(TRAIN + 100, 3, seed=9)
    model = TRAINERS[library](x[:TRAIN], y[:TRAIN], 3)
    test = x[TRAIN:].reset_index(drop=True)
    file = _save(library, model, tmp_path)
    spec = write_project(tmp_path, test, 3, f'[[model]]\nname = "gbm"\n{library} = "{file}"\nprediction = "margin"\n')
    assert main(["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"]) == 0
    out = tmp_path / "s.csv"
    assert main(["run", str(tmp_path / "b"), "--data", str(tmp_path), "-o", str(out)]) == 0
    if library == "lightgbm":
        raw = model.predict(test, raw_score=True)
    elif library == "xgboost":
        import xgboost as xgb

        raw = model.predict(xgb.DMatrix(test), output_margin=True)
    else:
        raw = model.predict(test, prediction_type="RawFormulaVal")
    np.testing.assert_allclose(read_submission(out)[["p0", "p1", "p2"]].to_numpy(), raw, atol=1e-4)


@pytest.mark.parametrize("library", ["xgboost", "catboost"])
def test_categorical_features_of_xgboost_and_catboost_are_refused(library, tmp_path, capsys):
    x, y = make_table(TRAIN + 50, 2, seed=12)
    x["visits"] = (np.nan_to_num(x["visits"]) * 2).round().clip(-3, 3).astype(int) + 3
    if library == "xgboost":
        import xgboost as xgb

        cat = x.astype({"visits": "category"})
        model = xgb.train({"objective": "binary:logistic", "nthread": 1},
                          xgb.DMatrix(cat[:TRAIN], y[:TRAIN], enable_categorical=True), 10)
        model.save_model(str(tmp_path / "model.json"))
        file = "model.json"
    else:
        import catboost as cb

        model = cb.CatBoostClassifier(iterations=10, verbose=0, thread_count=1, allow_writing_files=False)
        model.fit(x[:TRAIN], y[:TRAIN], cat_features=["visits"])
        model.save_model(str(tmp_path / "model.cbm"))
        file = "model.cbm"
    spec = write_project(tmp_path, x[TRAIN:].reset_index(drop=True), 1,
                         f'[[model]]\nname = "gbm"\n{library} = "{file}"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  f"the {library} model has categorical feature(s) visits")
