"""How far the measured rate is from the GPU's limit: the UNet's FLOPs per evaluation, counted, and
the share of the device's peak that a measured seconds-per-image reaches.

    python benchmarks/unet_flops.py                 # SD 1.4 at 512², SD 2.1 at 768²: FLOPs per evaluation

The count is torch's (`torch.utils.flop_counter.FlopCounterMode`) of one UNet evaluation of one
latent (a text-conditioned call at the first step) on the real architecture, built from the configs
`random:sd1.4` / `random:sd2.1` use (`dvdlib.models.unet_config`) on the meta device: no weights, no
arithmetic, the same operators (convolutions, linear layers, attention's matrix products) and so
the same count a GPU run does, in about a second on a CPU. It counts matrix products and
convolutions (2 FLOPs a multiply-add), not the element-wise work (norms, activations, softmax),
which tensor cores do not run: the share of peak below is of the tensor-core work.

A generation with classifier-free guidance evaluates the UNet twice per step per image (paper §2's
sampler), so an image of ``steps`` steps is ``2 × steps × flops_per_evaluation``; its measured
seconds (which also hold the text encoder, the scheduler and, for the throughput rows, the VAE
decode) give the rate reached, and `PEAK_FLOPS` the device's dense fp16/bf16 tensor-core peak.
"""

from __future__ import annotations

import argparse
import json

#: Dense fp16 / bf16 tensor-core peak FLOP/s by device name (as `torch.cuda.get_device_name` gives
#: it; the first key the name contains wins, so the longer names come first). NVIDIA's datasheets
#: list these "with sparsity" (2:4 structured); dense is half: H100 SXM 1,979 → 989.5 TFLOP/s, H100
#: NVL 1,671 → 835.5, H100 PCIe 1,513 → 756.5 (NVIDIA H100 Tensor Core GPU datasheet,
#: nvidia.com/en-us/data-center/h100); H200 SXM 1,979 → 989.5, H200 NVL 1,671 → 835.5 (NVIDIA H200
#: Tensor Core GPU datasheet, nvidia.com/en-us/data-center/h200).
PEAK_FLOPS = {
    "H200 NVL": 835.5e12,
    "H200": 989.5e12,
    "H100 NVL": 835.5e12,
    "H100 PCIe": 756.5e12,
    "H100": 989.5e12,  # "NVIDIA H100 80GB HBM3": the SXM5 board
}
PEAK_SOURCE = ("dense fp16/bf16 tensor-core peak, half the 'with sparsity' figure of NVIDIA's H100 and H200 "
               "datasheets")

#: The architectures the GPU benchmark measures, by the name it loads them under.
ARCHITECTURES = {"random:sd1.4": "sd1.4", "random:sd2.1": "sd2.1"}


def peak_flops(device: str) -> float | None:
    """The dense fp16/bf16 peak of ``device`` (a CUDA device's name), or None when not listed."""
    return next((peak for name, peak in PEAK_FLOPS.items() if name in device), None)


def unet_config_of(model: str) -> dict:
    """The UNet config of ``model``: a measured architecture's shipped config, else the loaded
    model's (the small ones: ``smoke``)."""
    if model in ARCHITECTURES:
        from dvdlib.models import unet_config

        return unet_config(ARCHITECTURES[model])
    import dvdlib

    return dict(dvdlib.load(model).unet.config)


def unet_flops(model: str, resolution: int, tokens: int = 77) -> int:
    """FLOPs of one UNet evaluation of one ``resolution``² latent conditioned on ``tokens`` text
    tokens, counted by torch's FLOP counter on the meta device (the module docstring says what it counts)."""
    import torch
    from diffusers import UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    config = unet_config_of(model)
    side = resolution // 8  # the VAE's downsampling
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
        latent = torch.zeros(1, config["in_channels"], side, side)
        text = torch.zeros(1, tokens, config["cross_attention_dim"])
        step = torch.tensor([999])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(latent, step, encoder_hidden_states=text)
    return int(counter.get_total_flops())


def utilisation(flops_per_evaluation: float, evaluations: float, seconds: float, device: str) -> dict:
    """The rate ``evaluations`` UNet evaluations in ``seconds`` reach (TFLOP/s) and its share of
    ``device``'s peak (None where the device is not in `PEAK_FLOPS`)."""
    rate = flops_per_evaluation * evaluations / seconds
    peak = peak_flops(device)
    return {"UNet TFLOP/s": round(rate / 1e12, 1), "share of peak": None if peak is None else round(rate / peak, 3)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=["random:sd1.4:512", "random:sd2.1:768"],
                        help="NAME:RESOLUTION, one or more")
    args = parser.parse_args(argv)
    out = {}
    for spec in args.model:
        name, _, resolution = spec.rpartition(":")
        out[spec] = unet_flops(name, int(resolution))
        print(f"{spec}: {out[spec] / 1e12:.3f} TFLOP per UNet evaluation")
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
