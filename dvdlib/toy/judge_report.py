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


#: The garbage kinds a judge is evaluated on but never trained on, in words (`dvdlib.toy.judge_data.garbage_image`).
UNSEEN_GARBAGE = {"uniform": "`uniform` noise", "washed": "`washed` (a scene pushed toward a light flat colour, "
                  "as over-guidance draws)", "random_pipeline": "`random_pipeline` (the toy pipeline with random "
                  "UNet weights, 10 DDIM steps)"}
#: Numbers written as words in prose.
_WORDS = dict(enumerate(("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")))


def report(m: dict, world=None, handcheck: str = "toy/judge/handcheck") -> str:
    """``REPORT.md`` of a trained judge, from its manifest: named after ``world`` (its class
    attributes ``title`` and ``name``; default world 1), counting the manifest's concepts;
    ``handcheck``: where its hand-checked samples live."""
    from .world import World

    world = world or World()
    e, pct = m["evaluation"], partial(percent, digits=1)
    groups, n = list(e["renders"]), len(m["concepts"])
    title = world.title[0].upper() + world.title[1:]
    rigid = next(c["name"] for c in m["world"]["concepts"] if c.get("variants"))
    example = f"with_variants({rigid}=10)" if rigid.isidentifier() else f'with_variants(**{{"{rigid}": 10}})'
    unseen = [UNSEEN_GARBAGE.get(k, f"`{k}`") for k in e["garbage"] if k not in e["garbage_seen_kinds"]]
    return "\n\n".join([
        f"# {title}'s judge: held-out accuracy",
        f"Written by `dvd {world.name} judge` from `manifest.json`. A {m['config']['channels']} CNN, "
        f"{m['steps']} steps (batch {m['config']['batch_size']}, seed {m['config']['seed']}) on "
        f"{m['config']['renders']:,} renders of every caption of the world and {m['config']['garbage']:,} garbage "
        f"images, {m['train_wall_s'] / 60:.1f} min on {m['config']['threads']} CPU thread(s). Questions 1–5 of a set "
        f"are Yes when the concept's presence probability reaches {', '.join(map(str, m['thresholds']))} "
        f"respectively; an image is unrecognisable when its garbage probability is ≥ {m['garbage_at']} "
        f"(undecided-band guard: {m['guard'] or 'off'})."
        + (f" A share {m['config']['degraded']} of the renders is drawn as a generator draws them, the plain ground lifted by up to "
           f"{m['config']['background']} in brightness and tinted: a model sampled with SD's schedule draws the "
           f"ground lighter than the world's." if m['config'].get('background') else ""),
        f"## Fresh renders (new seeds)\n\n`exact`: all {_WORDS.get(n, n)} concepts right (presence question) and not rejected; "
        "`c = 5`: present concepts passing every threshold; `c = 0`: absent concepts passing none. "
        "`held_out`: the pairs the diffusion model never sees (the judge does see them).\n\n" + _table(
            [[g, r["images"], pct(r["exact"]), pct(r["label_accuracy"]), pct(r["present_c5"]) if r["present_c5"] is not None else "–",
              pct(r["absent_c0"]), pct(r["unrecognisable"])] for g, r in e["renders"].items()],
            ["scenes", "images", "exact", "per label", "c = 5", "c = 0", "called unrecognisable"]),
        "## Per concept (presence question right)\n\n" + _table(
            [[n, *[pct(v[g]) for g in groups]] for n, v in e["per_concept"].items()], ["concept", *groups]),
        "## Garbage called unrecognisable\n\nSeen kinds (new seeds): " + ", ".join(e["garbage_seen_kinds"]) +
        f"; never trained on: {', '.join(unseen) or 'none'}.\n\n" + _table(
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
        handcheck_section(m.get("handcheck", {}), world, handcheck),
        "## Not shown here\n\nThe judge knows the default world only: a world with other variants (e.g. "
        f"`{example}`) needs a judge trained on it.",
    ]) + "\n"


def handcheck_section(results: dict, world=None, folder: str = "toy/judge/handcheck") -> str:
    """REPORT.md section: agreement with each hand-labelled sample of generated images (in
    ``folder``) of ``world``'s model (default world 1)."""
    name = world.name if world is not None else "toy"
    if not results:
        return ("## Generated images (hand-checked)\n\nNo labelled sample: see `dvdlib.toy.handcheck` (a "
                f"sample of the model's generations in `{Path(folder).as_posix()}/<sample>/`; fill the label column "
                f"of its `labels.csv`, then `dvd {name} judge --report-only`).")
    pct = partial(percent, missing="–")

    parts = ["## Generated images (hand-checked)\n\nSamples of the toy model's generations, labelled by a "
             f"person from an enlarged, shuffled contact sheet (`{Path(folder).as_posix()}/<sample>/`). `exact`: the "
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


def rescore(out="toy/judge", handcheck="toy/judge/handcheck", world=None) -> None:
    """Rescore the hand-checked samples with the judge in ``out`` (of ``world``, default world 1)
    and rewrite its manifest and ``REPORT.md`` from the stored numbers (no training)."""
    m = json.loads((Path(out) / MANIFEST).read_text())
    judge = load_toy_judge(out, world_class=type(world)) if world is not None else load_toy_judge(out)
    m["handcheck"] = score_handchecks(judge, handcheck)
    (Path(out) / MANIFEST).write_text(json.dumps(m, indent=2) + "\n")
    (Path(out) / "REPORT.md").write_text(report(m, world, handcheck))


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
    (Path(out) / "REPORT.md").write_text(report(json.loads((Path(out) / MANIFEST).read_text()), world, handcheck))
    return facts["evaluation"]
