"""The S3 key layout and SageMaker job naming: one place, so IAM policies, the API and the
container agree.

    models/<owner_key>/<model_id>/<filename>              uploaded checkpoints and registered LoRAs
    datasets/<owner_key>/<dataset_id>/uploads/<rel path>   where the presigned PUTs write (the caller's)
    datasets/<owner_key>/<dataset_id>/files/<rel path>     dataset files, Kohya layout under files/:
        written only by the service (the validated bytes of each upload, or a crop's output), never
        by a presigned URL, so a dataset's content is frozen once it is validated
    datasets/<owner_key>/<dataset_id>/declared.json        the declared file list
    trainings/<owner_key>/<job_id>/input/job.json          the job's spec: its own input channel
    trainings/<owner_key>/<job_id>/output/                 SageMaker OutputDataConfig (uncompressed)
    trainings/<owner_key>/<job_id>/output/<sagemaker job>/output/model/   what the container left in
        /opt/ml/model: <name>.safetensors, summary.json, epochs/<name>-000001.safetensors,
        samples/<name>_e000001_00.png (see training_contract)
    models/<owner_key>/<job_id>/<name>-000001.safetensors  a registered LoRA's intermediate versions
    trainings/<owner_key>/<job_id>/checkpoints/            SageMaker CheckpointConfig (synced live)
    trainings/<owner_key>/<job_id>/checkpoints/progress.json   live progress (see training_contract)
    trainings/<owner_key>/<job_id>/checkpoints/metrics.json    the loss curve (see training_contract)

Training logs are not in S3: SageMaker writes them to CloudWatch Logs, log group
``/aws/sagemaker/TrainingJobs``, one stream per instance and attempt named
``<training job name>/algo-1-<epoch seconds>`` (a restarted spot job gets a new stream).

``owner_key`` is a short hash of the caller's identity (an IAM ARN is not key-safe and should not
leak into object names).
"""

from __future__ import annotations

import hashlib

MODELS_PREFIX = "models/"
DATASETS_PREFIX = "datasets/"
TRAININGS_PREFIX = "trainings/"
DATASET_FILES_FOLDER = "files/"
DATASET_UPLOADS_FOLDER = "uploads/"
# Small JPEG previews written by the validation; beside files/, never inside it (files/ is the
# training channel: a thumbnail there would be trained on).
DATASET_THUMBNAILS_FOLDER = "thumbnails/"
THUMBNAIL_SUFFIX = ".jpg"
PROGRESS_FILENAME = "progress.json"
SUMMARY_FILENAME = "summary.json"
METRICS_FILENAME = "metrics.json"
SAGEMAKER_TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"

# SageMaker training job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$
MAX_JOB_NAME_LENGTH = 63


def owner_key(owner: str) -> str:
    return hashlib.sha256(owner.encode("utf-8")).hexdigest()[:24]


def model_object_key(owner: str, model_id: str, filename: str) -> str:
    return f"{MODELS_PREFIX}{owner_key(owner)}/{model_id}/{filename}"


def dataset_prefix(owner: str, dataset_id: str) -> str:
    return f"{DATASETS_PREFIX}{owner_key(owner)}/{dataset_id}/{DATASET_FILES_FOLDER}"


def dataset_root_prefix(owner: str, dataset_id: str) -> str:
    """Everything a dataset stores (its files, its uploads, its declaration)."""
    return f"{DATASETS_PREFIX}{owner_key(owner)}/{dataset_id}/"


def dataset_upload_prefix(owner: str, dataset_id: str) -> str:
    return dataset_root_prefix(owner, dataset_id) + DATASET_UPLOADS_FOLDER


def dataset_upload_key(owner: str, dataset_id: str, relative_path: str) -> str:
    """Where a presigned PUT writes a declared file (validated from here into ``files/``)."""
    return dataset_upload_prefix(owner, dataset_id) + relative_path


def dataset_thumbnail_prefix(owner: str, dataset_id: str) -> str:
    return dataset_root_prefix(owner, dataset_id) + DATASET_THUMBNAILS_FOLDER


def dataset_thumbnail_key(owner: str, dataset_id: str, relative_path: str) -> str:
    """``thumbnails/<repeats>_<concept>/<image name>.jpg`` (the image's own extension kept in the name)."""
    return dataset_thumbnail_prefix(owner, dataset_id) + relative_path + THUMBNAIL_SUFFIX


def dataset_declared_key(owner: str, dataset_id: str) -> str:
    """The declared file list (kept beside, not inside, the ``files/`` channel prefix)."""
    return f"{DATASETS_PREFIX}{owner_key(owner)}/{dataset_id}/declared.json"


def dataset_file_key(owner: str, dataset_id: str, relative_path: str) -> str:
    return dataset_prefix(owner, dataset_id) + relative_path


def caption_cache_prefix(owner: str) -> str:
    """The owner's caption cache (``captioning.caption_cache_key`` below it), read by captions jobs
    through their ``cache`` channel. Beside the owner's datasets, so it has their lifetime, not the
    trainings' checkpoint expiry; ``caption-cache`` cannot collide with a dataset id."""
    return f"{DATASETS_PREFIX}{owner_key(owner)}/caption-cache/"


def training_prefix(owner: str, job_id: str) -> str:
    return f"{TRAININGS_PREFIX}{owner_key(owner)}/{job_id}/"


def training_input_prefix(owner: str, job_id: str) -> str:
    """The job's own input channel (``training_contract.JOB_CHANNEL``): only the job spec."""
    return training_prefix(owner, job_id) + "input/"


def training_output_prefix(owner: str, job_id: str) -> str:
    return training_prefix(owner, job_id) + "output/"


def training_checkpoint_prefix(owner: str, job_id: str) -> str:
    return training_prefix(owner, job_id) + "checkpoints/"


def training_progress_key(owner: str, job_id: str) -> str:
    return training_checkpoint_prefix(owner, job_id) + PROGRESS_FILENAME


def training_metrics_key(owner: str, job_id: str) -> str:
    return training_checkpoint_prefix(owner, job_id) + METRICS_FILENAME


def training_log_stream_prefix(sagemaker_job_name: str) -> str:
    """Every CloudWatch Logs stream of one SageMaker training job starts with this."""
    return f"{sagemaker_job_name}/"


def training_model_output_prefix(owner: str, job_id: str, sagemaker_job_name: str) -> str:
    """Where SageMaker uploads ``/opt/ml/model`` (CompressionType NONE keeps the files as they are)."""
    return f"{training_output_prefix(owner, job_id)}{sagemaker_job_name}/output/model/"


def training_published_key(owner: str, job_id: str, sagemaker_job_name: str, relative_path: str) -> str:
    """A file the container published, by its path relative to ``/opt/ml/model``."""
    return training_model_output_prefix(owner, job_id, sagemaker_job_name) + relative_path


def sagemaker_job_name(prefix: str, job_id: str) -> str:
    """``<prefix>-<job_id>``; the EventBridge rule and IAM policies match on the prefix."""
    name = f"{prefix}-{job_id}"
    if len(name) > MAX_JOB_NAME_LENGTH:
        raise ValueError(f"job name prefix {prefix!r} is too long for SageMaker's 63-character limit")
    return name


def job_id_from_sagemaker_name(prefix: str, name: str) -> str | None:
    """The job id inside a SageMaker job name, or None when the name is not one of ours."""
    head = f"{prefix}-"
    return name[len(head) :] if name.startswith(head) and len(name) > len(head) else None
