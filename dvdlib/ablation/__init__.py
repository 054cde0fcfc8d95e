"""Head ablation (paper §3.6), one job per module: what an ablation does (`interventions`), running
and judging it (`sweep`), what it did (`rates`), its positive control (`control`) and its claim
against the placebo layers (`placebo`). The chapter reads them all through this package.

An `Intervention` scales some heads' pre-softmax logits by a factor at some steps (default:
factor 0 — a uniform head — at the first step only, `dvdlib.attention.intervene`). A *plan* is a
list of `Job`\\ s, each one intervention applied to some prompt-set rows:

- `single_head`: one head at a time, every head of the chosen layers (the paper: layers 1–16);
- `multi_head`: several heads at once. the paper is terse; this book's reading (``reading="layer"``)
  ablates **all heads of one layer together**, one intervention per layer;
- `pair_jobs`: pairs of the heads of one layer (default layer 1) that did *not* mitigate a
  prompt on their own, for that prompt.

A claim about ablated heads comes with a **positive control** of the same kind (`Suppression`,
`control_jobs`, `power_check`): each collapsed row's dominant concept's tokens suppressed in every
cross-attention layer at the claim's steps, judged by the same judge and DvD rule on the same rows
and seeds. It must bring the dominated concept back in a measurable share of the collapsed rows;
otherwise no ablation of fewer heads could be seen to mitigate anything, and the claim is
inconclusive (`dvdlib.stats.verdict`).

`Sweep` runs a plan: each intervention's images live in their own run store, keyed by the
sampler settings *plus* the intervention (``settings["intervention"]``), so an intervened image
never collides with a plain one and each (prompt, seed, intervention) image is generated once;
a rerun generates only what is missing. `Sweep.cost` counts the generations before anything
runs. `Sweep.judge_dvd` / `Sweep.judge_memorized` turn the images into one outcome per (row,
intervention) with `dvdlib.outcome`; `per_prompt`, `layer_rates` and `shares` aggregate them.

Outcomes are judged against the plain (unablated) generation (``require_baseline=True``, the
default): a DominanceBench row whose plain images are not collapsed in this run is *not
collapsed*, a memorized prompt whose plain images do not reproduce is *not memorized*; both are
kept out of the rates (there is nothing to mitigate). With ``require_baseline=False`` every row
counts, as the paper's denominators (300, 500) suggest it did — where a row was never collapsed
or memorized, an ablation then "mitigates" what was never there.
"""

from __future__ import annotations

from .interventions import (
    NOT_COLLAPSED, EXCLUDED, MULTI_HEAD_READINGS, Intervention, Suppression, from_key, Job, single_head,
    multi_head, jobs, pair_jobs, narrowed
)
from .sweep import (
    Sweep, FULL, scale, SweepPlan, sweep_plan, on_model, memorized_set, sweeps_for, memorized_seeds,
    plans_for, cost_table, run_plans, judge_plan
)
from .rates import (
    NOTHING, best, per_prompt, shares, mitigated_count, layer_rates, peak_layer, peak_layers, fraction_text, shares_text,
    baseline_counts, rates_by_set, rates_table, paper_peaks, pairs_note, outcome_table, paper_mitigated,
    shown_pairs, plain_vs_ablated_rows, effect_layers_text, judged_rows, outcome_shown, counted
)
from .control import (
    CONTROL_MIN_LOWER, control_jobs, control_what, control_passes, images_changed, suppressible_controls,
    run_controls, power_check, control_text, claims_with_control
)
from .placebo import EFFECT_LAYERS, placebo_hits, versus_placebo
from .reading import scope, this_run


__all__ = ["CONTROL_MIN_LOWER", "EFFECT_LAYERS", "EXCLUDED", "FULL", "Intervention", "Job", "NOTHING",
           "MULTI_HEAD_READINGS", "NOT_COLLAPSED", "Suppression", "Sweep", "SweepPlan", "baseline_counts",
           "best", "claims_with_control", "control_jobs", "counted", "control_passes", "control_text", "control_what",
           "cost_table", "effect_layers_text", "fraction_text", "from_key", "images_changed", "jobs",
           "judge_plan", "judged_rows", "layer_rates", "memorized_seeds", "memorized_set", "mitigated_count", "multi_head",
           "narrowed", "on_model", "outcome_shown", "outcome_table", "scope", "this_run", "pair_jobs", "pairs_note", "paper_mitigated",
           "paper_peaks", "peak_layer", "placebo_hits", "peak_layers", "per_prompt", "plain_vs_ablated_rows", "plans_for", "power_check",
           "rates_by_set", "rates_table", "run_controls", "run_plans", "scale", "shares", "shares_text",
           "shown_pairs", "single_head", "suppressible_controls", "sweep_plan", "sweeps_for", "versus_placebo"]
