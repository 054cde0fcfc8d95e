"""What chapter 06 says about its run (paper §3.6), written from the run's own numbers: which halves
of the paper's contrast apply (`scope`), and the closing paragraph (`this_run`). No sentence holds a
skip message, "none" or "nan" as if it were a value: what a world lacks is said once, as such."""

from __future__ import annotations


def scope(memorized_why: str | None) -> str:
    """The sentence under the chapter's opening: both halves run, or the memorization half does not
    apply in this world (``memorized_why``: the reason, from `dvdlib.ablation.memorized_set`)."""
    if memorized_why is None:
        return "This run ablates both halves of the paper's contrast: the DominanceBench prompts and the memorized prompts."
    return (f"**Not applicable in this world:** the memorization half of the paper's contrast ({memorized_why}). "
            "This run ablates the DominanceBench half only, so it cannot set DvD beside memorization; it can only "
            "ask whether single heads mitigate collapse here, against the placebo and the positive control.")


def this_run(values: dict, peaks: dict, pair_layer: int, profile: str, counted: dict) -> str:
    """The closing paragraph from ``values`` (results key → this run's text: ``single_dvd``,
    ``single_mem``, ``multi_dvd``, ``multi_mem``, ``pairs_dvd``, ``power_check``, ``swept``), the
    peak layers ``peaks`` ("DvD" / "memorized" → layer or None) and ``counted`` (`counted`: rows
    with something to mitigate per set, "memorized" only where that half ran, and the (row, pair)
    combinations ablated as "pairs"), which says what ran and what had anything to mitigate."""
    if counted.get("DvD", 0):
        pairs = (f"give {values['pairs_dvd']}" if counted.get("pairs", 0)
                 else "have nothing to measure (no pair was ablated)")
        said = [f"In this run single-head ablation mitigates {values['single_dvd']} of the DominanceBench prompts "
                "counted (paper: 145/300, 48%).",
                "No single head mitigated a collapsed DominanceBench prompt, so no layer peaks (paper: layer 3)."
                if peaks.get("DvD") is None else f"Single-head mitigation of DvD peaks at layer {peaks['DvD']} (paper: 3).",
                f"Ablating all heads of a layer together gives {values['multi_dvd']} (paper: ≈ 0.6 mitigated, ≈ 0.2 "
                f"unchanged), and pairs of layer-{pair_layer} heads that fail alone {pairs} "
                "(paper: 0.55% mitigated, 18.68% corrupted)."]
    else:
        said = ["In this run no DominanceBench prompt was collapsed before ablation, so no head, layer or pair of heads "
                "had anything to mitigate (paper: one head mitigates 145/300, 48%; a whole layer ≈ 0.6)."]
    if "memorized" in counted and not counted["memorized"]:
        said.append("No memorized prompt reproduced its image before ablation, so the memorization half had nothing "
                    "to mitigate either (paper: one head mitigates 392/500, 78%).")
    elif "memorized" in counted:
        peak = peaks.get("memorized")
        said.append(f"One head mitigates {values['single_mem']} of the memorized prompts (paper: 392/500, 78%)"
                    + (f", peaking at layer {peak} (paper: 6)" if peak is not None else "")
                    + f"; a whole layer gives {values['multi_mem']} (paper: ≈ 0.8 mitigated).")
        said.append("If DvD were a single-head mechanism like memorization, the two single-head rates would be close; "
                    "the paper finds them far apart and reads DvD as distributed across heads.")
    said.append(_control_sentence(values["power_check"]))
    said.append(PROFILE_READING.get(profile, PROFILE_READING["other"]).format(swept=values["swept"]))
    return " ".join(said)


def _control_sentence(power_check: str) -> str:
    """The positive control's verdict and count ("failed: 0/12 rows mitigated (…)") as a sentence."""
    verdict, _, rest = power_check.partition(": ")
    verb = {"passed": "passed", "failed": "failed"}.get(verdict, f"is {verdict}")
    return (f"The positive control (the dominant concept's tokens suppressed in every layer) {verb}"
            + (f": {rest}." if rest else "."))


#: How to read the numbers under each kind of profile.
PROFILE_READING = {
    "smoke": "Under `smoke` the model and the judge have random weights and the sweep is a slice ({swept}): these "
             "numbers only show that ablation, storage, judging and aggregation run end to end.",
    "toy": "Under `toy` these are measurements of the toy model ({swept}), read against the placebo and the positive "
           "control; chapter 09 gives their verdicts.",
    "paper": "Under `paper` (SD 1.4, Qwen2-VL; {swept}) the numbers stand beside the paper's.",
    "other": "This run swept {swept}; read its numbers with the card at the top.",
}
