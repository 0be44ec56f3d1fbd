"""The caller: API Gateway's IAM identity (SigV4), and the owner of everything they create.

API Gateway's IAM authorisation puts the signer in ``requestContext.identity``: ``userArn`` (the
principal's ARN), ``caller`` and ``user`` (its principal id, ``AROA...:<session>`` for a role),
``accountId``, ``accessKey`` and ``principalOrgId``; there is no source identity field. The
owner is derived from ``userArn`` so that the same person is the same owner in every session
(README "Who owns what"):

* IAM user ``arn:aws:iam::<acct>:user/<path/><name>``, root ``arn:aws:iam::<acct>:root`` and
  federated user ``arn:aws:sts::<acct>:federated-user/<name>``: the ARN itself (stable).
* Assumed role ``arn:aws:sts::<acct>:assumed-role/<role>/<session>``:

  - the role is listed in ``OWNER_SHARED_ROLES`` (context ``ownerSharedRoles``): the role,
    ``arn:aws:iam::<acct>:role/<role>``, one owner for everyone who assumes it (a team);
  - the session name is one an SDK generated (botocore's ``botocore-session-<unix time>`` for a
    CLI profile with ``role_arn`` and no ``role_session_name``; botocore/credentials.py
    ``AssumeRoleCredentialFetcher``): it changes every hour and names nobody, so the role
    is the owner here too: such callers share that role's resources. Setting
    ``role_session_name`` in the profile makes the caller a person of their own;
  - otherwise the session name is the person (IAM Identity Center's ``AWSReservedSSO_*`` roles
    use the user name; a profile's ``role_session_name``): the ARN, which stays the same from
    one session to the next.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from functions.domain.errors import Unauthenticated

_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>[\w-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>.+)"
)
# Session names SDKs make up when the caller gave none (no person in them).
GENERATED_SESSION_NAMES = (re.compile(r"botocore-session-\d+"),)


def owner_from_principal(user_arn: str, shared_roles: Collection[str] = ()) -> str:
    """The owner of a caller's resources from its principal ARN (rule in the module docstring)."""
    match = _ASSUMED_ROLE.fullmatch(user_arn)
    if match is None:
        return user_arn  # IAM user, root, federated user: already one per person
    role, session = match["role"], match["session"]
    if role in shared_roles or any(p.fullmatch(session) for p in GENERATED_SESSION_NAMES):
        return f"arn:{match['partition']}:iam::{match['account']}:role/{role}"
    return user_arn


def caller_from_event(event: dict[str, Any], shared_roles: Collection[str] = ()) -> str:
    """The owner of a request signed with SigV4; 401 when API Gateway names no principal."""
    identity = ((event.get("requestContext") or {}).get("identity")) or {}
    user_arn = identity.get("userArn")
    if not isinstance(user_arn, str) or not user_arn.startswith("arn:"):
        raise Unauthenticated("requests must be signed (SigV4): no caller identity")
    return owner_from_principal(user_arn, shared_roles)
