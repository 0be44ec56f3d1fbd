"""cdk-nag acknowledgements through CDK's native ``Validations`` API (cdk-nag 3.x).

Every acknowledgement names the rule and says, specifically, why it does not apply here.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct

PACK = "AwsSolutions"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge an AWS Solutions rule (``"IAM5"``, or one finding: ``"IAM4[Policy::...]"``) on a scope."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{rule}", reason=reason))


def arn_token(resource: IConstruct) -> str:
    """How cdk-nag spells a resource's ``Fn::GetAtt Arn`` in finding ids: ``<LogicalId.Arn>``."""
    child = resource.node.default_child
    assert child is not None
    return f"<{Stack.of(resource).get_logical_id(child)}.Arn>"  # type: ignore[arg-type]


def acknowledge_wildcards(scope: IConstruct, resources: Iterable[str], reason: str) -> None:
    """Acknowledge IAM5 for exactly these wildcard resources (cdk-nag wants the evidence per finding)."""
    for resource in resources:
        acknowledge(scope, f"IAM5[Resource::{resource}]", reason)


def nag_arn(stack: Stack, service: str, resource: str) -> str:
    """An ARN as cdk-nag prints it: pseudo parameters as ``<AWS::Region>``, known values as themselves."""

    def show(value: str, name: str) -> str:
        return f"<AWS::{name}>" if Token.is_unresolved(value) else value

    region, account = show(stack.region, "Region"), show(stack.account, "AccountId")
    return f"arn:<AWS::Partition>:{service}:{region}:{account}:{resource}"
