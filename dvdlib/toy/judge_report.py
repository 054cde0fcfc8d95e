"""The toy judge's report (``REPORT.md``): held-out accuracy on renders, garbage, faded sprites,
and its agreement with people on hand-checked generations (`dvdlib.toy.handcheck`).
"""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path


from ..report import percent
from .judge import GUARD, MANIFEST, JudgeConfig, ToyJudge, load_toy_judge, save_judge
from .judge_training import evaluate, train_judge


def _table(rows: list[list], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(x) for x in r) + " |" for r in rows])


def report(m: dict) -> str:
    """``REPORT.md`` of a trained judge, from its manifest."""
    e, pct = m["evaluation"], partial(percent, digits=1)
    groups = list(e["renders"])
    return "\n\n".join([
        "# The toy world's judge: held-out accuracy",
        f"Written by `dvd toy judge` from `manifest.json`. A {m['config']['channels']} CNN, "
        f"{m['steps']} steps (batch {m['config']['batch_size']}, seed {m['config']['seed']}) on "
        f"{m['config']['renders']:,} renders of every caption of the world and {m['config']['garbage']:,} garbage "
        f"images, {m['train_wall_s'] / 60:.1f} min on {m['config']['threads']} CPU thread(s). Questions 1–5 of a set "
        f"are Yes when the concept's presence probability reaches {', '.join(map(str, m['thresholds']))} "
        f"respectively; an image is unrecognisable when its garbage probability is ≥ {m['garbage_at']} "
        f"(undecided-band guard: {m['guard'] or 'off'}).",
        "## Fresh renders (new seeds)\n\n`exact`: all ten concepts right (presence question) and not rejected; "
        "`c = 5`: present concepts passing every threshold; `c = 0`: absent concepts passing none. "
        "`held_out`: the pairs the diffusion model never sees (the judge does see them).\n\n" + _table(
            [[g, r["images"], pct(r["exact"]), pct(r["label_accuracy"]), pct(r["present_c5"]) if r["present_c5"] is not None else "–",
              pct(r["absent_c0"]), pct(r["unrecognisable"])] for g, r in e["renders"].items()],
            ["scenes", "images", "exact", "per label", "c = 5", "c = 0", "called unrecognisable"]),
        "## Per concept (presence question right)\n\n" + _table(
            [[n, *[pct(v[g]) for g in groups]] for n, v in e["per_concept"].items()], ["concept", *groups]),
        "## Garbage called unrecognisable\n\nSeen kinds (new seeds): " + ", ".join(e["garbage_seen_kinds"]) +
        "; `uniform` noise and `random_pipeline` (the toy pipeline with random UNet weights, 10 DDIM steps) "
        "were never trained on.\n\n" + _table(
            [[k, pct(v), pct(m["with_guard"]["garbage"][k])] for k, v in e["garbage"].items()],
            ["kind", "judge", f"with guard {tuple(m['with_guard']['guard'])}"]) +
        "\n\nWith the guard, renders called unrecognisable: " + ", ".join(
            f"{g} {pct(v)}" for g, v in m["with_guard"]["renders_unrecognisable"].items()) + ".",
        "## Ghosts: one sprite of a two-concept scene faded toward the background\n\nMean `c` (0–5) of "
        "the faded concept and of the other one, share called unrecognisable; `target`: the presence the "
        "judge was trained to give the faded one. Blends of two unstyled scenes (not trained as garbage) "
        f"called unrecognisable: {pct(e['plain_blend_unrecognisable'])}.\n\n" + _table(
            [[k, v["target"], v["c_faded"], v["c_other"], pct(v["unrecognisable"])] for k, v in e["faded"].items()],
            ["contrast", "target", "c faded", "c other", "unrecognisable"]),
        "## Commonest errors (caption: error, count)\n\n" + ("\n".join(
            f"- {k}: {v}" for k, v in e["confusions"].items()) or "none"),
        handcheck_section(m.get("handcheck", {})),
        "## Not shown here\n\nThe judge knows the default world only: a world with other variants (e.g. "
        "`with_variants(tower=10)`) needs a judge trained on it.",
    ]) + "\n"


def handcheck_section(results: dict) -> str:
    """REPORT.md section: agreement with each hand-labelled sample of generated images."""
    if not results:
        return ("## Generated images (hand-checked)\n\nNo labelled sample: see `dvdlib.toy.handcheck` "
                "(`dvd toy handcheck --out ...`, fill the label column of `labels.csv`, then `--report-only`).")
    pct = partial(percent, missing="–")

    parts = ["## Generated images (hand-checked)\n\nSamples of the toy model's generations, labelled by a "
             "person from an enlarged, shuffled contact sheet (`toy/judge/handcheck/<sample>/`). `exact`: the "
             "judge sees exactly the labelled concepts (presence ≥ 0.7, i.e. c ≥ 3, as in the gates), or calls "
             "an image unrecognisable that the person did."]
    for name, r in results.items():
        parts.append(f"**{name}** ({r['about']}): exact {r['exact_n']}/{r['images']} ({pct(r['exact'])}); "
                     f"unrecognisable by hand {r['hand_unrecognisable']}, by the judge {r['judge_unrecognisable']}, "
                     f"both {r['both_unrecognisable']}.\n\n" + _table(
                         [[n, v["present"], pct(v["recall"]), v["said_present"], pct(v["precision"])]
                          for n, v in r["per_concept"].items()],
                         ["concept", "present (hand)", "recall", "said present", "precision"]))
    return "\n\n".join(parts)


def score_handchecks(judge: ToyJudge, root) -> dict:
    """`dvdlib.toy.handcheck.agreement` for every labelled sample folder under ``root``."""
    from .handcheck import agreement, describe

    folders = sorted(p.parent for p in Path(root).glob("*/labels.csv"))
    return {f.name: {"about": describe(f), **agreement(judge, f)} for f in folders}


def rescore(out="toy/judge", handcheck="toy/judge/handcheck") -> None:
    """Rescore the hand-checked samples with the judge in ``out`` and rewrite its manifest and
    ``REPORT.md`` (no training)."""
    m = json.loads((Path(out) / MANIFEST).read_text())
    m["handcheck"] = score_handchecks(load_toy_judge(out), handcheck)
    (Path(out) / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
    (Path(out) / "REPORT.md").write_text(report(m))


def train_and_report(cfg: JudgeConfig, out="toy/judge", handcheck="toy/judge/handcheck", pipeline_samples: int = 32,
                     world=None) -> dict:
    """Train the judge of ``world`` (default world 1), evaluate it (with and without the guard),
    score the hand-checked samples, save the weights, ``manifest.json`` and ``REPORT.md`` in
    ``out``; the evaluation."""
    judge, facts = train_judge(cfg, world)
    start = time.time()
    facts["evaluation"] = evaluate(judge, pipeline_n=pipeline_samples)
    guarded = evaluate(ToyJudge(judge.net, judge.world, guard=GUARD), pipeline_n=pipeline_samples)
    facts["with_guard"] = {"guard": GUARD, "renders_unrecognisable": {g: r["unrecognisable"] for g, r in guarded["renders"].items()},
                           "garbage": guarded["garbage"]}
    facts["eval_wall_s"] = round(time.time() - start, 1)
    facts["handcheck"] = score_handchecks(judge, handcheck)
    save_judge(judge, out, cfg, facts)
    (Path(out) / "REPORT.md").write_text(report(json.loads((Path(out) / MANIFEST).read_text())))
    return facts["evaluation"]
