"""What world 1 (profile ``toy``) can and cannot test, concept by concept: the one section the
landing page and every toy chapter's card link to (written at build time, `dvdlib.pages`).

Its facts come from their files: each concept's kind and variants from the world
(`dvdlib.toy.world`), the judge's recall against hand labels from the judge's ``manifest.json``
(the hand-checked samples of the world-1 model, `dvdlib.toy.handcheck`), each rigid concept's
dominance from the toy snapshot chapter 09 reads (chapter 02's benchmark − balanced DvD per
concept). A concept the judge finds in fewer than `MIN_RECALL` of the images a person sees it in
is left out of the profile's prompt sets (``exclude_concepts``): its DvD Score would measure the
judge, not the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..stats import MIN_CLUSTERS
from ..twins import MIN_RECALL
from .handcheck import pooled_recall
from .world import World

#: the hand-checked samples of the world-1 model itself (not of fine-tunes of it)
SAMPLES = ("dev", "test")

#: what the toy model is built unlike Stable Diffusion, so that chapters read its attention with care
MECHANICS = ("its text encoder has no prompt-independent start token, its middle cross-attention "
             "layers work on 2×2 and 4×4 grids, and it samples from pure noise with a zero-terminal-SNR "
             "schedule (`toy/README.md`)")


def recall(judge_folder) -> dict:
    """Per concept, the judge's recall over `SAMPLES` and the images a person saw it in."""
    pooled = [pooled_recall(judge_folder, prefix=name) for name in SAMPLES]
    seen = {c: sum(p.get(c, {}).get("present", 0) for p in pooled) for c in pooled[0]}
    hits = {c: sum(round((p[c]["recall"] or 0) * p[c]["present"]) for p in pooled if c in p) for c in pooled[0]}
    return {c: {"present": seen[c], "recall": hits[c] / seen[c] if seen[c] else None} for c in seen}


def unseen(judge_folder, minimum: float = MIN_RECALL) -> list[str]:
    """The concepts a person saw that the judge finds in fewer than ``minimum`` of those images."""
    return sorted(c for c, r in recall(judge_folder).items() if r["present"] and r["recall"] < minimum)


def dominance(findings) -> dict:
    """Rigid concept → its mean DvD on the benchmark minus the balanced control's (chapter 02's
    ``dvd_gap`` per concept, as the snapshot in ``findings`` recorded it); {} without one."""
    path = Path(findings) / "results" / "02_dvd_benchmark.json"
    if not path.is_file():
        return {}
    rows = {r["key"]: r for r in json.loads(path.read_text())["results"]}
    return rows.get("dvd_gap", {}).get("per_cluster", {})


def concept_table(judge_folder, findings, excluded=(), world: World | None = None) -> pd.DataFrame:
    """One row per concept of the world's prompts: kind, variants in training, the judge's recall
    against hand labels, whether it enters the DvD-based claims, and (rigid concepts) its dominance."""
    world, seen, gap = world or World(), recall(judge_folder), dominance(findings)
    rows = []
    for c in world.concepts:
        if c.role != "object" and not c.rigid:
            continue  # a category word: only ever the replacement (chapter 08)
        r = seen.get(c.name, {"present": 0, "recall": None})
        checked = f"{r['recall']:.0%} of {r['present']}" if r["present"] else "not hand-checked"
        used = f"left out (recall below {MIN_RECALL:.0%})" if c.name in excluded else "yes"
        lead = ("—" if c.role == "object" else "not measured") if c.name not in gap or c.name in excluded else f"{gap[c.name]:+.1f}"
        rows.append({"concept": c.name, "kind": c.role if c.rigid else "flexible object",
                     "variants": c.variants if c.variants else "a fresh one per image",
                     "judge recall (hand labels)": checked, "in DvD claims": used,
                     "benchmark − balanced DvD": lead})
    return pd.DataFrame(rows).set_index("concept")


def section(judge_folder, findings, excluded=(), world: World | None = None) -> str:
    """The section's Markdown: what world 1 can test, what it cannot, and the concept table."""
    world = world or World()
    table = concept_table(judge_folder, findings, excluded, world)
    rigid = [c.name for c in world.concepts if c.rigid and c.name not in excluded]
    gap = {c: v for c, v in dominance(findings).items() if c in rigid}
    leader = max(gap, key=gap.get) if gap else None
    others = "; ".join(f"{c} {v:+.1f}" for c, v in gap.items() if c != leader)
    dominant = (f"In the snapshot chapter 09 reads, **{leader}** carries the dominance: its prompts' mean DvD is "
                f"{gap[leader]:+.1f} above the balanced control's ({others}). " if leader and others else "")
    left = "".join(f"**{c}** is left out of every prompt set: the judge finds it in "
                   f"{table.loc[c, 'judge recall (hand labels)'].replace(' of ', ' of the ')} images a person saw it "
                   f"in, so its DvD Score would be near 0 by construction. " for c in excluded if c in table.index)
    few = (f"fewer than the {MIN_CLUSTERS} a side needs for any verdict, so those claims read *underpowered*"
           if len(rigid) < MIN_CLUSTERS else "so few that leaving one out often undoes a verdict")
    return (
        "**What it can test.** Whether a concept drawn the same way in every training image dominates a "
        "flexible one it is paired with, in a model whose training data this project wrote, so that a "
        "concept's diversity is known rather than estimated; and, with chapter 12's twin fine-tunes, "
        "whether making one new concept rigid makes it dominant, the pair of fine-tunes as the unit.\n\n"
        f"**What it cannot test.** A claim whose unit is the concept has {len(rigid)} rigid concepts to stand "
        f"on ({', '.join(rigid)}): {few}, whatever their estimate. " + dominant + left
        + f"The attention claims are not posed as in Stable Diffusion: {MECHANICS}. Thresholds on Stable "
        "Diffusion's scale (the detector's, the inclusion rule's) are not comparable.\n\n"
        + table.to_markdown() + "\n\n"
        f"Recall is over the hand-checked samples of the world-1 model ({', '.join(SAMPLES)}; chapter 09 "
        "shows each). Variants are the fixed appearances a concept has in training.\n")
