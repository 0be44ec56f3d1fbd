"""FLUX.1 and SD 3.5 in the diffusers engine, on tiny random-weight models on the CPU.

The expected LoRA key names are derived from the tiny models' structure with sd-scripts v0.10.1's
rules (networks/lora_flux.py, networks/lora_sd3.py: every Linear inside the original
DoubleStreamBlock / SingleStreamBlock / SingleDiTBlock and inside CLIPAttention / CLIPMLP, named
``<prefix>_<module path with _>``), never from the exporter. Whether a file means what it says is
checked by loading it: diffusers' FLUX loader (which reads sd-scripts' names), and for both
families an independent reference that applies each module as sd-scripts' LoRAModule does
(``up @ down * alpha / rank`` added to the fused original layer) and splits the fused update over
diffusers' layers the way diffusers' single-file converters split the original weights.

The trainer runs each family from its FamilySpec (functions.domain.families), on a diffusers
folder; tests/container/test_flux_files.py runs FLUX.1 from the files users upload.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from diffusers import FluxPipeline
from peft import LoraConfig, inject_adapter_in_model
from PIL import Image
from safetensors.torch import load_file

from functions.domain.families import FmType
from training_container.dataset_staging import validate_dataset
from training_container.engines import diffusers_engine
from training_container.engines.base import EngineRequest
from training_container.engines.families.flow_matching import FlowMatchingAdapter
from training_container.engines.families.flux1 import Flux1Adapter, FluxTraining
from training_container.engines.families.sd35 import SD35Adapter, SD35Training
from training_container.progress import ProgressReporter
from training_container.testing.tiny_flow_models import (
    T5_MAX_LENGTH,
    build_tiny_flux_pipeline,
    build_tiny_sd35_pipeline,
    tiny_flux_transformer,
)
from training_container.testing.tiny_models import make_tiny_dataset

CPU = torch.device("cpu")
RANK, ALPHA = 4, 2.0
SIDE = 64  # pixels: 8x8 latents, 16 FLUX patches


class TinyFlux(Flux1Adapter):
    def __init__(self, pipe: Any, training: FluxTraining | None = None) -> None:
        super().__init__(pipe, training or FluxTraining(t5xxl_max_token_length=T5_MAX_LENGTH))


class TinySD35(SD35Adapter):
    def __init__(self, pipe: Any, training: SD35Training | None = None) -> None:
        super().__init__(pipe, training or SD35Training(t5xxl_max_token_length=T5_MAX_LENGTH))


# --- sd-scripts' naming rules applied to the original architectures of the tiny models
def _clip_names(prefix: str, encoder: torch.nn.Module) -> set[str]:
    """lora_flux.py lines 815-827: Linear children of CLIPAttention / CLIPMLP modules."""
    names = set()
    for path, module in encoder.named_modules():
        if type(module).__name__ in ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP"):
            for child, layer in module.named_modules():
                if child and isinstance(layer, torch.nn.Linear):
                    full = f"{path}.{child}"
                    full = full if full.startswith("text_model.") else "text_model." + full
                    names.add(f"{prefix}_{full.replace('.', '_')}")
    return names


def expected_flux_names(transformer: Any) -> dict[str, tuple[int, int]]:
    """BFL's DoubleStreamBlock / SingleStreamBlock Linear layers (flux_models.py lines 606-785)
    with the (out, in) shape of the fused original weight."""
    d = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    mlp = 4 * d  # mlp_ratio 4.0
    shapes: dict[str, tuple[int, int]] = {}
    for i in range(transformer.config.num_layers):
        for stream in ("img", "txt"):
            block = f"lora_unet_double_blocks_{i}_{stream}"
            shapes |= {
                f"{block}_mod_lin": (6 * d, d),
                f"{block}_attn_qkv": (3 * d, d),
                f"{block}_attn_proj": (d, d),
                f"{block}_mlp_0": (mlp, d),
                f"{block}_mlp_2": (d, mlp),
            }
    for i in range(transformer.config.num_single_layers):
        block = f"lora_unet_single_blocks_{i}"
        shapes |= {
            f"{block}_linear1": (3 * d + mlp, d),
            f"{block}_linear2": (d, d + mlp),
            f"{block}_modulation_lin": (3 * d, d),
        }
    return shapes


def expected_sd35_names(transformer: Any) -> dict[str, tuple[int, int]]:
    """MMDiT's SingleDiTBlock Linear layers (sd3_models.py lines 569-631): the last context block
    is pre-only (no proj, no mlp, 2 modulations); MMDiT-X x blocks add attn2 and 9 modulations."""
    d = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    mlp = 4 * d
    count = transformer.config.num_layers
    shapes: dict[str, tuple[int, int]] = {}
    for i in range(count):
        dual = i in transformer.config.dual_attention_layers
        for side in ("context_block", "x_block"):
            block = f"lora_unet_joint_blocks_{i}_{side}"
            pre_only = side == "context_block" and i == count - 1
            shapes[f"{block}_attn_qkv"] = (3 * d, d)
            modulations = 2 if pre_only else 9 if (dual and side == "x_block") else 6
            shapes[f"{block}_adaLN_modulation_1"] = (modulations * d, d)
            if not pre_only:
                shapes |= {
                    f"{block}_attn_proj": (d, d),
                    f"{block}_mlp_fc1": (mlp, d),
                    f"{block}_mlp_fc2": (d, mlp),
                }
            if dual and side == "x_block":
                shapes |= {f"{block}_attn2_qkv": (3 * d, d), f"{block}_attn2_proj": (d, d)}
    return shapes


# --- a reference loader for the original layouts
# sd-scripts suffix -> the diffusers layers its output rows split into, in order; "swap": the
# original orders the two output halves the other way round.
FLUX_SPLITS = {
    "img_attn_qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
    "txt_attn_qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
    "img_attn_proj": ["attn.to_out.0"],
    "txt_attn_proj": ["attn.to_add_out"],
    "img_mlp_0": ["ff.net.0.proj"],
    "img_mlp_2": ["ff.net.2"],
    "txt_mlp_0": ["ff_context.net.0.proj"],
    "txt_mlp_2": ["ff_context.net.2"],
    "img_mod_lin": ["norm1.linear"],
    "txt_mod_lin": ["norm1_context.linear"],
    "linear1": ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"],
    "linear2": ["proj_out"],
    "modulation_lin": ["norm.linear"],
}
SD35_SPLITS = {
    "x_block_attn_qkv": ["attn.to_q", "attn.to_k", "attn.to_v"],
    "x_block_attn2_qkv": ["attn2.to_q", "attn2.to_k", "attn2.to_v"],
    "context_block_attn_qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
    "x_block_attn_proj": ["attn.to_out.0"],
    "x_block_attn2_proj": ["attn2.to_out.0"],
    "context_block_attn_proj": ["attn.to_add_out"],
    "x_block_mlp_fc1": ["ff.net.0.proj"],
    "x_block_mlp_fc2": ["ff.net.2"],
    "context_block_mlp_fc1": ["ff_context.net.0.proj"],
    "context_block_mlp_fc2": ["ff_context.net.2"],
    "x_block_adaLN_modulation_1": ["norm1.linear"],
    "context_block_adaLN_modulation_1": ["norm1_context.linear"],
}


def _diffusers_block(name: str) -> tuple[str, str]:
    """``lora_unet_double_blocks_3_img_attn_qkv`` -> (``transformer_blocks.3``, ``img_attn_qkv``)."""
    rest = name.removeprefix("lora_unet_")
    for original, diffusers_list in (
        ("double_blocks_", "transformer_blocks"),
        ("single_blocks_", "single_transformer_blocks"),
        ("joint_blocks_", "transformer_blocks"),
    ):
        if rest.startswith(original):
            index, _, suffix = rest.removeprefix(original).partition("_")
            return f"{diffusers_list}.{index}", suffix
    raise AssertionError(name)


def apply_like_original(
    transformer: torch.nn.Module, tensors: dict[str, torch.Tensor], splits: dict[str, list[str]]
) -> None:
    """Merge each module as sd-scripts' LoRAModule applies it to the fused original layer
    (lora_flux.py line 100: scale = alpha / lora_dim; LoRAInfModule.merge_to), then split rows."""
    names = {key.split(".")[0] for key in tensors if key.startswith("lora_unet_")}
    for name in names:
        down, up = tensors[f"{name}.lora_down.weight"].float(), tensors[f"{name}.lora_up.weight"].float()
        delta = up @ down * (float(tensors[f"{name}.alpha"]) / down.shape[0])
        block_path, suffix = _diffusers_block(name)
        block: Any = transformer.get_submodule(block_path)
        if suffix == "context_block_adaLN_modulation_1" and block.context_pre_only:
            # MMDiT (shift, scale) vs AdaLayerNormContinuous (scale, shift): single_file_utils' swap
            first, second = delta.chunk(2)
            delta = torch.cat([second, first])
        layers = [block.get_submodule(path) for path in splits[suffix]]
        rows = torch.split(delta, [layer.weight.shape[0] for layer in layers])
        with torch.no_grad():
            for layer, part in zip(layers, rows, strict=True):
                layer.weight += part.to(layer.weight.dtype)


# --- running the trainer with a stand-in spec
def _train(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    adapter: type[FlowMatchingAdapter],
    pipe: Any,
    fm_type: FmType,
) -> Path:
    model_dir = tmp_path / "model"
    pipe.save_pretrained(model_dir)
    monkeypatch.setattr(diffusers_engine, "adapter_for", lambda _spec: adapter)
    checkpoints = tmp_path / "checkpoints"
    request = EngineRequest(
        fm_type=fm_type,
        config={
            "resolution": str(SIDE),
            "enable_bucket": False,
            "max_train_steps": 2,
            "train_batch_size": 2,
            "network_dim": RANK,
            "network_alpha": ALPHA,
            "learning_rate": 1e-3,
            "network_train_unet_only": False,
            "cache_latents": True,
            "seed": 3,
        },
        model_path=model_dir,
        dataset=validate_dataset(
            make_tiny_dataset(tmp_path / "data", repeats=1, n_images=2, size=(SIDE, SIDE))
        ),
        work_dir=tmp_path / "work",
        output_dir=tmp_path / "out",
        output_name="tiny",
        checkpoints_dir=checkpoints,
        progress=ProgressReporter(checkpoints),
        job_id="job-flow",
    )
    result = diffusers_engine.run_diffusers_engine(request)
    assert result.steps == 2 and result.lora_path is not None and result.final_loss is not None
    return result.lora_path


def _check_file(
    tensors: dict[str, torch.Tensor], expected: dict[str, tuple[int, int]], te_names: set[str]
) -> None:
    names = {key.split(".")[0] for key in tensors}
    assert names == set(expected) | te_names
    assert set(tensors) == {
        f"{n}.{s}" for n in names for s in ("lora_down.weight", "lora_up.weight", "alpha")
    }
    for name, (out_dim, in_dim) in expected.items():
        down, up = tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"]
        # fused modules too: one rank-r module on the fused layer, as sd-scripts' LoRAModule
        assert down.shape == (RANK, in_dim) and up.shape == (out_dim, RANK), name
        assert float(tensors[f"{name}.alpha"]) == ALPHA, name
    for name in te_names:
        assert tensors[f"{name}.lora_down.weight"].shape[0] == RANK
        assert float(tensors[f"{name}.alpha"]) == ALPHA


def test_flux_trains_and_writes_sd_scripts_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = build_tiny_flux_pipeline()
    path = _train(tmp_path, monkeypatch, TinyFlux, pipe, FmType.FLUX1)
    tensors = load_file(str(path))
    _check_file(tensors, expected_flux_names(pipe.transformer), _clip_names("lora_te1", pipe.text_encoder))
    assert any("double_blocks_0_img_attn_qkv" in k for k in tensors)
    assert not any(k.startswith(("lora_te3", "lora_unet_final_layer")) for k in tensors)


def test_sd35_trains_and_writes_sd_scripts_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = build_tiny_sd35_pipeline()
    path = _train(tmp_path, monkeypatch, TinySD35, pipe, FmType.SD35)
    tensors = load_file(str(path))
    te_names = _clip_names("lora_te1", pipe.text_encoder) | _clip_names("lora_te2", pipe.text_encoder_2)
    _check_file(tensors, expected_sd35_names(pipe.transformer), te_names)
    assert "lora_unet_joint_blocks_0_x_block_adaLN_modulation_1.alpha" in tensors


# --- the export means what it says
def _randomised_lora(adapter: FlowMatchingAdapter, text: bool) -> None:
    """LoRA on the adapter's targets with random (non-zero) up weights: a trained-looking LoRA."""
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=adapter.denoiser_lora_target_modules())
    inject_adapter_in_model(config, adapter.denoiser)
    adapter.share_denoiser_lora_parts()  # as the trainer does
    if text:
        for encoder in adapter.text_encoders:
            inject_adapter_in_model(
                LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=list(adapter.text_encoder_lora_targets)),
                encoder,
            )
    generator = torch.Generator().manual_seed(0)
    for model in [adapter.denoiser, *adapter.text_encoders]:
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.data = torch.randn(parameter.shape, generator=generator) * 0.05


def _flux_inputs(transformer: Any) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(1)
    d_text = transformer.config.joint_attention_dim
    return {
        "hidden_states": torch.randn(1, 16, 64, generator=generator),
        "encoder_hidden_states": torch.randn(1, 8, d_text, generator=generator),
        "pooled_projections": torch.randn(1, transformer.config.pooled_projection_dim, generator=generator),
        "timestep": torch.tensor([0.5]),
        "guidance": torch.tensor([1.0]),
        "img_ids": torch.zeros(16, 3),
        "txt_ids": torch.zeros(8, 3),
        "return_dict": False,
    }


@pytest.fixture
def unhandled_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What diffusers would warn about as unexpected / missing keys when loading a LoRA."""
    import diffusers.loaders.peft as peft_loader

    seen: list[Any] = []
    monkeypatch.setattr(peft_loader, "_maybe_warn_for_unhandled_keys", lambda keys, name: seen.append(keys))
    yield seen


def _no_unhandled(seen: list[Any]) -> None:
    assert seen, "diffusers did not load a LoRA into the transformer"
    for keys in seen:
        assert not getattr(keys, "unexpected_keys", None)
        assert not [k for k in getattr(keys, "missing_keys", []) if "lora_" in k]


@pytest.mark.parametrize(
    "width",
    [
        # tiny double blocks, with CLIP-L LoRA; diffusers' loader splits single-block linear1 at
        # FLUX.1's real widths (3072 * 3 + 12288, lora_conversion_utils), hence the second case
        pytest.param({"num_layers": 2, "num_single_layers": 0}, id="double-blocks"),
        pytest.param(
            {
                "num_layers": 0,
                "num_single_layers": 1,
                "head_dim": 128,
                "heads": 24,
                "axes_dims_rope": (16, 56, 56),
            },
            id="single-block-at-flux-width",
        ),
    ],
)
def test_flux_export_loads_in_diffusers_with_every_key(
    width: dict[str, Any], unhandled_keys: list[Any]
) -> None:
    torch.manual_seed(0)
    pipe = build_tiny_flux_pipeline()
    pipe.transformer = tiny_flux_transformer(**width)
    base_transformer = copy.deepcopy(pipe.transformer)
    base_clip = copy.deepcopy(pipe.text_encoder)
    adapter = TinyFlux(pipe)
    text = width["num_layers"] > 0
    _randomised_lora(adapter, text=text)
    tensors = adapter.kohya_lora_tensors(torch.float32)
    inputs = _flux_inputs(pipe.transformer)
    with torch.no_grad():
        trained = pipe.transformer(**inputs)[0]
        base = base_transformer(**inputs)[0]

    loaded_pipe = FluxPipeline(
        **{**pipe.components, "transformer": base_transformer, "text_encoder": base_clip}
    )
    loaded_pipe.load_lora_weights({k: v.clone() for k, v in tensors.items()})
    _no_unhandled(unhandled_keys)
    with torch.no_grad():
        loaded = loaded_pipe.transformer(**inputs)[0]
    assert not torch.allclose(loaded, base, atol=1e-4)
    torch.testing.assert_close(loaded, trained, atol=2e-4, rtol=1e-3)
    if text:
        ids = torch.tensor([[49406, 320, 1929, 49407] + [49407] * 4])
        with torch.no_grad():
            torch.testing.assert_close(
                loaded_pipe.text_encoder(ids).pooler_output,
                pipe.text_encoder(ids).pooler_output,
                atol=1e-4,
                rtol=1e-3,
            )


@pytest.mark.parametrize("family", ["flux1", "sd35"])
def test_export_matches_the_original_layout_reference(family: str) -> None:
    """Every module, merged as sd-scripts merges into the fused original layer and split like the
    single-file converters, reproduces the PEFT-trained transformer: names, fusion order, the
    shared down projection, alpha and the pre-only modulation swap all hold."""
    torch.manual_seed(0)
    if family == "flux1":
        pipe, adapter_class, splits = build_tiny_flux_pipeline(), TinyFlux, FLUX_SPLITS
    else:
        pipe, adapter_class, splits = build_tiny_sd35_pipeline(), TinySD35, SD35_SPLITS
    base = copy.deepcopy(pipe.transformer)
    adapter = adapter_class(pipe)
    _randomised_lora(adapter, text=False)
    tensors = adapter.kohya_lora_tensors(torch.float32)
    apply_like_original(base, tensors, splits)
    generator = torch.Generator().manual_seed(1)
    if family == "flux1":
        inputs = _flux_inputs(pipe.transformer)
    else:
        config = pipe.transformer.config
        inputs = {
            "hidden_states": torch.randn(1, 16, 8, 8, generator=generator),
            "encoder_hidden_states": torch.randn(1, 10, config.joint_attention_dim, generator=generator),
            "pooled_projections": torch.randn(1, config.pooled_projection_dim, generator=generator),
            "timestep": torch.tensor([500.0]),
            "return_dict": False,
        }
    with torch.no_grad():
        torch.testing.assert_close(base(**inputs)[0], pipe.transformer(**inputs)[0], atol=2e-4, rtol=1e-3)


def test_the_parts_of_a_fused_layer_train_one_down_projection() -> None:
    """sd-scripts' LoRAModule on BFL's fused qkv / linear1 has one lora_down (lora_flux.py lines
    79-101): the diffusers parts share theirs, so the trainer optimises the same parameters and the
    export cannot hold parts that drifted apart."""
    adapter = TinyFlux(build_tiny_flux_pipeline())
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=adapter.denoiser_lora_target_modules())
    inject_adapter_in_model(config, adapter.denoiser)
    single = adapter.denoiser.single_transformer_blocks[0]
    parts: list[Any] = [single.attn.to_q, single.attn.to_k, single.attn.to_v, single.proj_mlp]
    assert len({id(part.lora_A["default"]) for part in parts}) == 4
    with pytest.raises(ValueError, match="do not share one down projection"):
        adapter.kohya_lora_tensors(torch.float32)

    adapter.share_denoiser_lora_parts()

    assert len({id(part.lora_A["default"]) for part in parts}) == 1
    trainable = [name for name, _ in adapter.denoiser.named_parameters() if "lora_A" in name]
    # sd-scripts' three modules of a single block: modulation_lin, linear1 (4 parts), linear2
    assert len([name for name in trainable if name.startswith("single_transformer_blocks.0.")]) == 3
    tensors = adapter.kohya_lora_tensors(torch.float32)
    assert tensors["lora_unet_single_blocks_0_linear1.lora_down.weight"].shape[0] == RANK


# --- noise, target and the sampling options
@pytest.mark.parametrize("family", ["flux1", "sd35"])
def test_rectified_flow_input_and_target(family: str) -> None:
    """x_t = (1 - s) x_0 + s * noise and target = noise - x_0, so x_t = x_0 + s * target."""
    pipe = build_tiny_flux_pipeline() if family == "flux1" else build_tiny_sd35_pipeline()
    adapter = TinyFlux(pipe) if family == "flux1" else TinySD35(pipe)
    latents = torch.randn(8, 16, 8, 8)
    batch = adapter.noisy_input(latents, 0.0)
    sigmas = batch.timesteps / 1000
    assert bool(((sigmas >= 0) & (sigmas <= 1)).all()) and len(set(sigmas.tolist())) > 1
    expected = latents + sigmas.view(-1, 1, 1, 1) * batch.target
    torch.testing.assert_close(batch.noisy, expected)
    assert adapter.loss_weights(batch, 5.0) is None


def test_flux_shift_follows_sd_scripts_linear_function() -> None:
    """flux_train_utils.get_lin_function(x1=256, y1=0.5, x2=4096, y2=1.15) of the packed length."""
    from training_container.engines.families.flux1 import flux_shift_mu

    assert flux_shift_mu(32, 32) == pytest.approx(0.5)  # 16 x 16 = 256 patches
    assert flux_shift_mu(128, 128) == pytest.approx(1.15)  # 1024 px: 4096 patches


def test_unsupported_sampling_options_are_refused() -> None:
    from training_container.errors import JobFailure

    with pytest.raises(JobFailure, match="timestep_sampling"):
        FluxTraining(timestep_sampling="sigma")  # type: ignore[arg-type]
    with pytest.raises(JobFailure, match="weighting_scheme"):
        SD35Training(weighting_scheme="cosmap")  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["flux1", "sd35"])
def test_sample_sides_round_down_to_16_as_sd_scripts_does(family: str) -> None:
    """FLUX.1 / SD 3.5 latents are patched 2x2 after the VAE's 8x: a 72 x 88 request renders at
    64 x 80 (flux_train_utils.py lines 180-181) instead of failing in diffusers' SD 3 pipeline."""
    adapter: FlowMatchingAdapter = (
        TinyFlux(build_tiny_flux_pipeline()) if family == "flux1" else TinySD35(build_tiny_sd35_pipeline())
    )
    with torch.no_grad():
        image = adapter.render_sample(
            "demo",
            None,
            steps=1,
            guidance_scale=1.0,
            width=72,
            height=88,
            generator=torch.Generator().manual_seed(0),
        )
    assert image.size == (64, 80)


def test_the_flux_t5_budget_is_sd_scripts_own_unless_set() -> None:
    """sd-scripts: 512 T5 tokens for dev, 256 for schnell, told apart by the guidance embedding
    (flux_train_network.py lines 171-177, flux_utils.py line 63); a job's value wins."""
    dev, schnell = (
        Flux1Adapter(build_tiny_flux_pipeline()),
        Flux1Adapter(build_tiny_flux_pipeline(schnell=True)),
    )
    assert (dev.t5_token_length, schnell.t5_token_length) == (512, 256)
    schnell.configure({"t5xxl_max_token_length": 300, "guidance_scale": 1.0})
    assert schnell.t5_token_length == 300
    dev.configure({"timestep_sampling": "shift"})
    assert dev.t5_token_length == 512


@pytest.mark.parametrize("family", ["flux1", "sd35"])
def test_samples_read_prompts_with_the_training_t5_budget(
    family: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sd-scripts renders samples through the tokenize strategy it trains with
    (flux_train_utils.py line 208, sd3_train_utils.py line 536): the same T5 length."""
    adapter: FlowMatchingAdapter = (
        TinyFlux(build_tiny_flux_pipeline()) if family == "flux1" else TinySD35(build_tiny_sd35_pipeline())
    )
    seen: dict[str, Any] = {}

    def fake_call(pipe: Any, **arguments: Any) -> SimpleNamespace:
        seen.update(arguments)
        return SimpleNamespace(images=[Image.new("RGB", (SIDE, SIDE))])

    monkeypatch.setattr(type(adapter.pipe), "__call__", fake_call)
    adapter.render_sample(
        "demo", None, steps=1, guidance_scale=1.0, width=SIDE, height=SIDE, generator=torch.Generator()
    )
    assert seen["max_sequence_length"] == T5_MAX_LENGTH == adapter.t5_token_length
