"""The GPU measurement script, CPU-sized: every section runs and writes what the benchmarks page
and `dvd plan` read; the released judge's architecture is the one shipped."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from dvdlib.vqa import build_random_qwen2_vl

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_cpu_sized(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--size", "cpu", "--out-dir", str(tmp_path)],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(written) == {"gpu.json", "throughput.json", "recording_overhead.json", "judge_batching.json",
                            "joint_recording.json", "levers.json"}
    levers = {row["setting"]: row for row in written["levers.json"]["rows"]}
    assert set(levers) == {"eager, plain", "eager, step-1 recording", "eager, all-step recording",
                           "channels-last, plain", "eager, plain, batch 4"}  # no compiling at the CPU size
    assert levers["eager, plain"]["ratio to eager plain"] == 1.0 and levers["eager, step-1 recording"]["target"] == "≤ 1.05×"
    for result in written.values():
        assert result["rows"] and result["command"].startswith("python benchmarks/")
    costs = written["gpu.json"]["costs"]
    smoke = costs["generation"]["smoke"]
    assert smoke["steps"] == 2 and smoke["resolution"] == 64
    assert smoke["seconds_per_image"] == min(smoke["seconds_per_image_by_batch"].values()) > 0
    assert smoke["seconds_per_unet_evaluation"] * 2 * 2 == __import__("pytest").approx(smoke["seconds_per_image"], rel=1e-3)
    assert costs["judge"]["model"] == "tiny" and costs["judge"]["seconds_per_question"] > 0
    assert set(costs["judge"]["seconds_per_question_by_batch"]) == {"1", "10", "20"}  # what dvd plan reads per call size
    assert smoke["unet_flops_per_evaluation"] > 0
    rows = written["gpu.json"]["rows"]
    assert [r["setting"].split(": ")[-1] for r in rows if r["unit"] == "image (latent)"] == [
        "plain", "step-1 recording (16 layers, token shares)", "all-step recording (16 layers, token shares)"]
    assert all(r["UNet TFLOP/s"] >= 0 and r["share of peak"] is None for r in rows if r["unit"] != "question")  # CPU
    assert written["judge_batching.json"]["answers_agree"] == 1.0  # float32: batching changes no answer
    joint = written["joint_recording.json"]
    assert [row["setting"] for row in joint["rows"]] == ["tiny:sd3: plain step", "tiny:sd3: recording block 2 of 4 at step 1"]
    assert joint["rows"][1]["ratio"] > 0 and joint["rows"][1]["target"] == "≤ 1.1×"
    assert "--memory" not in joint["command"]  # the CPU size leaves the CUDA memory measurement out


def test_joint_recording_refuses_memory_without_cuda(capsys):
    import pytest

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import joint_recording

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: --memory runs")
    with pytest.raises(SystemExit):
        joint_recording.main(["--memory", "--models", "tiny:sd3"])
    assert "run it on a GPU" in capsys.readouterr().err


def test_random_judge_has_the_released_architecture():
    """Qwen2-VL-2B-Instruct: 2,208,985,600 parameters (tied embeddings), 28 text layers, 32 vision blocks."""
    tokenizer, processor, model = build_random_qwen2_vl(device="meta")
    assert sum(p.numel() for p in model.parameters()) == 2_208_985_600
    assert model.config.text_config.num_hidden_layers == 28 and model.config.vision_config.depth == 32
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_unet_flops_without_weights_equal_a_real_evaluation():
    """The UNet's FLOPs are counted on the meta device (no weights); a real evaluation of the same UNet
    counts the same when its attention runs as matrix products. The CPU's fused attention kernel is
    not counted by torch's counter (a GPU's flash and memory-efficient kernels are): the meta count
    holds the attention a GPU run does."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    import dvdlib

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import unet_flops

    unet = dvdlib.load("smoke").unet
    c = unet.config
    inputs = (torch.randn(1, c.in_channels, 8, 8), torch.tensor([999]))
    text = torch.randn(1, 77, c.cross_attention_dim)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counted, torch.no_grad():
        unet(*inputs, encoder_hidden_states=text)
    with FlopCounterMode(display=False) as fused, torch.no_grad():
        unet(*inputs, encoder_hidden_states=text)
    meta = unet_flops.unet_flops("smoke", 64)
    assert meta == counted.get_total_flops() > fused.get_total_flops()
    assert unet_flops.unet_flops("random:sd1.4", 512) > 10_000 * meta  # the full-size architecture, counted unbuilt


def test_peak_flops_by_device_name():
    import pytest

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import unet_flops

    assert unet_flops.peak_flops("NVIDIA H100 80GB HBM3") == 989.5e12  # SXM5
    assert unet_flops.peak_flops("NVIDIA H100 PCIe") == 756.5e12
    assert unet_flops.peak_flops("NVIDIA H200") == 989.5e12 and unet_flops.peak_flops("NVIDIA H200 NVL") == 835.5e12
    assert unet_flops.peak_flops("CPU (x86_64, 1 threads)") is None
    one = unet_flops.utilisation(1e12, 100, 1.0, "NVIDIA H200")  # 100 TFLOP in 1 s
    assert one == {"UNet TFLOP/s": 100.0, "share of peak": pytest.approx(0.101, abs=1e-3)}
