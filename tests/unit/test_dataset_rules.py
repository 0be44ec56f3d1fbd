"""Dataset layout rules and the manifest (plain Python, no AWS)."""

from __future__ import annotations

import pytest

from functions.domain.dataset_rules import (
    MAX_FILES,
    ArrivedFile,
    DeclaredFile,
    build_manifest,
    check_declared_files,
)


def _problems(*paths: str, size: int = 10) -> dict[str, str]:
    return {p.field: p.problem for p in check_declared_files([DeclaredFile(p, size) for p in paths])}


def test_a_kohya_layout_is_accepted() -> None:
    assert _problems("10_cat/a.png", "10_cat/a.txt", "3_dog photo/B.JPG", "3_dog photo/B.txt") == {}


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("../10_cat/a.png", "'..'"),
        ("10_cat/../a.png", "'..'"),
        ("/10_cat/a.png", "relative"),
        ("C:/10_cat/a.png", "relative"),
        ("10_cat\\a.png", "backslash"),
        ("10_cat/a\x00.png", "control"),
        ("10_cat/a\u202e.png", "invisible"),
        ("10_cat/.hidden.png", "hidden"),
        ("cat/a.png", "<repeats>_<concept>"),
        ("0_cat/a.png", "repeats must be between"),
        ("a.png", "one folder level"),
        ("10_cat/sub/a.png", "one folder level"),
        ("10_cat/a.exe", "extension"),
        ("10_cat/a", "extension"),
        ("10_cat/a$b.png", "may only contain"),
    ],
)
def test_bad_paths_are_refused_naming_the_field(path: str, fragment: str) -> None:
    problems = _problems("10_cat/ok.png", path)
    assert fragment in problems["files[1].path"]


def test_duplicates_differing_only_in_case_are_refused() -> None:
    assert "duplicates files[0].path" in _problems("10_cat/a.png", "10_cat/A.PNG")["files[1].path"]


def test_sizes_are_bounded_per_type() -> None:
    problems = check_declared_files(
        [DeclaredFile("1_c/a.png", 60 * 1024**2), DeclaredFile("1_c/a.txt", 100_000)]
    )
    assert {p.field for p in problems} == {"files[0].size_bytes", "files[1].size_bytes"}


def test_huge_file_counts_are_refused_before_anything_else() -> None:
    files = [DeclaredFile(f"1_c/{i}.png", 1) for i in range(MAX_FILES + 1)]
    assert [p.field for p in check_declared_files(files)] == ["files"]


def test_captions_alone_are_not_a_dataset() -> None:
    assert "at least one image" in _problems("1_c/a.txt")["files"]


def _arrived(declared: list[DeclaredFile], **overrides: ArrivedFile) -> dict[str, ArrivedFile]:
    arrived = {d.path: ArrivedFile(d.path, d.size_bytes, True) for d in declared}
    arrived.update(overrides)
    return arrived


def test_manifest_counts_concepts_repeats_and_captions() -> None:
    declared = [
        DeclaredFile(p, 5)
        for p in (
            "10_cat/a.png",
            "10_cat/a.txt",
            "10_cat/b.png",
            "10_cat/b.txt",
            "2_dog/c.png",
            "2_dog/c.txt",
        )
    ]
    manifest = build_manifest(declared, _arrived(declared))
    assert manifest.problems == []
    assert manifest.image_count == 3 and manifest.captioned_count == 3
    assert manifest.weighted_images == 2 * 10 + 1 * 2
    assert [(c.concept, c.repeats) for c in manifest.concepts] == [("cat", 10), ("dog", 2)]


def test_manifest_lists_every_problem() -> None:
    declared = [
        DeclaredFile(p, 5)
        for p in ("1_c/a.png", "1_c/b.png", "1_c/b.txt", "1_c/orphan.txt", "1_c/fake.png", "1_c/gone.png")
    ]
    arrived = _arrived(declared, **{"1_c/fake.png": ArrivedFile("1_c/fake.png", 5, False)})
    del arrived["1_c/gone.png"]
    arrived["1_c/b.txt"] = ArrivedFile("1_c/b.txt", 4, True)
    manifest = build_manifest(declared, arrived)
    problems = "\n".join(manifest.problems)
    assert "1_c/gone.png: was declared but never uploaded" in problems
    assert "1_c/fake.png: is not a PNG image" in problems
    assert "1_c/b.txt: is 4 bytes, declared 5" in problems
    assert "1_c/orphan.txt: caption has no image" in problems
    # images without a caption are counted, not refused: a captions job can start from them
    assert "no .txt caption" not in problems
    assert manifest.missing_captions == 2  # a (none) and b (its caption was refused)


def test_a_dataset_without_usable_images_is_invalid() -> None:
    declared = [DeclaredFile("1_c/a.png", 5)]
    manifest = build_manifest(declared, {})
    assert "the dataset contains no usable image" in manifest.problems
