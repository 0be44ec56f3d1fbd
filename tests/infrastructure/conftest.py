"""Synthesize the app once per test session (jsii makes each synth cost seconds)."""

from __future__ import annotations

import os
from typing import Any

import pytest

# Node 20 is what this machine has; `make synth` runs the CDK CLI on a local Node 22. Silenced
# deliberately so the banner does not bury test output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

NO_BUNDLING = {"aws:cdk:bundling-stacks": []}  # tests assert the template, not the pip download


@pytest.fixture(scope="session")
def template() -> Any:
    from aws_cdk.assertions import Template

    from app import build_app

    app = build_app(dict(NO_BUNDLING))
    assembly = app.synth()  # raises on any unacknowledged cdk-nag finding
    return Template.from_json(assembly.get_stack_by_name("LoraTraining").template)


@pytest.fixture(scope="session")
def template_json(template: Any) -> dict[str, Any]:
    return dict(template.to_json())
