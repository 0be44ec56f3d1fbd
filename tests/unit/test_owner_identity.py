"""The owner rule (functions/api/identity.py, README "Who owns what"): every principal ARN form
API Gateway's IAM authoriser reports, and the same person across sessions."""

from __future__ import annotations

import pytest

from functions.api.identity import caller_from_event, owner_from_principal
from functions.domain.errors import Unauthenticated

ACCOUNT = "123456789012"


@pytest.mark.parametrize(
    ("user_arn", "owner"),
    [
        # IAM user (with and without a path): the ARN itself.
        (f"arn:aws:iam::{ACCOUNT}:user/alice", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        (f"arn:aws:iam::{ACCOUNT}:user/team/alice", f"arn:aws:iam::{ACCOUNT}:user/team/alice"),
        # IAM Identity Center (SSO): the session name is the user's name.
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/alice@example.com",
            f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Developer_0123456789abcdef/alice@example.com",
        ),
        # Any other role: the session name is the caller's choice, so the role is the owner.
        (f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/alice", f"arn:aws:iam::{ACCOUNT}:role/LoraUsers"),
        # A CLI profile with role_arn and no session name: botocore names it botocore-session-<time>.
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/botocore-session-1732500000",
            f"arn:aws:iam::{ACCOUNT}:role/LoraUsers",
        ),
        # Federated user (GetFederationToken) and root.
        (f"arn:aws:sts::{ACCOUNT}:federated-user/bob", f"arn:aws:sts::{ACCOUNT}:federated-user/bob"),
        (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root"),
        # Other partitions keep theirs.
        (f"arn:aws-cn:sts::{ACCOUNT}:assumed-role/R/botocore-session-1", f"arn:aws-cn:iam::{ACCOUNT}:role/R"),
    ],
)
def test_each_principal_form_maps_to_its_documented_owner(user_arn: str, owner: str) -> None:
    assert owner_from_principal(user_arn) == owner


def test_a_new_session_of_the_same_person_is_the_same_owner() -> None:
    sso = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Dev_abc/alice"
    assert owner_from_principal(sso) == owner_from_principal(sso)  # SSO reuses the user's name
    first = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/botocore-session-1732500000"
    next_hour = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/botocore-session-1732503600"
    assert owner_from_principal(first) == owner_from_principal(next_hour)


def test_an_unlisted_role_is_one_owner_for_every_session() -> None:
    alice = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraTeam/alice"
    bob = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraTeam/bob"
    team = f"arn:aws:iam::{ACCOUNT}:role/LoraTeam"
    assert owner_from_principal(alice) == owner_from_principal(bob) == team
    assert owner_from_principal(alice, ["OtherRole"]) == team


def test_a_caller_cannot_become_someone_else_by_naming_the_session() -> None:
    """RoleSessionName is free-form: user A assuming a role with role_session_name=bob is not bob."""
    bob = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Dev_abc/bob"
    impostor = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/bob"
    assert owner_from_principal(impostor) != owner_from_principal(bob)
    assert owner_from_principal(impostor) == f"arn:aws:iam::{ACCOUNT}:role/LoraUsers"


def test_a_role_whose_trust_policy_pins_the_session_name_owns_per_session_name() -> None:
    alice = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/alice"
    bob = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/bob"
    assert owner_from_principal(alice, ["LoraUsers"]) == alice
    assert owner_from_principal(bob, ["LoraUsers"]) == bob
    generated = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/botocore-session-1732500000"
    assert owner_from_principal(generated, ["LoraUsers"]) == f"arn:aws:iam::{ACCOUNT}:role/LoraUsers"


def _event(identity: dict[str, str]) -> dict[str, object]:
    return {"requestContext": {"identity": identity}}


def test_the_handler_uses_user_arn_and_refuses_requests_without_one() -> None:
    caller = "AROAEXAMPLEID:botocore-session-1732500000"
    role_session = f"arn:aws:sts::{ACCOUNT}:assumed-role/LoraUsers/botocore-session-1732500000"
    event = _event({"userArn": role_session, "caller": caller, "user": caller, "accountId": ACCOUNT})
    assert caller_from_event(event) == f"arn:aws:iam::{ACCOUNT}:role/LoraUsers"
    assert caller_from_event(event, ["LoraUsers"]) == f"arn:aws:iam::{ACCOUNT}:role/LoraUsers"
    for identity in ({}, {"caller": caller}, {"userArn": ""}, {"userArn": "AIDAEXAMPLE"}):
        with pytest.raises(Unauthenticated):
            caller_from_event(_event(identity))
