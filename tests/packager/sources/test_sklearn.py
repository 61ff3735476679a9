"""A pickled scikit-learn pipeline (scaler + logistic regression) through the CLI, the pickle warning, and
the refusal of a step skl2onnx has no converter for."""

from __future__ import annotations

import numpy as np
import pytest

from packager.cli import main
from runtime.manifest import Manifest
from tests.cli_checks import fails_cleanly
from tests.fixtures.tabular import FEATURES, make_table, read_submission, write_project

pytest.importorskip("skl2onnx")
pytestmark = pytest.mark.timeout(300)


def _fit(pipeline, classes: int = 3):
    x, y = make_table(700, classes, seed=11, nan_share=0.0)
    return pipeline.fit(x[:500], y[:500]), x[500:].reset_index(drop=True)


def test_scaler_and_logistic_regression_pipeline(tmp_path, capsys):
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model, test = _fit(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)))
    joblib.dump(model, tmp_path / "pipe.joblib")
    spec = write_project(tmp_path, test, 3, '[[model]]\nname = "linear"\nsklearn = "pipe.joblib"\n')
    bundle = tmp_path / "bundle"
    assert main(["package", str(spec), "-o", str(bundle), "--no-wheels", "--no-profile"]) == 0
    out = capsys.readouterr()
    assert "pipe.joblib is a pickle: loading it runs whatever code it names" in out.out + out.err
    report = (bundle / "report.md").read_text()
    assert "pipe.joblib is a pickle" in report and "| linear | fp32 | fp32.onnx | sklearn | output[class 2] |" in report
    member = Manifest.load(bundle).members[0]
    assert member.source == "sklearn" and member.device == "cpu" and member.inputs[0].columns == FEATURES
    assert member.exporter.startswith("skl2onnx")
    sub = tmp_path / "submission.csv"
    assert main(["run", str(bundle), "--data", str(tmp_path), "-o", str(sub)]) == 0
    got = read_submission(sub)[["p0", "p1", "p2"]].to_numpy()
    np.testing.assert_allclose(got, model.predict_proba(test[list(FEATURES)]), atol=1e-5)


def test_a_step_with_no_converter_is_named(tmp_path, capsys):
    import joblib
    from sklearn.decomposition import FactorAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    model, test = _fit(Pipeline([("factors", FactorAnalysis(n_components=3)), ("clf", LogisticRegression())]))
    joblib.dump(model, tmp_path / "pipe.joblib")
    spec = write_project(tmp_path, test, 3, '[[model]]\nname = "linear"\nsklearn = "pipe.joblib"\n')
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"],
                  "skl2onnx cannot convert step 'factors' (sklearn.decomposition._factor_analysis.FactorAnalysis)",
                  "update_registered_converter")
    assert not (tmp_path / "b").exists()


def test_a_regressor_and_a_file_that_is_no_estimator(tmp_path, capsys):
    import joblib
    from sklearn.linear_model import Ridge

    model, test = _fit(Ridge(), classes=1)
    joblib.dump(model, tmp_path / "ridge.joblib")
    spec = write_project(tmp_path, test, 1, '[[model]]\nname = "ridge"\nsklearn = "ridge.joblib"\n')
    assert main(["package", str(spec), "-o", str(tmp_path / "b"), "--no-wheels", "--no-profile"]) == 0
    sub = tmp_path / "s.csv"
    assert main(["run", str(tmp_path / "b"), "--data", str(tmp_path), "-o", str(sub)]) == 0
    np.testing.assert_allclose(read_submission(sub)["target"], model.predict(test[list(FEATURES)]), rtol=1e-5, atol=1e-5)
    joblib.dump({"not": "a model"}, tmp_path / "ridge.joblib")
    capsys.readouterr()
    fails_cleanly(capsys, main, ["package", str(spec), "-o", str(tmp_path / "c"), "--no-wheels", "--no-profile"],
                  "ridge.joblib holds a dict, not a scikit-learn estimator or pipeline")
