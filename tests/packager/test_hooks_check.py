"""Packaging with hooks: the spec keys, the row-wise check, the imports, the user's traceback, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.build import package
from packager.cli import main
from packager.spec import load_spec
from runtime.errors import HookError, SpecError
from tests.fixtures import projects


def _nothing_written(folder: Path) -> None:
    assert not (folder / "bundle").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".bundle")]  # no staged folder left behind


def test_a_groupby_without_its_group_is_not_row_wise_and_the_message_says_what_to_do(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p", group=False)
    with pytest.raises(HookError) as err:
        package(spec, tmp_path / "bundle")
    text = str(err.value)
    assert "is not row-wise" in text and "no features_group is declared" in text
    assert 'features_group = "<column>"' in text and "features_files" in text
    _nothing_written(tmp_path)


def test_a_whole_table_statistic_fails_even_with_a_group(tmp_path):
    hook = projects.FEATURES.replace('"store_mean": sales.transform("mean")', '"store_mean": df["sales"] - df["sales"].mean()')
    spec, _ = projects.make_groupby(tmp_path / "p", hook=hook)
    with pytest.raises(HookError, match="groups of features_group = 'store' were kept whole"):
        package(spec, tmp_path / "bundle")
    _nothing_written(tmp_path)


def test_a_failing_hook_stops_packaging_with_the_users_traceback(tmp_path, capsys):
    hook = projects.FEATURES.replace("def make_features(df):\n", "def make_features(df):\n    return df['no_such_column']\n")
    spec, _ = projects.make_groupby(tmp_path / "p", hook=hook)
    code = main(["package", str(spec), "-o", str(tmp_path / "bundle"), "--no-wheels", "--no-profile"])
    err = capsys.readouterr().err
    assert code == 2
    assert "features hook 'features:make_features' failed on the public test table (24 rows): KeyError in the hook" in err
    assert f'File "{tmp_path / "bundle"}' not in err and ".bundle.tmp-" not in err  # never the staged copy, gone now
    assert f'File "{tmp_path / "p" / "features.py"}", line 11, in make_features' in err  # the file the user edits
    assert "return df['no_such_column']" in err and "runtime/hooks.py" not in err
    _nothing_written(tmp_path)


def test_a_failing_postprocess_hook_names_the_users_file(tmp_path, capsys):
    hook = projects.POST.replace("    clipped = np.clip", "    1 / 0\n    clipped = np.clip")
    spec, _ = projects.make_postprocess(tmp_path / "p", hook=hook)
    code = main(["package", str(spec), "-o", str(tmp_path / "bundle"), "--no-wheels", "--no-profile"])
    err = capsys.readouterr().err
    assert code == 2 and "ZeroDivisionError" in err
    assert f'File "{tmp_path / "p" / "post.py"}"' in err and ".bundle.tmp-" not in err
    _nothing_written(tmp_path)


def test_a_hook_importing_what_kaggle_lacks_is_refused(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p", hook="import ninefit_no_such_pkg_xyz\n" + projects.FEATURES)
    (tmp_path / "p" / "ninefit_no_such_pkg_xyz.py").write_text("")  # importable here, but not bundled
    import sys

    sys.path.insert(0, str(tmp_path / "p"))
    try:
        with pytest.raises(HookError) as err:
            package(spec, tmp_path / "bundle")
    finally:
        sys.path.remove(str(tmp_path / "p"))
        sys.modules.pop("ninefit_no_such_pkg_xyz", None)
    assert "ninefit_no_such_pkg_xyz (in features.py" in str(err.value)
    assert "packager/data/kaggle_image.txt" in str(err.value)
    _nothing_written(tmp_path)


def test_check_imports_knows_the_image_the_wheels_and_the_standard_library(tmp_path):
    from packager.hooks_check import check_imports

    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "h.py").write_text("import os, json\nimport numpy as np\nfrom sklearn import linear_model\n"
                                             "from . import x\nimport helper\n")
    (tmp_path / "hooks" / "helper.py").write_text("")
    found = check_imports(tmp_path, provided={"numpy": None, "scikit-learn": None})
    assert {"os (standard library)", "numpy (Kaggle's image)", "sklearn (Kaggle's image)", "helper (hooks/)"} <= set(found)
    with pytest.raises(HookError, match="numpy"):
        check_imports(tmp_path, provided={"scikit-learn": None})


def test_a_member_column_the_hook_does_not_give_is_named(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p")
    spec.write_text(spec.read_text().replace('"store_weight", "sales"]', '"store_weight", "store_min"]'))
    with pytest.raises(SpecError, match="names column\\(s\\) store_min, which neither the test table nor the features "
                                        "hook 'features:make_features' gives"):
        package(spec, tmp_path / "bundle")
    _nothing_written(tmp_path)


def test_an_integer_input_fed_a_float_feature_is_refused(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p")
    spec.write_text(spec.read_text().replace('name = "x"', 'name = "x"\n      dtype = "int64"'))
    with pytest.raises(SpecError, match="is int64, but column 'store_mean' is float64: its values would be truncated"):
        package(spec, tmp_path / "bundle")


def test_a_postprocess_hook_leaving_sample_rows_unwritten_is_refused(tmp_path):
    hook = projects.POST.replace("return [[i, f\"{v:.3f}\"] for i, v in zip(ids, clipped)]",
                                 "return [[i, f\"{v:.3f}\"] for i, v in zip(ids[1:], clipped[1:])]")
    spec, _ = projects.make_postprocess(tmp_path / "p", hook=hook)
    with pytest.raises(HookError, match="returned no row for 1 of the 20 id\\(s\\) it was given \\(e.g. 'q0'\\)"):
        package(spec, tmp_path / "bundle")
    _nothing_written(tmp_path)


_TOPK = 'mode = "topk"\nk = 3\nclasses = ["cat", "dog", "fox", "owl", "yak"]'
_SPEC_CASES = [
    ('mode = "topk"\nk = 3', 'mode = "topk"\nk = 9', "`k` in [submission] is 9 (an integer); expected a whole number of "
                                                  "labels per row, 1 to 5"),
    ('mode = "topk"\nk = 3', 'mode = "topk"\nk = 3\nthresholds = 0.5', 'thresholds applies only with mode = "multilabel"'),
    ('mode = "topk"\nk = 3', 'mode = "topk"\nk = 3\nseparator = "o"', 'separator = "o" occurs inside a label'),
    ('mode = "topk"\nk = 3', 'mode = "topk"\nk = 3\ncolumns = 1', "`columns` in [submission]: unknown key"),
    (_TOPK, 'mode = "rle"', 'missing required key \'mask_shape\''),
    (_TOPK, 'mode = "long"\ntargets = ["a"]\nid_format = "{id}"',
     "expected a string holding {id} and {target}"),
    ('mode = "topk"\nk = 3', 'mode = "postprocess"', 'mode = "postprocess" needs postprocess = "module:function"'),
    (_TOPK, 'postprocess = "nothere:fn"', "postprocess = \"nothere:fn\": module file"),
    ('mode = "topk"\nk = 3', 'postprocess = "not a hook"', 'expected "module:function"'),
    ('mode = "topk"\nk = 3', 'mode = "multilabel"\nthresholds = [0.5, 0.5]',
     "`thresholds` in [submission] is [0.5, 0.5] (an array); expected a number, or an array of 5 numbers"),
]


@pytest.mark.parametrize("old, new, message", _SPEC_CASES)
def test_submission_keys_are_checked(tmp_path, old, new, message):
    spec, _ = projects.make_topk(tmp_path / "p")
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert message in str(err.value)


_DATA_CASES = [
    ('features_group = "store"', 'features_group = "shop"', "features_group = 'shop' is not a column of the test table"),
    ('columns = ["store_mean", "store_weight", "sales"]', 'columns = "store*"',
     'columns = "store*" is a pattern, but with [data] features the columns are the test table\'s plus the hook\'s'),
    ('features_files = ["lookup/stores.csv"]', 'features_files = ["lookup/none.csv"]',
     "features_files: 'lookup/none.csv' not found"),
    ('features_files = ["lookup/stores.csv"]', 'features_files = ["../x.csv"]', "inside it"),
    ('features = "features:make_features"', 'features = "feats:make_features"', "module file"),
    ('features = "features:make_features"', '', "features_files applies only with a features hook"),
]


@pytest.mark.parametrize("old, new, message", _DATA_CASES)
def test_features_keys_are_checked(tmp_path, old, new, message):
    spec, _ = projects.make_groupby(tmp_path / "p")
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    with pytest.raises(SpecError) as err:
        load_spec(spec)
    assert message in str(err.value)


def test_features_need_table_data(tmp_path):
    spec, _ = projects.make_groupby(tmp_path / "p")
    spec.write_text(spec.read_text().replace('[data]\n', '[data]\n    format = "images"\n    image_column = "store"\n'))
    with pytest.raises(SpecError, match="features applies to table data only"):
        load_spec(spec)


@pytest.mark.timeout(300)
def test_the_estimate_prices_the_hooks_as_stages(tmp_path):
    from packager.build import PackageOptions
    from packager.estimate import EstimateOptions, estimate_bundle
    from packager.estimate.measure.profile import ProfileOptions, profile_step

    spec, _ = projects.make_groupby(tmp_path / "p", post=projects.POST_ROUND)
    step = profile_step(ProfileOptions(seconds_per_member=0.2, startup=False, check_run=False))
    package(spec, tmp_path / "bundle", PackageOptions(steps=(step,)))
    est = estimate_bundle(tmp_path / "bundle", EstimateOptions(target="local", rows=200_000))
    stages = {i.stage: i for i in est.items}
    assert stages["features"].estimate.seconds > 0 and "measured on 24 public rows" in stages["features"].estimate.notes[0]
    assert stages["postprocess"].estimate.seconds > 0 and "at 1 write," in stages["postprocess"].estimate.notes[0]  # one member: the final write
    from runtime.manifest import Manifest

    hooks = Manifest.load(tmp_path / "bundle").profile.hooks
    assert hooks["features"].rows == 24 and hooks["postprocess"].rows == 24


def test_simulate_judges_each_format_by_its_own_cells(tmp_path):
    from packager.offline.simulate import check_submission
    from runtime.manifest import SubmissionSpec

    sample = tmp_path / "sample.csv"
    sample.write_text("id,y\na,x\nb,x\n")
    sub = tmp_path / "s.csv"
    cases = [
        (SubmissionSpec(id_column="id", columns=("y",), mode="topk", classes=("p", "q", "r"), k=2),
         "id,y\na,p q\nb,r p\n", "id,y\na,p q\nb,r\n"),
        (SubmissionSpec(id_column="id", columns=("y",), mode="multilabel", classes=("p", "q"), separator=";"),
         "id,y\na,p;q\nb,\n", "id,y\na,p;z\nb,\n"),
        (SubmissionSpec(id_column="id", columns=("y",), mode="rle", mask_shape=(2, 2)),
         "id,y\na,1 2 4 1\nb,\n", "id,y\na,1 2 4\nb,\n"),
    ]
    for spec, good, bad in cases:
        sub.write_text(good)
        assert check_submission(sub, sample, spec) == [], spec.mode
        sub.write_text(bad)
        (problem,) = check_submission(sub, sample, spec)
        assert "line 2" in problem or "line 3" in problem, problem
