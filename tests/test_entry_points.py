"""The registry's own entry-point scan finds what `importlib.metadata` finds, on real
distribution directories laid out on `sys.path`."""

from __future__ import annotations

import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from schnitzel.registry.entry_points import PackEntry, group_entry_points

GROUP = "schnitzel.plugins"


def install_dist(root: Path, dist_dir: str, entry_points_txt: str | None) -> None:
    info = root / dist_dir
    info.mkdir(parents=True)
    name = dist_dir.partition("-")[0]
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if entry_points_txt is not None:
        (info / "entry_points.txt").write_text(entry_points_txt)


def by_importlib(group: str) -> list[tuple[str, str, str | None]]:
    found = []
    for entry in entry_points(group=group):
        dist = getattr(entry.dist, "_normalized_name", None)
        found.append((entry.name, entry.value, dist))
    return sorted(found, key=str)


def by_scan(group: str) -> list[tuple[str, str, str | None]]:
    return sorted(((e.name, e.value, e.dist) for e in group_entry_points(group)), key=str)


@pytest.fixture
def two_path_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    install_dist(
        first,
        "Acme.Pack-2.0.dist-info",
        "# a comment\n[console_scripts]\nacme = acme.cli:main\n\n"
        "[schnitzel.plugins]\nacme = acme_pack:PACK\nnested = acme_pack.sub:Holder.PACK [extra]\n",
    )
    install_dist(first, "plain-1.0.dist-info", None)  # no entry_points.txt at all
    install_dist(first, "other-1.0.egg-info", "[schnitzel.plugins]\nother = other_pack:PACK\n")
    # the same distribution again, later on the path: shadowed, as importlib.metadata does
    install_dist(second, "acme_pack-1.0.dist-info", "[schnitzel.plugins]\nold = old_pack:PACK\n")
    install_dist(second, "late-3.0.dist-info", "[schnitzel.plugins]\nlate = late_pack:PACK\n")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    return first, second


def test_scan_finds_what_importlib_metadata_finds(two_path_entries: tuple[Path, Path]) -> None:
    for group in (GROUP, "console_scripts", "pytest11", "no.such.group"):
        assert by_scan(group) == by_importlib(group), group
    found = by_scan(GROUP)
    assert ("old", "old_pack:PACK", "acme_pack") not in found  # shadowed by Acme.Pack 2.0
    assert ("nested", "acme_pack.sub:Holder.PACK [extra]", "acme_pack") in found
    assert ("other", "other_pack:PACK", "other") in found


def test_load_follows_dotted_attributes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "holder_mod.py").write_text("class Holder:\n    PACK = 'the pack'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert PackEntry("x", "holder_mod:Holder.PACK [extra]", None).load() == "the pack"
    with pytest.raises(ValueError, match="module:attribute"):
        PackEntry("x", "not a value!", None).load()


def test_a_zip_on_the_path_is_read_by_importlib_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("zipped-1.0.dist-info/METADATA", "Name: zipped\nVersion: 1.0\n")
        zipped.writestr(
            "zipped-1.0.dist-info/entry_points.txt", "[schnitzel.plugins]\nzipped = zp:PACK\n"
        )
    monkeypatch.setattr(sys, "path", [str(archive), *sys.path])
    assert ("zipped", "zp:PACK", "zipped") in by_scan(GROUP)
    assert by_scan(GROUP) == by_importlib(GROUP)
