"""The profile in the manifest (runtime.profile): typed, read by attribute, its JSON unchanged by a round trip.

``data/manifest-0.1.0-*.json`` are manifests exactly as ninefit 0.1.0 wrote them, before the profile was
typed (``ninefit package`` of the digits, text and groupby-hook examples): every bundle written before
must still load, read the same figures, and write their profile back byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import BundleError
from runtime.execute.checkpoint import chunk_grid, member_grid
from runtime.manifest import Manifest
from runtime.profile import PROFILE_VERSION, Part, Profile, Startup, VariantCost

pytestmark = pytest.mark.timeout(30)

DATA = Path(__file__).parent / "data"
OLD = sorted(DATA.glob("manifest-0.1.0-*.json"))


def _parts(part: Part, where: str = "profile"):
    """Every part of a profile, with its place."""
    yield where, part
    for name in type(part).__dataclass_fields__:
        value = getattr(part, name)
        children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, tuple) else ()
        if isinstance(value, Part):
            yield from _parts(value, f"{where}.{name}")
        for key, child in children:
            if isinstance(child, Part):
                yield from _parts(child, f"{where}.{name}.{key}")
            elif isinstance(child, dict):
                for k2, grand in child.items():
                    if isinstance(grand, Part):
                        yield from _parts(grand, f"{where}.{name}.{key}.{k2}")


def _read_keys(written, raw):
    """``written`` cut to the keys ``raw`` has, at every depth (lists element by element)."""
    if isinstance(raw, dict) and isinstance(written, dict):
        return {k: _read_keys(written.get(k), v) for k, v in raw.items()}
    if isinstance(raw, list) and isinstance(written, list) and len(raw) == len(written):
        return [_read_keys(w, r) for w, r in zip(written, raw)]
    return written


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.stem)
def test_a_manifest_an_older_version_wrote_loads_and_writes_back_the_same_bytes(path):
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    manifest = Manifest.from_dict(raw)
    written = json.loads(manifest.to_json())
    # Every key it was read with is written back as it was (a later schema may add keys, at their defaults, at
    # any depth: a member's ``device`` and ``init`` came with schema 5)...
    assert _read_keys(written, raw) == raw
    # ... and the profile's JSON byte for byte.
    assert json.dumps(manifest.profile.to_dict(), indent=2, sort_keys=True) == json.dumps(raw["profile"], indent=2,
                                                                                           sort_keys=True)
    profile = manifest.profile
    assert isinstance(profile, Profile) and profile.measured and profile.version == PROFILE_VERSION
    unknown = {where: sorted(part.extra) for where, part in _parts(profile) if part.extra}
    assert not unknown, f"keys of a 0.1.0 profile this version does not read: {unknown}"


def test_an_older_profile_reads_the_figures_it_holds():
    raw = json.loads((DATA / "manifest-0.1.0-digits.json").read_text(encoding="utf-8"))
    profile = Manifest.from_dict(raw).profile
    d = raw["profile"]
    cost = profile.members["cnn"]["fp32"]
    assert cost.s_per_row == d["members"]["cnn"]["fp32"]["s_per_row"] and cost.setup_s > 0
    assert set(cost.batches) == {int(b) for b in d["members"]["cnn"]["fp32"]["batches"]}
    point = cost.batches[256]
    assert point.windows == tuple(d["members"]["cnn"]["fp32"]["batches"]["256"]["windows"])
    assert point.stages.infer == d["members"]["cnn"]["fp32"]["batches"]["256"]["stages"]["infer"]
    assert profile.checkpoint.run.lanes.speedup == d["checkpoint"]["run"]["lanes"]["speedup"]
    assert profile.checkpoint.run.points[1].chunks == d["checkpoint"]["run"]["points"][1]["chunks"]
    assert profile.startup.import_runs == tuple(d["startup"]["import_runs"])
    assert profile.fingerprint.versions["onnxruntime"] == d["fingerprint"]["versions"]["onnxruntime"]
    assert profile.fingerprint.intra_op_threads is None and "intra_op_threads" in profile.fingerprint.to_dict()
    assert profile.options.batch_sizes is None and profile.to_dict()["options"]["batch_sizes"] is None
    text = Manifest.from_dict(json.loads((DATA / "manifest-0.1.0-text.json").read_text(encoding="utf-8"))).profile
    (cost,) = text.members["bert"].values()
    assert cost.text is not None and cost.text.s_per_token > 0 and cost.text.points[0].length > 0
    assert cost.text.lengths.histogram and set(cost.batches[cost.batch_size].stages.to_dict()) == {
        "preprocess", "infer", "postprocess"}  # a text point has no read or decode: none is written back
    hooks = Manifest.from_dict(json.loads((DATA / "manifest-0.1.0-groupby.json").read_text(encoding="utf-8"))).profile
    assert hooks.hooks["features"].s_per_row > 0 and hooks.hooks["features"].chunk_rows


def test_the_planner_and_the_chunk_grid_read_an_older_profile_as_before():
    raw = json.loads((DATA / "manifest-0.1.0-digits.json").read_text(encoding="utf-8"))
    manifest = Manifest.from_dict(raw)
    priors = manifest.profile.priors()
    for m, variants in raw["profile"]["members"].items():
        for v, rec in variants.items():
            assert priors[m][v] == {"s_per_row": rec["s_per_row"], "setup_s": rec["setup_s"]}
    member = manifest.members[0]
    typed, as_json = member_grid(200_000, member, manifest.profile), member_grid(200_000, member, raw["profile"])
    assert typed == as_json and len(typed) < len(chunk_grid(200_000, member.batch_size))


def test_a_profile_without_a_key_reads_it_as_not_measured():
    profile = Profile.from_dict({"members": {"m": {"fp32": {"s_per_row": 0.01}}}})
    cost = profile.cost("m", "fp32")
    assert cost is not None and cost.setup_s is None and cost.batches == {} and cost.text is None
    assert profile.checkpoint.run.lanes.speedup is None and profile.startup.import_runs == ()
    assert profile.cost("m", "fp16") is None and profile.cost("x", "fp32") is None
    assert profile.priors() == {"m": {"fp32": {"s_per_row": 0.01}}}
    assert profile.to_dict() == {"members": {"m": {"fp32": {"s_per_row": 0.01}}}}
    assert Profile().to_dict() == {} and not Profile().measured
    assert Manifest.from_dict({**_digits(), "profile": {}}).profile == Profile()


def test_unknown_keys_are_kept_as_they_were_and_never_read():
    raw = {"members": {"m": {"fp32": {"s_per_row": 0.01, "surprise": [1, {"a": 2}]}}}, "later": {"x": 1}}
    profile = Profile.from_dict(raw)
    assert profile.extra == {"later": {"x": 1}} and profile.members["m"]["fp32"].extra == {"surprise": [1, {"a": 2}]}
    assert profile.to_dict() == raw


@pytest.mark.parametrize("raw, message", [
    ({"members": {"m": {"fp32": {"s_per_row": "fast"}}}}, r"profile\.members\.m\.fp32\.s_per_row: expected a number, got a string"),
    ({"members": {"m": {"fp32": {"s_per_row": True}}}}, r"s_per_row: expected a number, got true or false"),
    ({"members": {"m": None}}, r"profile\.members\.m: expected an object, got null"),
    ({"members": []}, r"profile\.members: expected an object, got an array"),
    ({"members": {"m": {"fp32": {"batches": {"big": {}}}}}}, r"batches: key 'big' is not an integer"),
    ({"startup": {"import_runs": 3}}, r"profile\.startup\.import_runs: expected an array, got a number"),
    ({"data": {"points": [[1, 2, 3]]}}, r"profile\.data\.points\[0\]: expected an array of 2, got 3"),
    ({"fingerprint": {"device": 1}}, r"profile\.fingerprint\.device: expected a string, got a number"),
    ({"checkpoint": {"run": {"process": {"wall_s": "slow"}}}}, r"checkpoint\.run\.process\.wall_s: expected a number"),
])
def test_a_value_of_the_wrong_kind_is_refused_by_its_place_never_misread(raw, message):
    with pytest.raises(ValueError, match=message):
        Profile.from_dict(raw)
    with pytest.raises(BundleError, match="manifest does not match schema version 3: .*" + message):
        Manifest.from_dict({**_digits(), "profile": raw})


def test_a_profile_of_a_newer_version_is_refused():
    with pytest.raises(BundleError, match=f"version {PROFILE_VERSION + 1} is newer than this ninefit reads"):
        Manifest.from_dict({**_digits(), "profile": {"version": PROFILE_VERSION + 1, "members": {}}})


def test_a_manifest_takes_a_profile_or_its_json():
    manifest = Manifest.from_dict(_digits())
    from dataclasses import replace

    as_json = replace(manifest, profile={"members": {"m": {"fp32": {"s_per_row": 0.5}}}})
    assert isinstance(as_json.profile, Profile) and as_json.profile.members["m"]["fp32"].s_per_row == 0.5
    with pytest.raises(ValueError, match="s_per_row"):
        replace(manifest, profile={"members": {"m": {"fp32": {"s_per_row": "x"}}}})


def test_a_value_set_in_code_is_written_and_a_null_only_when_said():
    built = Startup(import_s=0.3, note=None)
    assert built.to_dict() == {"import_s": 0.3}  # None: not written
    assert Startup(note="not measured").updated(import_s=None).to_dict() == {"note": "not measured", "import_s": None}
    read = Startup.from_dict({"import_s": None, "note": "failed"})
    assert read.to_dict() == {"import_s": None, "note": "failed"}  # a null read is a null written
    from dataclasses import replace

    assert replace(read, verify_s=0.1).to_dict() == {"import_s": None, "note": "failed", "verify_s": 0.1}
    with pytest.raises(TypeError, match="no keys"):
        read.updated(surprise=1)
    cost = VariantCost.from_dict({"s_per_row": 0.1, "batches": {"64": {"stages": {"infer": 0.5}}}})
    assert cost.to_dict() == {"s_per_row": 0.1, "batches": {"64": {"stages": {"infer": 0.5}}}}


def _digits() -> dict:
    return json.loads((DATA / "manifest-0.1.0-digits.json").read_text(encoding="utf-8"))
