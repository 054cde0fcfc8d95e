"""A hand-checked sample of generated images for the toy judge.

The judge learns from renders but judges generations, which are never pixel-exact renders. So a
fixed sample of generated images is labelled by a person, and the judge is scored against those
labels. The sample lives in one folder:

- ``sheet.png``: the images, 32×32 tiles in rows of `PER_ROW` (lossless, in `labels.csv` order);
- ``labels.csv``: per image the model step, prompt, seed and guidance it was made with, and
  ``label``: what the person saw, concept names joined by ``+`` (``tower+ball``; a building that
  is not the tower is ``landmark``, a figure that is no robot ``character``, a style that is not
  the mosaic ``style``), ``none`` for an empty scene or ``unrecognisable``;
- ``contact.png``: the same images enlarged and numbered, for labelling.

A category word is present whenever a concept of its role is (a tower is a landmark), as in the
judge's training targets (`dvdlib.toy.judge_data.labels`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..report import percent
from .judge import MANIFEST, THRESHOLDS, ToyJudge
from .world import World

PER_ROW = 16
UNRECOGNISABLE, NONE = "unrecognisable", "none"
#: A concept counts as present when the judge answers Yes to question 3 of 5 (as in the gates).
PRESENT_AT = THRESHOLDS[2]


def make_sample(pipe, prompts, seeds, guidance: float, steps: int = 25, model_step: int | None = None):
    """Generate every prompt × seed with the book's initial latents (so an image equals the one the
    chapters store for the same prompt, seed and sampler); returns (images uint8 [N, 32, 32, 3],
    rows without labels)."""
    from ..generate import initial_latents

    jobs = [(p, int(s)) for p in prompts for s in seeds]
    out = pipe([p for p, _ in jobs], latents=initial_latents(pipe, [s for _, s in jobs], 32),
               num_inference_steps=steps, guidance_scale=guidance, eta=0.0, output_type="np").images
    rows = pd.DataFrame({"model_step": model_step, "prompt": [p for p, _ in jobs], "seed": [s for _, s in jobs],
                         "guidance": guidance, "steps": steps, "label": ""})
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8), rows


def save_sample(folder, images: np.ndarray, rows: pd.DataFrame) -> None:
    """Write ``sheet.png``, ``labels.csv`` (labels as given, empty for a new sample) and ``contact.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n_rows = -(-len(images) // PER_ROW)
    sheet = np.zeros((n_rows * 32, PER_ROW * 32, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, PER_ROW)
        sheet[r * 32:(r + 1) * 32, c * 32:(c + 1) * 32] = image
    Image.fromarray(sheet).save(folder / "sheet.png")
    rows.to_csv(folder / "labels.csv", index=False)
    contact_sheet(images).save(folder / "contact.png")


def save_blind_sample(folder, pipe, prompts, seeds, guidance: float, model_step: int | None = None,
                      shuffle: int = 0) -> str:
    """`make_sample`, shuffled by seed ``shuffle`` so that a person labels it blind to the prompt
    order, saved to ``folder`` (`save_sample`); returns what to do next."""
    images, rows = make_sample(pipe, prompts, seeds, guidance, model_step=model_step)
    order = np.random.default_rng(shuffle).permutation(len(rows))
    save_sample(folder, images[order], rows.iloc[order].reset_index(drop=True))
    return (f"wrote {len(rows)} images to {folder}: label them from contact.png in labels.csv (column label), "
            "without looking at the prompts first")


def save_blind_twins(folder, profile: str = "toy", K: int = 12, n: int = 96, shuffle: int = 0, concepts=None) -> str:
    """A blind sample of the twin chapter's stored generations (paper §3.3's twins, chapter 12):
    ``n`` images drawn with seed ``shuffle`` from K pairs × every arm × the profile's twin prompts
    (only those pairing the new token with one of ``concepts``, if given) and the snapshot's seeds, saved as
    `save_sample` does, with a ``twin`` column ("pair 3 rigid"). The new
    figure "dvddog" is labelled ``character`` (a figure that is no robot). The twins must be in the
    store (`dvd toy findings` makes them); nothing is trained or generated here."""
    from .. import causal, twins
    from ..chapters import TWINS
    from ..run import setup

    run = setup(profile, "12_twin_finetunes", store_mode="frozen")
    S = twins.scale(run.profile, n_seeds=TWINS.snapshot_parameters["n_seeds"])
    recipe = causal.recipe_for(S)
    models = twins.finetune_arms(run, twins.design(run, K=K, recipe=recipe), recipe)
    table = twins.test_prompts(run, S["prompts"], S["exclude"])
    prompts = list(table[table.nm_word.isin(concepts)].prompt if concepts else table.prompt)
    jobs = [(key, p, int(s)) for key in models for p in prompts for s in S["seeds"]]
    picked = [jobs[i] for i in np.random.default_rng(shuffle).choice(len(jobs), min(n, len(jobs)), replace=False)]
    images = np.stack([np.asarray(run.store(models[key]).image(p, s).convert("RGB")) for key, p, s in picked])
    settings = run.store().settings
    rows = pd.DataFrame({"model_step": None, "prompt": [p for _, p, _ in picked], "seed": [s for _, _, s in picked],
                         "guidance": settings["guidance"], "steps": settings["steps"], "label": "",
                         "twin": [f"pair {pair} {arm}" for (pair, arm), _, _ in picked]})
    save_sample(folder, images, rows)
    return (f"wrote {len(rows)} twin images to {folder}: label them from contact.png in labels.csv (column label; "
            "the figure dvddog is 'character'), without looking at the prompts first")


def contact_sheet(images: np.ndarray, scale: int = 5) -> Image.Image:
    """The images enlarged (nearest neighbour) with their index above each, for labelling."""
    side, pad = 32 * scale, 14
    n_rows = -(-len(images) // PER_ROW)
    sheet = Image.new("RGB", (PER_ROW * (side + 4), n_rows * (side + pad + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        r, c = divmod(i, PER_ROW)
        x, y = c * (side + 4), r * (side + pad + 4)
        draw.text((x + 2, y), str(i), fill="black")
        sheet.paste(Image.fromarray(image).resize((side, side), Image.NEAREST), (x, y + pad))
    return sheet


def load_sample(folder) -> tuple[np.ndarray, pd.DataFrame]:
    """(images uint8 [N, 32, 32, 3], labels table) of a hand-check folder."""
    folder = Path(folder)
    rows = pd.read_csv(folder / "labels.csv", keep_default_na=False)
    sheet = np.asarray(Image.open(folder / "sheet.png").convert("RGB"))
    images = np.stack([sheet[(i // PER_ROW) * 32:(i // PER_ROW + 1) * 32, (i % PER_ROW) * 32:(i % PER_ROW + 1) * 32]
                       for i in range(len(rows))])
    return images, rows


def truth(world: World, label: str) -> np.ndarray | None:
    """Presence over `World.names` of a hand label (None for ``unrecognisable``): the concepts
    named, and each category word whose role one of them has."""
    label = label.strip().lower()
    if label == UNRECOGNISABLE:
        return None
    if not label:
        raise ValueError("an image of the hand-check sample has no label: label every row of labels.csv "
                         f"(concepts joined by '+', {NONE!r} or {UNRECOGNISABLE!r})")
    names = [] if label == NONE else [w.strip() for w in label.split("+")]
    roles = {world.concept(n).role for n in names}  # KeyError names the unknown concept
    return np.array([c.name in names or (c.variants is None and c.role != "object" and c.role in roles)
                     for c in world.concepts])


def agreement(judge: ToyJudge, folder) -> dict:
    """Score the judge against the hand labels: the share of images where it sees exactly the hand
    set of concepts (an unrecognisable image must be called unrecognisable), its per-concept
    recall and precision, and how often it calls an image unrecognisable against the hand label."""
    images, rows = load_sample(folder)
    presence, garbage = judge.probabilities(list(images))
    called_bad = judge.unrecognisable(presence, garbage)
    seen = presence >= PRESENT_AT
    hand = [truth(judge.world, label) for label in rows["label"]]
    hand_bad = np.array([h is None for h in hand])
    exact = [bool(b) if h is None else (not b and bool((s == h).all())) for h, s, b in zip(hand, seen, called_bad)]
    good = ~hand_bad & ~called_bad  # per-concept rates: images neither calls unrecognisable
    hand_seen = np.array([np.zeros(len(judge.world.names), bool) if h is None else h for h in hand])
    per_concept = {}
    for j, name in enumerate(judge.world.names):
        t, s = hand_seen[good, j], seen[good, j]
        per_concept[name] = {"present": int(t.sum()), "recall": float(s[t].mean()) if t.any() else None,
                             "said_present": int(s.sum()), "precision": float(t[s].mean()) if s.any() else None}
    return {"images": len(rows), "exact": float(np.mean(exact)), "exact_n": int(np.sum(exact)),
            "hand_unrecognisable": int(hand_bad.sum()), "judge_unrecognisable": int(called_bad.sum()),
            "both_unrecognisable": int((hand_bad & called_bad).sum()), "per_concept": per_concept,
            "disagreements": [{"index": i, "prompt": rows["prompt"][i], "hand": rows["label"][i],
                               "judge": UNRECOGNISABLE if called_bad[i] else
                               "+".join(n for n, s in zip(judge.world.names, seen[i]) if s) or NONE}
                              for i in range(len(rows)) if not exact[i]]}


def describe(folder) -> str:
    """One line on what a sample is: its images, model step(s) and guidance scale(s)."""
    rows = pd.read_csv(Path(folder) / "labels.csv", keep_default_na=False)
    join = lambda col: ", ".join(str(v) for v in sorted(set(rows[col])))  # noqa: E731
    if "twin" in rows:  # `save_blind_twins`
        return f"{len(rows)} images of {rows.twin.nunique()} twin fine-tunes (chapter 12), guidance {join('guidance')}"
    return f"{len(rows)} images of the step-{join('model_step')} model, guidance {join('guidance')}"


def stored_results(judge_folder) -> dict:
    """Sample → `agreement`'s results, as the judge's ``manifest.json`` keeps them (written when it
    was trained or rescored with ``--report-only``)."""
    import json

    return json.loads((Path(judge_folder) / MANIFEST).read_text()).get("handcheck", {})


def pooled_recall(judge_folder, prefix: str = "twins") -> dict:
    """Per concept, over the hand-checked samples whose name starts with ``prefix`` (stored in the
    judge's ``manifest.json``): the images a person saw it in and the judge's recall on them
    (None where nobody saw it)."""
    seen, hits = {}, {}
    for sample, r in stored_results(judge_folder).items():
        if sample.startswith(prefix):
            for concept, v in r["per_concept"].items():
                seen[concept] = seen.get(concept, 0) + v["present"]
                hits[concept] = hits.get(concept, 0) + round((v["recall"] or 0) * v["present"])
    return {c: {"present": seen[c], "recall": hits[c] / seen[c] if seen[c] else None} for c in seen}


def results_table(judge_folder) -> pd.DataFrame:
    """The hand-check results stored in a judge's ``manifest.json`` (written when it was trained or
    rescored with ``--report-only``), one column per sample, narrow enough for a page: what the
    sample is, the exact-match count, then per concept the judge's recall and the images a person
    saw it in ("86% of 14"; "–" where nobody did). Precision is in the judge's REPORT.md."""
    columns = {}
    for sample, r in stored_results(judge_folder).items():
        rows = {"sample": r.get("about", ""), "exact match": f"{r['exact_n']}/{r['images']} ({percent(r['exact'])})"}
        rows.update({n: f"{percent(v['recall'])} of {v['present']}" if v["present"] else "–"
                     for n, v in r["per_concept"].items()})
        columns[sample] = rows
    return pd.DataFrame(columns)
