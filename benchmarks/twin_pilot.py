"""A pilot of the twin design (paper §3.3, §3.6–3.7 as paired contrasts): a few pairs of rigid,
diverse and memorized fine-tunes of the toy world's new concept, each asked chapter 03's prompts
and judged; what one fine-tune and one twin's images cost, and the between-pair spread of each
contrast, so the chapter's K and recipe are chosen from measurements.

    python benchmarks/twin_pilot.py                       # toy, 3 pairs, chapter 03's recipe
    python benchmarks/twin_pilot.py --pairs 3 --steps 100  # the same pairs with a shorter recipe

Fine-tunes and images go to the profile's run store (reused by a rerun and by the chapter). The
result, with the design table of `dvdlib.twins.pilot_design_table` (the smallest paired effect the
verdict rule finds at 80% power for each K, from the pilot's spread), goes to
``benchmarks/results/twin_pilot[-<steps>].json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def pilot_rows(contrasts: dict, design) -> list[dict]:
    """The benchmarks page's table: per contrast its DvD estimate and interval, the per-pair
    differences, the between-pair SD and the effect found with 80% power at K = 12 and 24."""
    return [{"contrast": k, "DvD [95% CI]": f"{v['value']:+.1f} [{v['ci'][0]:+.1f}, {v['ci'][1]:+.1f}]",
             "per pair": "; ".join(f"{d:+.1f}" for d in v["per_cluster"].values()), "SD": float(v["spread"][0]),
             "found at 12 pairs": design.loc[k, "detectable at K = 12"],
             "at 24 pairs": design.loc[k, "detectable at K = 24"]}
            for k, v in contrasts.items()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of the pilot (the first of the design)")
    parser.add_argument("--steps", type=int, default=None, help="fine-tune steps (default: chapter 03's recipe)")
    parser.add_argument("--tau", type=float, default=48.0)
    args = parser.parse_args(argv)

    import dvdlib
    from dvdlib import causal, twins
    from dvdlib.finetune import is_finished
    from dvdlib.plan import Count

    run = dvdlib.setup(args.profile, "twin_pilot")
    S = twins.scale(run.profile, n_seeds=len(causal.scale(run.profile)["seeds"]))  # the pilot's: every seed of chapter 03
    recipe = S["recipe"] if args.steps is None else dataclasses.replace(S["recipe"], steps=args.steps)
    table = twins.design(run, K=args.pairs, recipe=recipe)
    untrained = sum(not is_finished(m.folder) for m in twins.finetune_arms(Count(run, {}), table, recipe).values())
    started = time.perf_counter()
    models = twins.finetune_arms(run, table, recipe)
    trained = time.perf_counter() - started
    prompts = causal.causal_prompts(run, causal.scale(run.profile)["prompts"])  # the pilot's: chapter 03's eight
    started = time.perf_counter()
    judged, _ = causal.generate_and_judge(run, prompts, models, S["seeds"])
    generated = time.perf_counter() - started
    scores = twins.twin_scores(judged, args.tau)
    contrasts = {"rigid − diverse": twins.paired(scores, "rigid", "diverse", value="dvd"),
                 "memorized − rigid": twins.paired(scores, "memorized", "rigid", value="dvd")}
    design = twins.pilot_design_table(contrasts)
    rows = pilot_rows(contrasts, design)
    suffix = "" if args.steps is None else f"-{args.steps}"
    body = {
        "title": f"Twin pilot: {args.pairs} pairs on the {args.profile} profile, {recipe.steps}-step fine-tunes",
        "command": f"python benchmarks/twin_pilot.py --pairs {args.pairs}" + (f" --steps {args.steps}" * bool(args.steps)),
        "rows": rows,
        "profile": args.profile, "pairs": args.pairs, "recipe": dataclasses.asdict(recipe),
        "prompts": len(prompts), "seeds": list(S["seeds"]), "n_images": S["n_images"],
        "fine_tunes_trained": untrained,
        "seconds_per_fine_tune": trained / max(1, untrained),
        "seconds_generating": generated,
        "mean_dvd": scores.groupby("arm").dvd.mean().round(2).to_dict(),
        "per_pair_dvd": {f"pair {p}": g.groupby("arm").dvd.mean().round(2).to_dict() for p, g in scores.groupby("pair")},
        "contrasts": {k: {f: v.get(f) for f in ("value", "ci", "n_clusters", "spread", "per_cluster", "detectable")}
                      for k, v in contrasts.items()},
        "design": json.loads(design.to_json(orient="records")),
    }
    out = RESULTS / f"twin_pilot{suffix}.json"
    if out.is_file() and not untrained:  # nothing trained: keep the first run's times
        first = json.loads(out.read_text())
        for key in ("seconds_per_fine_tune", "seconds_generating", "fine_tunes_trained"):
            body[key] = first.get(key, body[key])
    body["notes"] = (f"DvD per twin over {len(prompts)} prompts × {len(S['seeds'])} seeds (τ {args.tau:g}); "
                     f"{body['seconds_per_fine_tune']:.0f} s per fine-tune and {body['seconds_generating']:.0f} s "
                     f"generating for {len(models)} twins, one thread, when first run (a rerun reads the store)")
    out.write_text(json.dumps(body, indent=1, ensure_ascii=False, default=float) + "\n")
    print(json.dumps(body, indent=1, ensure_ascii=False, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
