"""Profiling: the stability rule, the stored profile and its fingerprint, the package step."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from packager.cli import main
from packager.estimate.measure.profile import (
    ProfileOptions,
    batch_sizes_for,
    profile_bundle,
    stable,
    write_synthetic_data,
)
from runtime.bundle import open_bundle
from runtime.data.testdata import open_test_data
from runtime.manifest import Manifest
from runtime.profile import CheckRun, DataRead, ProcessCheck, Profile, Startup, Write
from runtime.run import RunOptions

QUICK = ["--seconds", "0.3", "--batch-sizes", "32,256"]


@pytest.fixture
def bundle(digits_bundle, tmp_path) -> Path:
    """A private copy of the packaged digits bundle (no profile yet)."""
    dest = tmp_path / "digits"
    shutil.copytree(digits_bundle, dest)
    return dest


@pytest.mark.timeout(10)
def test_three_windows_within_ten_percent_are_stable():
    assert stable([1.0, 1.05, 1.02], 3, 0.10)
    assert stable([9.0, 1.0, 1.1, 1.05], 3, 0.10)  # only the last three count
    assert not stable([1.0, 1.2, 1.0], 3, 0.10)
    assert not stable([1.0, 1.0], 3, 0.10)


@pytest.mark.timeout(180)
def test_default_batch_sizes_bracket_the_packaged_one(digits_bundle):
    member = Manifest.load(digits_bundle).members[0]
    assert batch_sizes_for(member, ProfileOptions()) == (member.batch_size // 4, member.batch_size, member.batch_size * 4)
    assert batch_sizes_for(member, ProfileOptions(batch_sizes=(8, 2, 8))) == (2, 8)
    with pytest.raises(ValueError):
        ProfileOptions(seconds_per_member=0)


@pytest.mark.timeout(180)
def test_profile_cli_stores_profile_with_fingerprint(bundle, digits_dir, capsys):
    assert main(["profile", str(bundle), "--data", str(digits_dir / "data"), *QUICK]) == 0
    assert "profile stored" in capsys.readouterr().out
    opened = open_bundle(bundle)  # still verifies: the manifest is not checksummed
    profile = opened.manifest.profile
    fp = profile.fingerprint
    for key in ("cpu_model", "cpu_threads", "gpus", "versions", "device", "intra_op_threads"):
        assert key in fp.to_dict()
    assert fp.versions["onnxruntime"]
    assert profile.data.source.startswith("public test data") and not profile.data.synthetic
    for member in opened.manifest.members:
        for variant in member.variants:
            rec = profile.members[member.name][variant.name]  # the runtime's cost prior
            assert rec.s_per_row > 0 and rec.setup_s > 0
            assert rec.batch_size == member.batch_size
            assert set(rec.batches) == {32, 256}
            point = rec.batches[256]
            assert point.windows and point.calls >= len(point.windows)
            stages = point.stages
            assert stages.read + stages.decode + stages.preprocess + stages.infer + stages.postprocess == pytest.approx(
                point.s_per_batch)
    assert profile.data.read_s_per_row >= 0 and profile.write.s_per_row >= 0
    startup = profile.startup
    assert startup.import_s > 0 and startup.hash_bytes_per_s > 0
    # The process around the run, measured apart: start, imports, exit (with the members' sessions loaded), the
    # least of five runs each; the three of one run add up to that run's whole, so their least to no more than
    # the least whole (how close depends on how steady this machine was, not on ninefit: not asserted).
    assert startup.python_s > 0 and startup.imports_s > startup.python_s and startup.exit_s > 0
    assert len(startup.import_runs) == 5 and startup.import_s == min(startup.import_runs)
    assert startup.python_s + startup.imports_s + startup.exit_s <= startup.import_s + 1e-9
    run = profile.checkpoint.run  # the runtime's own end-to-end check runs
    assert run.error is None, run
    assert run.fixed_s >= 0 and run.bookkeeping_s_per_chunk >= 0 and 0.5 <= run.inference_factor <= 1.5
    # The small check run once more as a whole process (the fastest of three), and what a fresh process pays
    # beyond its parts measured apart: the whole less the parts and the warm run. Its sign depends on the
    # machine's load while each was measured (the estimate takes a negative one off the imports), so only
    # the arithmetic is asserted here; a whole process outlasts a bare interpreter's start on any machine.
    process = run.process
    assert process.rows == run.points[0].rows and len(process.runs) == 3
    assert process.wall_s == min(process.runs) and process.wall_s > startup.python_s
    parts = startup.python_s + startup.imports_s + startup.exit_s + (startup.first_session_s or 0.0)
    assert startup.cold_s == pytest.approx(process.wall_s - parts - run.points[0].seconds)
    assert "_folder" not in run.points[0].to_dict()
    assert profile.checkpoint.save_s > 0 and profile.checkpoint.files == 512
    assert not list(bundle.glob(".manifest.json.*")), "temporary manifest left behind"


def test_cold_start_is_the_whole_process_less_its_measured_parts():
    from packager.estimate.measure.overheads import cold_start

    # The process stages as the estimate prices them: each one's best (0.37 s), not the best of their sum.
    startup = Startup(python_s=0.02, imports_s=0.3, exit_s=0.05, import_s=0.39, first_session_s=0.01)
    run = CheckRun.from_dict({"points": [{"rows": 64, "seconds": 0.1}],
                              "process": {"wall_s": 0.55, "runs": [0.55, 0.6], "rows": 64}})
    assert cold_start(startup, run) == pytest.approx(0.07)
    # The parts measured apart over-count the whole process: negative, taken off the imports by the estimate.
    assert cold_start(startup, replace(run, process=ProcessCheck(wall_s=0.4))) == pytest.approx(-0.08)
    older = Startup(import_s=0.39, first_session_s=0.01)  # a profile with the three stages' sum only
    assert cold_start(older, run) == pytest.approx(0.05)
    assert cold_start(Startup(note="not measured"), run) is None  # nothing to say
    assert cold_start(startup, CheckRun(points=run.points)) is None


def test_lane_speedup_is_a_ratio_of_the_lanes_spans(monkeypatch, tmp_path):
    """The members' part on N lanes against one: the lanes' spans of the faster runs, not a difference
    of whole runs (whose start, reading and writes carry their own noise)."""
    from packager.estimate.measure import overheads

    runs = iter([{"seconds": 0.9, "lanes": 2, "threads": 1, "span_s": 0.5},
                 {"seconds": 0.8, "lanes": 2, "threads": 1, "span_s": 0.4}])
    monkeypatch.setattr(overheads, "_one_check", lambda *a, **k: next(runs))
    one = {"seconds": 1.0, "inside_s": 0.6, "chunks": 10, "span_s": 0.7}
    out = overheads.lane_speedup(None, tmp_path, tmp_path, 1000, one, 0.01, DataRead(), Write(), RunOptions(lanes=1))
    assert out["lanes"] == 2 and out["speedup"] == pytest.approx(0.7 / 0.4)
    # Without lane steps in the reports: the one-lane part less the difference of the two runs.
    runs = iter([{"seconds": 0.9, "lanes": 2, "threads": 1}, {"seconds": 0.95, "lanes": 2, "threads": 1}])
    out = overheads.lane_speedup(None, tmp_path, tmp_path, 1000, {**one, "span_s": 0.0}, 0.01, DataRead(), Write(),
                                 RunOptions(lanes=1))
    assert out["speedup"] == pytest.approx(0.7 / (0.7 - 0.1))


@pytest.mark.timeout(180)
def test_profile_on_synthetic_rows_says_so(bundle):
    profile = profile_bundle(bundle, None, ProfileOptions(seconds_per_member=0.2, batch_sizes=(64,), startup=False))
    assert profile.data.synthetic and profile.data.source.startswith("synthetic")
    assert profile.members["mlp"]["fp32"].s_per_row > 0
    assert profile.startup.import_s is None and profile.to_dict()["startup"]["import_s"] is None  # written as null


@pytest.mark.timeout(180)
def test_synthetic_data_matches_the_declared_inputs(digits_bundle, tmp_path):
    manifest = Manifest.load(digits_bundle)
    folder = write_synthetic_data(manifest, tmp_path / "syn", rows=10)
    test = open_test_data(folder, manifest.data)
    assert test.n_rows == 10
    for member in manifest.members:
        test.check(member)
        feed = test.feed(member, 0, 4)
        assert feed["pixels"].shape[0] == 4


@pytest.mark.timeout(180)
def test_profile_refuses_a_damaged_bundle(bundle, capsys):
    onnx_file = next(bundle.glob("models/*/fp32.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    assert main(["profile", str(bundle), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "checksum" in err and "Traceback" not in err
    assert Manifest.load(bundle).profile == Profile()


@pytest.mark.timeout(180)
def test_profile_cli_rejects_bad_options(bundle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", str(bundle), "--seconds", "0"])
    assert exc.value.code == 2
    assert "positive number of seconds" in capsys.readouterr().err


@pytest.mark.timeout(30)
def test_package_cli_profiles_unless_told_not_to(monkeypatch, tmp_path):
    import packager.build

    seen = []

    def fake_package(spec, out, options):
        seen.append(options.steps)
        raise SystemExit(0)

    monkeypatch.setattr(packager.build, "package", fake_package)
    for extra in ([], ["--no-profile"]):
        with pytest.raises(SystemExit):
            main(["package", "spec.toml", "-o", str(tmp_path / "b"), "--no-wheels", *extra])
    names = [[getattr(s, "__qualname__", "") for s in steps] for steps in seen]
    assert any("profile_step" in n for n in names[0])
    assert not any("profile_step" in n for n in names[1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_package_stores_the_profile(digits_dir, tmp_path):
    from packager.build import PackageOptions, package
    from packager.estimate.measure.profile import profile_step

    out = tmp_path / "bundle"
    step = profile_step(ProfileOptions(seconds_per_member=0.2, batch_sizes=(256,), startup=False))
    package(digits_dir / "ninefit.toml", out, PackageOptions(steps=(step,)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["members"]["cnn"]["fp16"]["s_per_row"] > 0
    assert manifest["profile"]["data"]["source"].startswith("public test data")
    open_bundle(out)


@pytest.mark.timeout(180)
def test_data_given_as_a_table_file_is_read_whatever_its_name(bundle, digits_dir, tmp_path):
    """`--data folder/public.csv` reads that file, not folder/<the spec's test name>."""
    src = digits_dir / "data"
    folder = tmp_path / "subset"
    folder.mkdir()
    test_lines = (src / "test.csv").read_text().splitlines()[:101]
    sample_lines = (src / "sample_submission.csv").read_text().splitlines()[:101]
    (folder / "public.csv").write_text("\n".join(test_lines) + "\n")
    (folder / "sample_submission.csv").write_text("\n".join(sample_lines) + "\n")
    options = ProfileOptions(seconds_per_member=0.1, batch_sizes=(32,), startup=False, check_run=False)
    profile = profile_bundle(bundle, folder / "public.csv", options)
    assert profile.data.rows == 100
    assert profile.data.source == f"public test data: {folder / 'public.csv'}"


@pytest.mark.timeout(60)
def test_tiled_sample_rows_follow_their_ids(tmp_path):
    """The sample submission is tiled by id, whatever its order, and must list every test id."""
    from packager.estimate.measure.sampling import tile_data
    from runtime.data.testdata import read_table
    from runtime.errors import DataError
    from runtime.manifest import DataSpec

    (tmp_path / "test.csv").write_text("id,x\na,1\nb,2\nc,3\n")
    (tmp_path / "sample.csv").write_text("id,y\nc,30\na,10\nb,20\n")  # another order than the test's
    spec = DataSpec(format="table", test="test.csv", id_column="id")
    out = tile_data(tmp_path, spec, "sample.csv", "id", 5, tmp_path / "tiled")
    tiled = read_table(out / "sample.csv", id_column="id")
    assert list(tiled["id"]) == ["a~0", "b~0", "c~0", "a~1", "b~1"]
    assert list(tiled["y"]) == [10, 20, 30, 10, 20]
    (tmp_path / "sample.csv").write_text("id,y\na,10\nb,20\n")
    with pytest.raises(DataError, match="1 test id"):
        tile_data(tmp_path, spec, "sample.csv", "id", 5, tmp_path / "tiled2")


IMAGES_WITHOUT_IMAGE_DIR = """
name = "shapes"
[data]
format = "images"
test = "data/test.csv"
id_column = "image_id"
image_column = "file"
sample_submission = "data/sample_submission.csv"

[[model]]
name = "tiny"
factory = "net:make"
init = "random"                 # a fixture: its weights do not matter
output = "probs"
activation = "sigmoid"
batch_size = 4
  [[model.input]]
  name = "image"
  shape = ["batch", 3, 16, 16]
  image = { size = [16, 16], channels = 3 }
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_package_profiles_images_without_an_image_dir(tmp_path):
    """Images beside the index (no image_dir): the tiled copy still finds them."""
    np = pytest.importorskip("numpy")
    Image = pytest.importorskip("PIL.Image")
    from packager.build import PackageOptions, package
    from packager.estimate.measure.profile import profile_step

    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "ninefit.toml").write_text(IMAGES_WITHOUT_IMAGE_DIR)
    (root / "net.py").write_text("import torch\n\ndef make():\n    torch.manual_seed(0)\n    return torch.nn.Sequential("
                                 "torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 14 * 14, 2)).eval()\n")
    rng = np.random.default_rng(0)
    ids = [f"img{i}" for i in range(6)]
    for i in ids:
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / "data" / f"{i}.png")
    (root / "data" / "test.csv").write_text("image_id,file\n" + "".join(f"{i},{i}.png\n" for i in ids))
    (root / "data" / "sample_submission.csv").write_text("image_id,a,b\n" + "".join(f"{i},0.5,0.5\n" for i in ids))
    step = profile_step(ProfileOptions(seconds_per_member=0.2, batch_sizes=(4,), startup=False))
    out = tmp_path / "bundle"
    package(root / "ninefit.toml", out, PackageOptions(steps=(step,)))
    profile = Manifest.load(out).profile
    assert profile.members["tiny"]["fp32"].s_per_row > 0
    assert profile.data.rows == 6 and not profile.data.synthetic
    assert profile.checkpoint.run.error is None, profile.checkpoint.run


@pytest.mark.timeout(300)
def test_process_stages_are_measured_from_a_relative_bundle_path(bundle, monkeypatch):
    """`ninefit profile bundle` (a relative path): the subprocesses run in the bundle folder, and the model
    paths handed to them must still name the models (they once silently failed: imports "not measured")."""
    from packager.estimate.measure.overheads import measure_startup

    monkeypatch.chdir(bundle.parent)
    root = Path(bundle.name)
    models = tuple(root / m.variants[0].file for m in Manifest.load(root).members)
    out = measure_startup(root, models[0], False, models)
    assert out.note is None, out
    assert out.python_s > 0 and out.imports_s > 0 and out.exit_s > 0 and out.first_session_s is not None


def _layout(value, path: str = "") -> set[str]:
    """The JSON layout of a profile: every key path, with the kind of what it holds (a number and a null alike:
    measured figures; a batch size or a member's own names as ``*``)."""
    if isinstance(value, dict):
        out = {f"{path}{{}}"}
        for key, child in value.items():
            name = "*" if key.isdigit() else key
            out |= _layout(child, f"{path}.{name}")
        return out
    if isinstance(value, list):
        return {f"{path}[]"} | {p for child in value for p in _layout(child, f"{path}[]")}
    kind = "str" if isinstance(value, str) else "bool" if isinstance(value, bool) else "value"
    return {f"{path}:{kind}"}


@pytest.mark.timeout(300)
def test_a_new_profile_is_written_as_the_older_version_wrote_it(bundle, digits_dir, capsys):
    """manifest.json does not change with the typed profile: a profile measured now has the very JSON layout of
    one ninefit 0.1.0 wrote (tests/runtime/data/manifest-0.1.0-digits.json, `ninefit package` of the digits
    example, its default batch sizes), key for key."""
    from runtime.execute.lanes import usable_cores

    old = json.loads((Path(__file__).parents[1] / "runtime" / "data" / "manifest-0.1.0-digits.json").read_text())
    assert main(["profile", str(bundle), "--data", str(digits_dir / "data"), "--seconds", "0.3", "--json"]) == 0
    new = json.loads((bundle / "manifest.json").read_text())
    assert set(old) <= set(new)  # a later schema may add keys of its own (at their defaults)
    assert json.loads(capsys.readouterr().out) == new["profile"]  # --json: the profile alone on stdout, no progress
    # Keys a later version added, and versions of the libraries installed here (openvino: an optional backend).
    optional = ("..checkpoint.run.lanes", "..checkpoint.run.process", "..startup.cold_s", "..fingerprint.gpus[]",
                "..checkpoint.run.points[].threads", "..checkpoint.run.lanes.threads", "..fingerprint.cpu_isa",
                "..fingerprint.versions.openvino")
    if usable_cores() > 1:  # the lanes' check runs: on a machine of one core, none
        optional = optional[1:]

    def layout(profile) -> set[str]:
        return {p for p in _layout(profile, ".") if not p.startswith(optional)}

    assert layout(new["profile"]) == layout(old["profile"])
    assert Manifest.load(bundle).to_json() == (bundle / "manifest.json").read_text()  # and it reads back the same
