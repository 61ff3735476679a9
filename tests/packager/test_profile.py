"""Profiling: the stability rule, the stored profile and its fingerprint, the package hook."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from packager.cli import main
from packager.estimate.profile import (
    ProfileOptions,
    batch_sizes_for,
    profile_bundle,
    stable,
    write_synthetic_data,
)
from runtime.bundle import open_bundle
from runtime.data import open_test_data
from runtime.manifest import Manifest

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
    fp = profile["fingerprint"]
    for key in ("cpu_model", "cpu_threads", "gpus", "versions", "device", "intra_op_threads"):
        assert key in fp
    assert fp["versions"]["onnxruntime"]
    assert profile["data"]["source"].startswith("public test data") and not profile["data"]["synthetic"]
    for member in opened.manifest.members:
        for variant in member.variants:
            rec = profile["members"][member.name][variant.name]  # the runtime's cost prior
            assert rec["s_per_row"] > 0 and rec["setup_s"] > 0
            assert rec["batch_size"] == member.batch_size
            assert set(rec["batches"]) == {"32", "256"}
            point = rec["batches"]["256"]
            assert point["windows"] and point["calls"] >= len(point["windows"])
            assert sum(point["stages"].values()) == pytest.approx(point["s_per_batch"])
    assert profile["data"]["read_s_per_row"] >= 0 and profile["write"]["s_per_row"] >= 0
    assert profile["startup"]["import_s"] > 0 and profile["startup"]["hash_bytes_per_s"] > 0
    run = profile["checkpoint"]["run"]  # the runtime's own end-to-end check runs
    assert "error" not in run, run
    assert run["fixed_s"] >= 0 and run["bookkeeping_s_per_chunk"] >= 0 and 1 <= run["inference_factor"] <= 1.5
    assert profile["checkpoint"]["save_s"] > 0 and profile["checkpoint"]["files"] == 512
    assert not list(bundle.glob(".manifest.json.*")), "temporary manifest left behind"


@pytest.mark.timeout(180)
def test_profile_on_synthetic_rows_says_so(bundle):
    profile = profile_bundle(bundle, None, ProfileOptions(seconds_per_member=0.2, batch_sizes=(64,), startup=False))
    assert profile["data"]["synthetic"] and profile["data"]["source"].startswith("synthetic")
    assert profile["members"]["mlp"]["fp32"]["s_per_row"] > 0
    assert profile["startup"]["import_s"] is None


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
    assert Manifest.load(bundle).profile == {}


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

    def fake_package(spec, out, options, log=print):
        seen.append(options.hooks)
        raise SystemExit(0)

    monkeypatch.setattr(packager.build, "package", fake_package)
    for extra in ([], ["--no-profile"]):
        with pytest.raises(SystemExit):
            main(["package", "spec.toml", "-o", str(tmp_path / "b"), "--no-wheels", *extra])
    names = [[getattr(h, "__qualname__", "") for h in hooks] for hooks in seen]
    assert any("profile_hook" in n for n in names[0])
    assert not any("profile_hook" in n for n in names[1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_package_stores_the_profile(digits_dir, tmp_path):
    from packager.build import PackageOptions, package
    from packager.estimate.profile import profile_hook

    out = tmp_path / "bundle"
    hook = profile_hook(ProfileOptions(seconds_per_member=0.2, batch_sizes=(256,), startup=False), log=lambda _m: None)
    package(digits_dir / "ninefit.toml", out, PackageOptions(hooks=(hook,)), log=lambda _m: None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["profile"]["members"]["cnn"]["fp16"]["s_per_row"] > 0
    assert manifest["profile"]["data"]["source"].startswith("public test data")
    open_bundle(out)
