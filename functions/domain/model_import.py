"""Rules for importing a model from a URL (``POST /models`` with ``source_url``).

The URL follows the outbound rules every call the service makes follows (``outbound_urls``);
on top of them, only ``.safetensors`` files are imported: a URL whose file name has another
extension (``.ckpt``, ``.pt``, ``.bin``: pickles that can run code) is refused, and a URL without
an extension (e.g. a download API) needs an explicit ``filename`` ending in ``.safetensors`` —
the file's header is parsed before the model is ever marked ready.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from functions.domain.kohya_params import FieldProblem
from functions.domain.outbound_urls import Resolver, outbound_url_problems

SOURCE_FIELD = "source_url"
MAX_REDIRECTS = 3
# A gated import's access token (Hugging Face "hf_..." tokens are 37 characters; JWT-style tokens
# are longer). Well below KMS Encrypt's 4,096-byte plaintext limit (functions/adapters/token_sealer.py).
ACCESS_TOKEN_MAX_LENGTH = 1024
# Visible ASCII only: the token becomes an Authorization header value (RFC 9110 field-value).
ACCESS_TOKEN_CHARACTERS = re.compile(r"[!-~]+")
# The background task parameter that carries the KMS-sealed token to the tasks function.
SEALED_TOKEN_PARAM = "sealed_access_token"
MODEL_EXTENSION = ".safetensors"
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*\.safetensors$")
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._\-]+")


def url_file_name(url: str) -> str:
    """The last path segment of a URL, percent-decoded ('' when there is none)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def source_problems(
    url: str, filename: str | None, *, allow_loopback_http: bool, resolve: Resolver | None
) -> list[FieldProblem]:
    """Why this URL may not be imported ([] when it may); DNS is asked last."""
    problems = outbound_url_problems(url, SOURCE_FIELD, allow_loopback_http=allow_loopback_http, resolve=None)
    if problems:
        return problems
    name = url_file_name(url)
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix and suffix != MODEL_EXTENSION:
        problem = f"must name a .safetensors file, not {suffix} (pickled formats can run code)"
        return [FieldProblem(SOURCE_FIELD, problem)]
    if not suffix and filename is None:
        return [FieldProblem("filename", "is required when source_url does not end in .safetensors")]
    if resolve is None:
        return []
    return outbound_url_problems(url, SOURCE_FIELD, allow_loopback_http=allow_loopback_http, resolve=resolve)


def import_filename(url: str, filename: str | None) -> str:
    """The stored file name: the one given, else the URL's, made safe."""
    if filename:
        return filename
    stem = _UNSAFE_FILENAME_CHARS.sub("-", url_file_name(url)[: -len(MODEL_EXTENSION)]).strip("-.") or "model"
    name = f"{stem[: 128 - len(MODEL_EXTENSION)]}{MODEL_EXTENSION}"
    return name if _FILENAME.match(name) and len(name) >= 13 else f"imported-{stem[:100]}{MODEL_EXTENSION}"
