"""Seal a gated import's access token so that only the tasks function can read it.

The token must reach the tasks function that fetches the file, yet never be stored in the table,
written to a log or put on the event bus (issue 15). The API encrypts it with the deployment's
import-token KMS key (``kms:Encrypt``, the API's grant) and the ciphertext travels in the
background task's payload; only the tasks function may ``kms:Decrypt`` it. The encryption
context binds the ciphertext to one model and owner, so a sealed token copied into another
task does not open (KMS developer guide, "Encryption context"). Nothing is left to delete: the
ciphertext lives only in Lambda's asynchronous-invocation queue (and, after failed retries, the
tasks dead-letter queue), useless without the key.

KMS Encrypt takes at most 4,096 bytes of plaintext (botocore kms service-2.json,
``PlaintextType`` max 4096); the API's ``access_token`` limit is below it.
"""

from __future__ import annotations

import base64

from functions.adapters.aws_clients import kms_client

PURPOSE = "model-import-access-token"


def _context(owner: str, record_id: str) -> dict[str, str]:
    return {"purpose": PURPOSE, "owner": owner, "record_id": record_id}


class TokenSealer:
    def __init__(self, key_arn: str) -> None:
        self._key_arn = key_arn

    def seal(self, token: str, *, owner: str, record_id: str) -> str:
        answer = kms_client().encrypt(
            KeyId=self._key_arn,
            Plaintext=token.encode(),
            EncryptionContext=_context(owner, record_id),
        )
        return base64.b64encode(answer["CiphertextBlob"]).decode()

    def open(self, sealed: str, *, owner: str, record_id: str) -> str:
        # KeyId given although symmetric ciphertext names its key: KMS then refuses a ciphertext
        # made under any other key (KMS API reference, Decrypt, "KeyId").
        answer = kms_client().decrypt(
            KeyId=self._key_arn,
            CiphertextBlob=base64.b64decode(sealed),
            EncryptionContext=_context(owner, record_id),
        )
        return bytes(answer["Plaintext"]).decode()
