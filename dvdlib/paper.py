"""The numbers the paper reports (SPEC §2–§3), for printing beside each run's own.

Jeong & Lee, "Dominating vs. Dominated: Generative Collapse in Diffusion Models",
arXiv:2512.20666 (2025). All numbers are for SD 1.4 unless the key says otherwise.
"""

CITATION = ('Jeong & Lee, "Dominating vs. Dominated: Generative Collapse in Diffusion Models", '
            "arXiv:2512.20666 (2025)")

#: §3.4 Focus Score at the first denoising step.
FOCUS = {
    "significant_layers": "5–10",  # DominanceBench > balanced, with significance
    "strongest_layers": "8–10",
    "peak_on_dominant": (249, 300),  # peak token ∈ dominant concept, lower-resolution layers
    "typical_focus_score": "≈ 0.01",  # consistent with the detection threshold 0.010 (§3.8)
}

#: §3.2 Benchmark construction and the DvD Score (SPEC §2, §3.2).
BENCHMARK = {
    "balanced_median": 11.6,  # balanced control, one validation
    "balanced_mean": 20.64,  # balanced control, the set used for the attention analysis
    "sd21_vs_sd14": "SD 2.1 lower than SD 1.4 overall; many prompts still above τ",
    "inclusion": "≥ 7 of 10 SD 1.4 images with DvD ≥ τ = 48 (all 300 DominanceBench prompts by construction)",
}
