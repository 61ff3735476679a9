"""dataset-metadata.json: Kaggle's rules, the owner's lookup, size warnings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packager.offline.dataset import (
    METADATA_FILENAME,
    DatasetMetadata,
    check_bundle,
    kaggle_config_dir,
    make_metadata,
    resolve_owner,
    slugify,
    write_dataset_metadata,
)
from runtime.errors import PackagingError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    (root / "wheels").mkdir(parents=True)
    (root / "wheels" / "x-1.0-py3-none-any.whl").write_bytes(b"w" * 300)
    (root / "manifest.json").write_text("{}")
    return root


def test_slugify():
    assert slugify("My Ensemble: v2 (T4 x2)") == "my-ensemble-v2-t4-x2"
    assert slugify("  Ünïcode -- Bundle  ") == "unicode-bundle"
    long = slugify("word " * 30)
    assert len(long) <= 50 and not long.endswith("-") and long.startswith("word-word")


def test_metadata_json_is_what_the_kaggle_cli_reads(bundle: Path):
    result = write_dataset_metadata(bundle, "Ninefit Demo Bundle", owner="someone")
    data = json.loads((bundle / METADATA_FILENAME).read_text())
    assert data == {"title": "Ninefit Demo Bundle", "id": "someone/ninefit-demo-bundle",
                    "licenses": [{"name": "CC0-1.0"}]}
    assert result.path == bundle / METADATA_FILENAME
    assert result.metadata.id == "someone/ninefit-demo-bundle"
    assert result.warnings == ()
    # a sub-folder (wheels/) is skipped by the CLI unless --dir-mode zip is given
    assert result.upload_command[-2:] == ("--dir-mode", "zip")


@pytest.mark.parametrize(("title", "slug", "match"), [
    ("short", None, "title"),
    ("x" * 51, None, "title"),
    (" Padded title", None, "title"),
    ("A fine title", "Bad_Slug", "slug"),
    ("A fine title", "abc", "slug"),
    ("A fine title", "-leading-hyphen", "slug"),
    ("A fine title", "a" * 51, "slug"),
    ("!!!!!!!!", None, "slug"),  # the title slugifies to nothing
])
def test_title_and_slug_are_validated(title, slug, match):
    with pytest.raises(PackagingError, match=match):
        make_metadata(title, owner="someone", slug=slug)


def test_bounds_are_inclusive():
    meta = DatasetMetadata(title="x" * 6, owner="o", slug="a" * 50)
    assert meta.to_json()["id"] == "o/" + "a" * 50


def test_license_must_be_one_kaggle_knows():
    with pytest.raises(PackagingError, match="CC0-1.0"):
        make_metadata("A fine title", owner="someone", license="MIT")
    assert make_metadata("A fine title", owner="o", license="apache-2.0").license == "apache-2.0"


def test_owner_from_kaggle_config_dir(tmp_path: Path):
    (tmp_path / "kaggle.json").write_text(json.dumps({"username": "from-file", "key": "secret"}))
    env = {"KAGGLE_CONFIG_DIR": str(tmp_path), "HOME": str(tmp_path / "nohome")}
    assert resolve_owner(environ=env) == "from-file"
    assert resolve_owner("explicit", environ=env) == "explicit"
    assert resolve_owner(environ={**env, "KAGGLE_USERNAME": "from-env"}) == "from-env"
    meta = make_metadata("Ninefit Demo Bundle", environ=env)
    assert meta.id == "from-file/ninefit-demo-bundle"


def test_owner_from_home_kaggle_folder(tmp_path: Path):
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "homeuser"}')
    env = {"HOME": str(tmp_path)}
    assert kaggle_config_dir(env) == tmp_path / ".kaggle"
    assert resolve_owner(environ=env) == "homeuser"


def test_missing_owner_says_how_to_pass_it(tmp_path: Path):
    with pytest.raises(PackagingError, match="KAGGLE_USERNAME") as info:
        resolve_owner(environ={"HOME": str(tmp_path)})
    assert "owner" in str(info.value)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "kaggle.json").write_text("not json")
    with pytest.raises(PackagingError, match="kaggle.json"):
        resolve_owner(environ={"KAGGLE_CONFIG_DIR": str(tmp_path / "cfg")})


def test_size_and_file_count_warnings(bundle: Path):
    total, count, warnings = check_bundle(bundle, max_bytes=10_000, max_files=100)
    assert (count, warnings) == (2, ())
    total, count, warnings = check_bundle(bundle, max_bytes=int(total / 0.85), max_files=2)
    assert len(warnings) == 2
    assert "85%" in warnings[0] and "dataset limit" in warnings[0]
    assert "2 files" in warnings[1]
    result = write_dataset_metadata(bundle, "Ninefit Demo Bundle", owner="o", max_bytes=400)
    assert result.file_count == 3 and result.warnings


def test_missing_bundle_folder(tmp_path: Path):
    with pytest.raises(PackagingError, match="does not exist"):
        write_dataset_metadata(tmp_path / "nope", "Ninefit Demo Bundle", owner="o")
