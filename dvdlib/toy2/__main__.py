"""World 2's command line (``dvd toy2 ...``, or ``python -m dvdlib.toy2 ...``).

    train  --out toy/run2 [--steps N]   train or resume the model (one thread; resumable)
    export --out toy/run2               write the EMA model (fp16) and the manifest
    judge  --out toy/judge2             train world 2's judge on renders and report on it
    judge  --out toy/judge2 --report-only   rewrite its REPORT.md from the stored numbers (no training)
    handcheck --out toy/judge2/handcheck/step14000   a shuffled sample of generations to label by hand
    gates  --guidance 1.5 3 5 --seeds 5 --csv toy/run2/gates.csv   the quality gates per guidance scale,
           and the start token's share of cross-attention per layer at step 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dvd toy2", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train or resume world 2's model")
    train.add_argument("--out", default="toy/run2")
    train.add_argument("--steps", type=int, default=None, help="how far to train (default: the run's config)")
    export = sub.add_parser("export", help="export the latest checkpoint's EMA model and manifest")
    export.add_argument("--out", default="toy/run2")
    judge = sub.add_parser("judge", help="train world 2's judge on renders")
    judge.add_argument("--out", default="toy/judge2")
    judge.add_argument("--renders", type=int, default=60_000)
    judge.add_argument("--steps", type=int, default=3_600)
    judge.add_argument("--background", type=float, default=0.3,
                       help="max lift of the plain background in degraded renders (default 0.3: the 95th percentile "
                            "of what the step-14000 model drew at guidance 3)")
    judge.add_argument("--shared-identity", action="store_true",
                       help="the world whose named concepts' appearances share an identity (World(shared_identity=True))")
    judge.add_argument("--handcheck", default=None, help="folder of hand-labelled samples (default: OUT/handcheck)")
    judge.add_argument("--report-only", action="store_true", help="only rescore the hand-checked samples and "
                       "rewrite manifest.json's hand-check results and REPORT.md (no training)")
    hand = sub.add_parser("handcheck", help="a shuffled sample of generated images to label by hand (the judge's check)")
    hand.add_argument("--out", required=True, help="sample folder (sheet.png, labels.csv, contact.png)")
    hand.add_argument("--model", default="toy/run2/model")
    hand.add_argument("--prompts", nargs="+", default=None, help="default: the singles gate's prompts")
    hand.add_argument("--seeds", nargs="+", type=int, default=[1825, 410])
    hand.add_argument("--guidance", type=float, default=3.0)
    hand.add_argument("--shuffle", type=int, default=0, help="seed of the shuffled order")
    gates = sub.add_parser("gates", help="measure world 2's quality gates (profile toy2's model, judge and sampler)")
    gates.add_argument("--model", default=None, help="model folder (default: the profile's)")
    gates.add_argument("--guidance", nargs="+", type=float, default=None,
                       help="guidance scales (default: the profile's)")
    gates.add_argument("--seeds", type=int, default=None, help="the profile's first N seeds (default: all)")
    gates.add_argument("--steps", type=int, default=None, help="denoising steps (default: the profile's)")
    gates.add_argument("--store", default=None, help="run store (default: the profile's)")
    gates.add_argument("--csv", default=None, help="append the rates here (one row per guidance scale and gate)")
    args = parser.parse_args(argv)
    if args.command == "gates":
        _gates(args)
        return 0
    if args.command == "handcheck":
        _handcheck(args)
        return 0
    if args.command == "train":
        from .train import TrainConfig, train as run_training

        saved = Path(args.out) / "config.json"
        cfg = TrainConfig.from_dict(json.loads(saved.read_text())) if saved.is_file() else TrainConfig()
        cfg.steps = args.steps or cfg.steps
        run_training(args.out, cfg)
    elif args.command == "export":
        from .train import export as export_model

        print(json.dumps({k: v for k, v in export_model(args.out).items() if k not in ("world", "config")}, indent=2))
    else:
        from ..toy.judge import JudgeConfig
        from ..toy.judge_report import rescore, train_and_report
        from .world import World

        handcheck = args.handcheck or (Path(args.out) / "handcheck").as_posix()
        if args.report_only:
            rescore(args.out, handcheck, world=World())
            return 0
        cfg = JudgeConfig(renders=args.renders, garbage=args.renders // 4, steps=args.steps, background=args.background)
        evaluation = train_and_report(cfg, args.out, handcheck=handcheck, pipeline_samples=0,
                                      world=World(shared_identity=args.shared_identity))
        print(json.dumps(evaluation["renders"], indent=2))
    return 0


def _handcheck(args) -> None:
    """World 1's blind hand-check sample (`dvdlib.toy.handcheck`) of world 2's model."""
    from ..toy.handcheck import save_blind_sample
    from .gates import gate_prompts
    from .model import load
    from .world import World

    prompts = args.prompts or gate_prompts(World())["singles"]
    print(save_blind_sample(args.out, load(args.model), prompts, args.seeds, args.guidance,
                            model_step=_model_step(args.model), shuffle=args.shuffle))


def _model_step(folder) -> int | None:
    """The training step a world-2 model folder was exported at (its marker file)."""
    from .model import MARKER

    return json.loads((Path(folder) / MARKER).read_text()).get("steps")


def _gates(args) -> None:
    """Measure the gates (`dvdlib.toy2.gates`) at each guidance scale; print them, append to ``--csv``;
    measure the start token's share per layer at step 1 and what the first step reads
    (`dvdlib.toy2.mechanisms`, at the first guidance scale); record them in the manifest when it
    describes the model's step."""
    import pandas as pd

    from .. import setup
    from ..store import atomic_write, plain
    from .gates import gate_prompts, measure_gates
    from .mechanisms import first_step_leftover, start_token_share
    from .world import World

    rows = []
    run = setup("toy2", "gates", model=args.model, store=args.store, steps=args.steps)
    seeds = run.profile.seeds[:args.seeds] if args.seeds else run.profile.seeds
    step = _model_step(run.profile.model)
    for guidance in args.guidance or [run.profile.guidance]:
        # one model and judge; the guidance scale is the store's (`dvdlib.generate` samples with it)
        store = setup("toy2", "gates", model=args.model, store=args.store, steps=args.steps, guidance=guidance).store()
        table = measure_gates(run.pipe, run.judge, store, seeds, batch_size=run.profile.batch_size)
        rows += [{"model_step": step, "guidance": guidance, "seeds": len(seeds), "steps": run.profile.steps,
                  "gate": gate, **table.loc[gate].to_dict()} for gate in table.index]
        print(f"guidance {guidance}: " + ", ".join(
            f"{g} {int(table.loc[g, 'hits'])}/{int(table.loc[g, 'n'])} ≥ {table.loc[g, 'ci_low']:.0%}"
            f" ({'pass' if table.loc[g, 'passed'] else 'FAIL'})" for g in table.index), flush=True)
    shares = start_token_share(run.pipe, gate_prompts(World())["singles"], seeds, run.profile.steps, run.profile.guidance)
    print("start token's share of cross-attention at step 1, per layer: "
          + ", ".join(f"{r.layer} {r.start_share:.0%}" for r in shares.itertuples()), flush=True)
    first_guidance = (args.guidance or [run.profile.guidance])[0]
    leftover = first_step_leftover(run.pipe, run.judge, World(), seeds, run.profile.steps, first_guidance)
    print(f"singles recognised at guidance {first_guidance:g} starting from noise {leftover.from_noise.sum()}, "
          f"from the first step's leftover of their scene {leftover.from_leftover.sum()} (of {len(seeds) * len(leftover)})",
          flush=True)
    if args.csv:
        path = Path(args.csv)
        table = pd.concat([pd.read_csv(path) if path.is_file() else None, pd.DataFrame(rows)], ignore_index=True)
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        print(f"appended to {path}")
    manifest = Path(run.profile.model).parent / "manifest.json"
    data = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if manifest.is_file() and data.get("steps") == step:
        measured = {r["guidance"] for r in rows}  # a new measurement replaces the rows of its guidance scales
        data["gates"] = ([g for g in data.get("gates", []) if g["guidance"] not in measured]
                         + [plain(r) for r in rows])
        data["start_token_share"] = {"model_step": step, "step": 1, "prompts": "the singles gate's", "seeds": len(seeds),
                                     "layers": shares.round(4).to_dict("records")}
        data["first_step_leftover"] = {"model_step": step, "guidance": first_guidance, "steps": run.profile.steps,
                                       "concepts": plain(leftover.to_dict("records"))}
        atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))
        print(f"recorded in {manifest} (the model's step)")


if __name__ == "__main__":
    raise SystemExit(main())
