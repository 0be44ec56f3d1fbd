"""What a user is told when a job fails: the exception type shown verbatim, and the classifier
that turns a crashed engine's console into a plain reason.

Under ``accelerate launch`` the last console line of a failed run is always accelerate's own
wrapper (``subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1.``);
the child's real exception is a few lines above it. ``classify_engine_failure`` finds that line
and sorts it into a configuration problem, out of memory, a data problem, or an internal error.
Its patterns are tested against recorded output of the real sd-scripts v0.10.1
(``tests/container/fixtures/sd_scripts_failures``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

MAX_CAUSE_CHARS = 600  # the whole reason must fit SageMaker's 1 KiB FailureReason


class JobFailure(Exception):
    """A problem the user can act on (bad dataset, wrong model family, ...).

    Its message goes verbatim to ``/opt/ml/output/failure``, which SageMaker shows as the
    job's ``FailureReason``; keep it short, specific and free of stack traces.
    """


class FailureKind(StrEnum):
    CONFIGURATION = "configuration problem"
    OUT_OF_MEMORY = "out of memory"
    DATA = "data problem"
    INTERNAL = "internal error"


@dataclass(frozen=True)
class EngineFailure:
    kind: FailureKind
    cause: str  # the child's last exception line (English part), or what is known instead

    @property
    def reason(self) -> str:
        """The failure reason a user reads in ``GET /trainings/{id}``."""
        return f"{_LEADS[self.kind]}: {self.cause}{_ADVICE[self.kind]}"

    def as_exception(self, return_code: int) -> Exception:
        """A JobFailure for what the user can fix; a RuntimeError (exit status 2) otherwise."""
        if self.kind is FailureKind.INTERNAL:
            return RuntimeError(f"sd-scripts failed with exit status {return_code}: {self.cause}")
        return JobFailure(self.reason)


_LEADS = {
    FailureKind.CONFIGURATION: "configuration problem: sd-scripts refused the training parameters",
    FailureKind.OUT_OF_MEMORY: "out of memory: sd-scripts ran out of memory",
    FailureKind.DATA: "data problem: sd-scripts could not use the dataset",
    FailureKind.INTERNAL: "internal error: sd-scripts failed",
}
_ADVICE = {
    FailureKind.CONFIGURATION: "",
    FailureKind.OUT_OF_MEMORY: (
        ". Lower train_batch_size or resolution, turn on gradient_checkpointing or cache_latents, "
        "or choose an instance type with more memory"
    ),
    FailureKind.DATA: "",
    FailureKind.INTERNAL: "",
}

# "module.Name: message" or a bare "Name" that ends a Python traceback (no indentation).
_EXCEPTION_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Invalid|Interrupt|Exit|Failure))"
    r"(?::\s*(?P<message>.*))?$"
)
_ACCELERATE_WRAPPER = re.compile(
    r"CalledProcessError: Command .* returned non-zero exit status (?P<status>-?\d+)"
)
_KILLED_STATUSES = {-9, 137}  # SIGKILL: the kernel's out-of-memory killer (or a hard stop)
_OUT_OF_MEMORY = re.compile(
    r"out of memory|OutOfMemoryError|can't allocate memory|Cannot allocate memory|\bMemoryError\b"
    r"|std::bad_alloc",
    re.IGNORECASE,
)
# sd-scripts' own dataset assertions (library/train_util.py) and PIL's unreadable images.
_DATA = re.compile(
    r"caption file is empty|image too large, but cropping and bucketing are disabled|image size is small"
    r"|NaN detected in latents|cannot identify image file|UnidentifiedImageError|image file is truncated"
    r"|Truncated File Read",
    re.IGNORECASE,
)
# Exceptions sd-scripts raises while checking and applying its arguments (asserts, ValueError from
# ast.literal_eval / argparse-like parsing, TypeError from a wrong value type, voluptuous schema errors).
_CONFIGURATION_TYPES = re.compile(
    r"(?:^|\.)(?:AssertionError|ValueError|TypeError|KeyError|MultipleInvalid|Invalid|ArgumentError|"
    r"ArgumentTypeError|SyntaxError)$"
)


def _english(message: str) -> str:
    """sd-scripts writes "English / 日本語: detail"; keep the English half and the detail."""
    english, separator, rest = message.partition(" / ")
    if not separator or not any(ord(char) > 0x2E7F for char in rest):
        return message.strip()
    _, colon, detail = rest.partition(": ")
    return f"{english.strip()}: {detail.strip()}" if colon and detail.isascii() else english.strip()


def last_exception_line(lines: Sequence[str]) -> str | None:
    """The child's last exception line, skipping accelerate's ``CalledProcessError`` wrapper."""
    for line in reversed(lines):
        text = line.rstrip()
        if not text or text[0].isspace() or _ACCELERATE_WRAPPER.search(text):
            continue
        if match := _EXCEPTION_LINE.match(text):
            message = _english(match["message"] or "")
            return f"{match['type']}: {message}" if message else match["type"]
    return None


def _wrapper_status(lines: Sequence[str]) -> int | None:
    for line in reversed(lines):
        if match := _ACCELERATE_WRAPPER.search(line):
            return int(match["status"])
    return None


def classify_engine_failure(lines: Sequence[str], return_code: int) -> EngineFailure:
    """Sort a failed engine run by its real cause (see the module docstring)."""
    cause = last_exception_line(lines)
    child_status = _wrapper_status(lines)
    if return_code in _KILLED_STATUSES or child_status in _KILLED_STATUSES:
        killed = "the training process was killed (SIGKILL), most likely by the out-of-memory killer"
        return EngineFailure(FailureKind.OUT_OF_MEMORY, _clip(cause or killed))
    if cause is None:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
        return EngineFailure(FailureKind.INTERNAL, _clip(f"no exception in its output; last line: {last}"))
    if _OUT_OF_MEMORY.search(cause):
        return EngineFailure(FailureKind.OUT_OF_MEMORY, _clip(cause))
    if _DATA.search(cause):
        return EngineFailure(FailureKind.DATA, _clip(cause))
    if _CONFIGURATION_TYPES.search(cause.split(":", 1)[0]):
        return EngineFailure(FailureKind.CONFIGURATION, _clip(cause))
    return EngineFailure(FailureKind.INTERNAL, _clip(cause))


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CAUSE_CHARS else text[: MAX_CAUSE_CHARS - 1] + "…"
