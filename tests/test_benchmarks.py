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
                            "joint_recording.json"}
    for result in written.values():
        assert result["rows"] and result["command"].startswith("python benchmarks/")
    costs = written["gpu.json"]["costs"]
    smoke = costs["generation"]["smoke"]
    assert smoke["steps"] == 2 and smoke["resolution"] == 64
    assert smoke["seconds_per_image"] == min(smoke["seconds_per_image_by_batch"].values()) > 0
    assert smoke["seconds_per_unet_evaluation"] * 2 * 2 == __import__("pytest").approx(smoke["seconds_per_image"], rel=1e-3)
    assert costs["judge"]["model"] == "tiny" and costs["judge"]["seconds_per_question"] > 0
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
