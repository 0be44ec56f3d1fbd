"""/configs: the parameter catalogue with defaults, and validation of a config (with a plan)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from functions.api.schemas.common import RecordId
from functions.domain.catalog import INSTANCE_TYPES, FmType
from functions.domain.json_types import JsonRequestModel
from functions.domain.kohya_params import ParamValue, engine_warnings
from functions.domain.planning import TrainingPlan


class ParameterInfo(BaseModel):
    name: str
    type: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str] = Field(default_factory=list)
    default: ParamValue | None = None


class ConfigDefaults(BaseModel):
    fm_type: FmType
    defaults: dict[str, ParamValue]
    parameters: list[ParameterInfo]
    reserved: dict[str, str] = Field(description="keys the service sets, with the reason")


class ValidateConfigRequest(JsonRequestModel):
    model_config = ConfigDict(extra="forbid")

    fm_type: FmType
    config: dict[str, Any] = Field(default_factory=dict)
    dataset_id: RecordId | None = Field(default=None, description="with instance_type: also plan the job")
    instance_type: str | None = Field(
        default=None,
        max_length=64,
        json_schema_extra={"enum": list[JsonValue]([*sorted(INSTANCE_TYPES), None])},
    )


class ValidatedConfig(BaseModel):
    fm_type: FmType
    config: dict[str, ParamValue] = Field(description="normalised parameters, defaults merged")


class ConfigWarning(BaseModel):
    """A valid parameter that will not take effect (e.g. one the diffusers engine ignores)."""

    field: str
    warning: str


def config_warnings(config: dict[str, ParamValue], engine: str) -> list[ConfigWarning]:
    return [ConfigWarning(field=w.field, warning=w.warning) for w in engine_warnings(config, engine)]


class ConfigValidation(BaseModel):
    fm_type: FmType
    config: dict[str, ParamValue]
    plan: TrainingPlan | None = Field(default=None, description="with dataset_id and instance_type")
    warnings: list[ConfigWarning] = Field(
        default_factory=list, description="valid parameters the deployment's training engine ignores"
    )
