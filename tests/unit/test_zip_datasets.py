"""Zip datasets: hostile archives are refused from their directory alone, with the reason
(functions.domain.zip_datasets). Every zip here is built by the test itself."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from functions.domain.dataset_rules import MAX_FILES
from functions.domain.zip_datasets import (
    ZipEntry,
    ZipRefused,
    entry_name_problem,
    plan_zip,
    read_planned,
    zip_entries,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def build_zip(members: dict[str, bytes], *, symlinks: tuple[str, ...] = ()) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in symlinks:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    buffer.seek(0)
    return zipfile.ZipFile(buffer)


def plan_of(members: dict[str, bytes], **kwargs: object) -> list[tuple[str, str]]:
    with build_zip(members) as archive:
        return [(p.entry_name, p.path) for p in plan_zip(zip_entries(archive), **kwargs)]  # type: ignore[arg-type]


def refusal(members: dict[str, bytes], symlinks: tuple[str, ...] = (), **kwargs: object) -> str:
    with build_zip(members, symlinks=symlinks) as archive, pytest.raises(ZipRefused) as refused:
        plan_zip(zip_entries(archive), **kwargs)  # type: ignore[arg-type]
    return str(refused.value)


def test_concept_folders_map_one_to_one_and_litter_is_skipped() -> None:
    members = {"10_cat/a.png": PNG, "10_cat/a.txt": b"a cat", "__MACOSX/10_cat/._a.png": b"x",
               "10_cat/.DS_Store": b"x", "10_cat/": b""}  # fmt: skip
    assert plan_of(members) == [("10_cat/a.png", "10_cat/a.png"), ("10_cat/a.txt", "10_cat/a.txt")]


def test_one_wrapping_folder_is_dropped() -> None:
    assert plan_of({"photos/10_cat/a.png": PNG}) == [("photos/10_cat/a.png", "10_cat/a.png")]
    assert plan_of({"photos/a.png": PNG}, repeats=3, concept="cat") == [("photos/a.png", "3_cat/a.png")]


def test_a_flat_zip_needs_repeats_and_gets_a_concept_folder() -> None:
    assert "give repeats" in refusal({"a.png": PNG, "a.txt": b"x"})
    assert plan_of({"a.png": PNG}, repeats=5) == [("a.png", "5_concept/a.png")]
    assert "only for a flat zip" in refusal({"10_cat/a.png": PNG}, repeats=5)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.png", "climbs out"),
        ("10_cat/../../evil.png", "climbs out"),
        ("/etc/10_cat/a.png", "absolute path"),
        ("C:/10_cat/a.png", "absolute path"),
        ("C:evil.png", "absolute path"),
        ("10_cat\\..\\evil.png", "backslashes"),
        ("10_cat/a\x01.png", "control characters"),
    ],
)
def test_hostile_names_are_refused_before_anything_is_read(name: str, reason: str) -> None:
    assert reason in (entry_name_problem(name) or "")
    message = refusal({"10_cat/ok.png": PNG, name: PNG})
    assert reason in message and repr(name) in message


def test_symlink_entries_are_refused() -> None:
    message = refusal({"10_cat/a.png": PNG, "10_cat/b.png": b"/etc/passwd"}, symlinks=("10_cat/b.png",))
    assert "'10_cat/b.png' is a symbolic link" in message


def test_a_zip_bomb_is_refused_by_its_ratio() -> None:
    message = refusal({"10_cat/a.png": PNG + bytes(20 * 1024**2)})
    assert "zip bomb" in message


def test_ten_thousand_tiny_files_are_refused_with_the_dataset_limit() -> None:
    members = {f"10_cat/{i}.png": b"\x89PNG" for i in range(10_000)}
    message = refusal(members)
    assert "10000 entries" in message and f"at most {MAX_FILES} files" in message


def test_encrypted_entries_are_refused() -> None:
    entry = ZipEntry("10_cat/a.png", 10, 10, is_encrypted=True)
    with pytest.raises(ZipRefused, match="encrypted"):
        plan_zip([entry])


def test_dataset_rules_apply_to_the_planned_paths() -> None:
    message = refusal({"10_cat/a.exe": b"MZ", "10_cat/b.png": PNG})
    assert "10_cat/a.exe" in message and "extension" in message
    assert "no files" in refusal({"__MACOSX/x": b"1"})


def test_entries_are_read_with_their_declared_size_only() -> None:
    with build_zip({"10_cat/a.png": PNG}) as archive:
        (planned,) = plan_zip(zip_entries(archive))
        assert read_planned(archive, planned) == PNG
        lying = type(planned)(planned.entry_name, planned.path, planned.size_bytes - 1)
        with pytest.raises(ZipRefused, match="does not hold"):
            read_planned(archive, lying)
