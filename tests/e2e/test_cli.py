"""loractl on its own: exit codes, connection resolution, and presigned uploads against the
S3 emulator (real multipart URLs, parallel parts, resume)."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_runtime.aws_emulator import AwsEmulator, ResourceNames
from loractl.config import resolve_connection, save_profile
from loractl.main import main as loractl
from loractl.uploads import FileTarget, ResumeState, plan_parts, upload_files, upload_parts

BUCKET = ResourceNames(bucket="cli-test-bucket").bucket


def run(*arguments: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = loractl(list(arguments))
    return code, err.getvalue()


@pytest.fixture
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    monkeypatch.setenv("LORACTL_CONFIG", str(path))
    for name in ("LORACTL_ENDPOINT", "LORACTL_TOKEN", "LORACTL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_exit_codes_distinguish_usage_and_connection_errors(isolated_config: Path, tmp_path: Path) -> None:
    assert run("models", "list")[0] == 2  # no endpoint anywhere
    assert run("models", "upload")[0] == 2  # argparse: missing FILE
    code, message = run(
        "models", "upload", str(tmp_path / "nope.safetensors"), "--fm-type", "sd15", "--token", "t"
    )
    assert code == 2 and "is not a file" in message
    code, message = run("models", "list", "--endpoint", "http://127.0.0.1:9", "--token", "t")
    assert code == 5 and "cannot reach" in message
    assert run("--help")[0] == 0


def test_connection_comes_from_flags_then_environment_then_profile(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_profile("local", {"endpoint": "http://127.0.0.1:8787", "token": "file-token"})
    save_profile(
        "prod", {"endpoint": "https://abc.execute-api.eu-west-1.amazonaws.com/prod", "region": "eu-west-1"}
    )
    assert resolve_connection().token == "file-token"
    prod = resolve_connection(profile="prod")
    assert prod.uses_sigv4 and prod.region == "eu-west-1"
    monkeypatch.setenv("LORACTL_TOKEN", "env-token")
    assert resolve_connection().token == "env-token"
    assert resolve_connection(token="flag-token").token == "flag-token"
    monkeypatch.setenv("LORACTL_PROFILE", "missing")
    with pytest.raises(Exception, match="profile 'missing'"):
        resolve_connection()
    assert oct(isolated_config.stat().st_mode & 0o777) == "0o600"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    aws = AwsEmulator("us-east-1")
    aws.start()
    client = aws.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    aws.stop()


def test_parallel_multipart_upload_with_resume(s3: Any, tmp_path: Path) -> None:
    part_size = 5 * 1024 * 1024  # S3's minimum for all but the last part
    file = tmp_path / "model.safetensors"
    file.write_bytes(os.urandom(2 * part_size + 1234))
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="m/model.safetensors")["UploadId"]
    parts = [
        {
            "part_number": n,
            "url": s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": BUCKET,
                    "Key": "m/model.safetensors",
                    "UploadId": upload_id,
                    "PartNumber": n,
                },
            ),
        }
        for n in (1, 2, 3)
    ]
    targets = plan_parts(parts, part_size, file.stat().st_size)
    assert [t.length for t in targets] == [part_size, part_size, 1234]
    # An earlier, interrupted run already sent part 1.
    with file.open("rb") as handle:
        first = s3.upload_part(
            Bucket=BUCKET,
            Key="m/model.safetensors",
            UploadId=upload_id,
            PartNumber=1,
            Body=handle.read(part_size),
        )
    ResumeState(file, upload_id).record(1, first["ETag"], {"model_id": "m"})
    sent: list[int] = []

    etags = upload_parts(
        file, targets, sent.append, ResumeState(file, upload_id), {"model_id": "m"}, workers=3
    )

    assert [e["part_number"] for e in etags] == [1, 2, 3] and sum(sent) == file.stat().st_size
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key="m/model.safetensors",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": e["part_number"], "ETag": e["etag"]} for e in etags]},
    )
    assert s3.get_object(Bucket=BUCKET, Key="m/model.safetensors")["Body"].read() == file.read_bytes()


def test_dataset_files_go_to_their_presigned_urls(s3: Any, tmp_path: Path) -> None:
    files = {"1_cat/a.png": b"\x89PNG fake", "1_cat/a.txt": b"cat"}
    targets = []
    for relative, data in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": f"d/{relative}"})
        targets.append(FileTarget(path, relative, url, {}))
    upload_files(targets, lambda n: None, workers=2)
    for relative, data in files.items():
        assert s3.get_object(Bucket=BUCKET, Key=f"d/{relative}")["Body"].read() == data


def test_dataset_layout_problems_are_all_listed_before_any_upload(
    isolated_config: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ds"
    (root / "10_cat").mkdir(parents=True)
    (root / "10_cat" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "10_cat" / "a.exe").write_bytes(b"MZ")
    (root / "cats").mkdir()
    (root / "cats" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    # the endpoint is unreachable: any attempt to upload would exit 5, not 2
    code, message = run("datasets", "upload", str(root), "--endpoint", "http://127.0.0.1:9", "--token", "t")
    assert code == 2
    assert "10_cat/a.exe: has extension '.exe'" in message
    assert "cats/b.png: folder 'cats' must be named <repeats>_<concept>" in message
    assert "nothing was uploaded" in message


def test_sample_prompt_files_and_epochs_are_checked_before_any_request(
    isolated_config: Path, tmp_path: Path
) -> None:
    nowhere = ("--endpoint", "http://127.0.0.1:9", "--token", "t")
    create = ("trainings", "create", "--model", "m", "--dataset", "d", "--fm-type", "sd15")
    create += ("--instance-type", "ml.g5.xlarge")
    code, err = run(*create, "--sample-prompts", str(tmp_path / "absent.json"), *nowhere)
    assert code == 2 and "does not exist" in " ".join(err.split())  # rich wraps long lines
    (tmp_path / "bad.json").write_text('{"prompt": "not a list"}')
    code, err = run(*create, "--sample-prompts", str(tmp_path / "bad.json"), *nowhere)
    assert code == 2 and "list of objects" in " ".join(err.split())
    code, err = run("models", "download", "m", "--epoch", "0", *nowhere)
    assert code == 2 and "--epoch" in err
