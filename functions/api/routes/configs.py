"""/configs: the recommended Kohya parameters per family, and validation before money is spent."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from functions.api.errors import error_responses
from functions.api.routes.common import ctx, owner_of, success
from functions.api.schemas.configs import (
    ConfigDefaults,
    ConfigValidation,
    ParameterInfo,
    ValidateConfigRequest,
    config_warnings,
)
from functions.domain.catalog import FmType
from functions.domain.kohya_params import DEFAULTS, RESERVED_PARAMETERS, USER_PARAMETERS
from functions.domain.records import DatasetRecord
from functions.services import trainings

router = Router()


@router.get(
    "/configs/defaults",
    summary="Recommended Kohya LoRA parameters for a model family, with every settable parameter",
    responses=success(200, ConfigDefaults, "Defaults and parameter catalogue") | error_responses(400, 401),
    tags=["configs"],
)
def get_defaults(fm_type: Annotated[FmType, Query()]) -> ConfigDefaults:
    defaults = DEFAULTS[fm_type]
    parameters = [
        ParameterInfo(
            name=p.name,
            type=p.kind,
            help=p.help,
            minimum=p.minimum,
            maximum=p.maximum,
            choices=list(p.choices),
            default=defaults.get(p.name),
        )
        for p in USER_PARAMETERS.values()
        if fm_type in p.families
    ]
    return ConfigDefaults(
        fm_type=fm_type, defaults=dict(defaults), parameters=parameters, reserved=RESERVED_PARAMETERS
    )


@router.post(
    "/configs/validate",
    summary="Validate and normalise parameters (and plan the job given dataset_id and instance_type)",
    responses=success(200, ConfigValidation, "Normalised parameters")
    | error_responses(400, 401, 404, 413, 415),
    tags=["configs"],
)
def validate(request: ValidateConfigRequest) -> ConfigValidation:
    context = ctx()
    if request.instance_type:  # checked whenever given, as the schema's enum promises
        trainings.check_instance_type(context, request.instance_type, request.fm_type)
    # with an instance type, GPU-dependent defaults (FLUX.1's blocks_to_swap) are filled for it
    config = trainings.validated_config(request.config, request.fm_type, request.instance_type)
    plan = None
    if request.dataset_id and request.instance_type:
        dataset = context.repository.get(DatasetRecord, request.dataset_id, owner_of(router))
        if dataset.manifest is not None:
            plan = trainings.plan_for(context, dataset, config, request.fm_type, request.instance_type)
    warnings = config_warnings(config, context.settings.training_engine)
    return ConfigValidation(fm_type=request.fm_type, config=config, plan=plan, warnings=warnings)
