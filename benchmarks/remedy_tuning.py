"""The remedies' defaults, chosen on twins that no chapter scores (`dvdlib.remedies.tuning`).

    python benchmarks/remedy_tuning.py     # toy profile: fine-tunes pairs 12 and 13 (rigid, memorized) if missing

Each remedy's grid is generated on the tuning twins' test prompts at the tuning seed and judged;
the result (each setting's score, the choice) goes to ``benchmarks/results/remedy_tuning.json``,
which each remedy module's defaults must equal (``tests/test_remedy_defaults.py``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from result_file import device_name, write_result

OUT = Path(__file__).parent / "results" / "remedy_tuning.json"


def setting_text(params: dict) -> str:
    """"strength 1.0, boost 4.0, steps 12, layers 9 and 10": a setting as the page reads it."""
    def said(value):
        return " and ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    return ", ".join(f"{k.replace('_', ' ')} {said(v)}" for k, v in params.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="toy")
    parser.add_argument("--only", nargs="*", default=None, help="remedies to tune (default: every one of the grid)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)

    import dvdlib
    from dvdlib import causal, twins
    from dvdlib.finetune import TOKEN
    from dvdlib.remedies import compare, tuning

    run = dvdlib.setup(args.profile, "13_remedies", out_dir="/tmp/remedy_tuning")
    S = twins.scale(run.profile)
    recipe = causal.recipe_for(S)
    design = twins.design(run, None, K=max(tuning.TUNING_PAIRS) + 1, recipe=recipe)
    design = design[design.pair.isin(tuning.TUNING_PAIRS) & design.arm.isin(tuning.ARMS)]
    started = time.perf_counter()
    models = twins.finetune_arms(run, design, recipe)
    prompts = compare.twin_rows(twins.test_prompts(run, S["prompts"], S["exclude"]), TOKEN)
    seeds = [tuning.TUNING_SEED]

    def judged(name, params):
        return compare.twin_judged(run, models, prompts, seeds, {name: params}, names=(name,))

    plain = judged("none", {})
    rows, chosen = [], {}
    for name, grid in tuning.GRID.items():
        if args.only and name not in args.only:
            continue
        scores = []
        for params in grid:
            t = time.perf_counter()
            scores.append({**tuning.score(judged(name, params), plain), "params": params,
                           "seconds": round(time.perf_counter() - t, 1)})
            print(name, params, f"gain {scores[-1]['gain']:+.3f}", flush=True)
        pick = tuning.choose(scores)
        chosen[name] = {"params": grid[pick], "gain": scores[pick]["gain"], "any_gain": scores[pick]["gain"] > 0}
        rows += [{"remedy": name, "setting": setting_text(s["params"]),
                  "both present": round(s["both"], 3), "gain over plain": round(s["gain"], 3),
                  "chosen": "yes" if i == pick else ""} for i, s in enumerate(scores)]
        chosen[name]["scores"] = scores
    write_result(args.out, "remedy_tuning.py", args,
                 title="The remedies' defaults, chosen on the tuning twins (pairs "
                       f"{', '.join(map(str, tuning.TUNING_PAIRS))}; {', '.join(tuning.ARMS)}; seed {tuning.TUNING_SEED})",
                 device=device_name(run.profile.device), model=f"{run.profile.model} (profile {run.profile.name})",
                 notes=(f"each setting generated on {len(models)} tuning twins × {len(prompts)} test prompts × 1 seed and "
                        "judged; 'gain over plain': the share with both concepts present minus the plain images' share, "
                        "each twin weighing the same; chosen: the best gain, the earlier setting on a tie, the first "
                        "when none gains; a rerun reads the stored images"),
                 rows=rows, chosen=chosen, plain_both=float(tuning.score(plain, plain)["both"]),
                 prompts=list(prompts.prompt), seconds=round(time.perf_counter() - started, 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
