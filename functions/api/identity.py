"""The caller: API Gateway's IAM identity (SigV4), and the owner of everything they create.

API Gateway's IAM authorisation puts the signer in ``requestContext.identity``: ``userArn`` (the
principal's ARN), ``caller`` and ``user`` (its principal id, ``AROA...:<session>`` for a role),
``accountId``, ``accessKey`` and ``principalOrgId``; there is no source identity field. The
owner is derived from ``userArn`` so that the same person is the same owner in every session
(README "Who owns what"):

* IAM user ``arn:aws:iam::<acct>:user/<path/><name>``, root ``arn:aws:iam::<acct>:root`` and
  federated user ``arn:aws:sts::<acct>:federated-user/<name>``: the ARN itself (stable).
* Assumed role ``arn:aws:sts::<acct>:assumed-role/<role>/<session>``: the session name is
  free-form for anyone allowed to assume the role (AssumeRole's ``RoleSessionName``), so a
  caller could name it after someone else. It is trusted as the person only where the caller
  cannot choose it:

  - IAM Identity Center roles (``AWSReservedSSO_<set>_<id>``): AWS sets the session name to the
    signed-in user's name;
  - roles listed in ``OWNER_SESSION_ROLES`` (context ``ownerSessionRoles``), whose trust policy
    pins the session name to the caller with the ``sts:RoleSessionName`` condition key (e.g.
    ``"StringEquals": {"sts:RoleSessionName": "${aws:username}"}``; IAM User Guide, "IAM and AWS
    STS condition context keys", sts:RoleSessionName) — except a name an SDK generated
    (botocore's ``botocore-session-<unix time>``), which names nobody;

  the ARN then stays the same from one session to the next. Every other assumed role is one
  owner, the role ``arn:aws:iam::<acct>:role/<role>``, shared by everyone who assumes it.
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
# IAM Identity Center's roles: AWS names the session after the signed-in user.
SSO_ROLE_PREFIX = "AWSReservedSSO_"


def owner_from_principal(user_arn: str, session_roles: Collection[str] = ()) -> str:
    """The owner of a caller's resources from its principal ARN (rule in the module docstring)."""
    match = _ASSUMED_ROLE.fullmatch(user_arn)
    if match is None:
        return user_arn  # IAM user, root, federated user: already one per person
    role, session = match["role"], match["session"]
    session_is_the_person = role.startswith(SSO_ROLE_PREFIX) or role in session_roles
    if session_is_the_person and not any(p.fullmatch(session) for p in GENERATED_SESSION_NAMES):
        return user_arn
    return f"arn:{match['partition']}:iam::{match['account']}:role/{role}"


def caller_from_event(event: dict[str, Any], session_roles: Collection[str] = ()) -> str:
    """The owner of a request signed with SigV4; 401 when API Gateway names no principal."""
    identity = ((event.get("requestContext") or {}).get("identity")) or {}
    user_arn = identity.get("userArn")
    if not isinstance(user_arn, str) or not user_arn.startswith("arn:"):
        raise Unauthenticated("requests must be signed (SigV4): no caller identity")
    return owner_from_principal(user_arn, session_roles)
