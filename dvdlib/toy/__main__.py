"""Command line of the toy world: ``python -m dvdlib.toy {train,export,sample,render} ...``.

    python -m dvdlib.toy train --out toy/run1 --steps 20000      # starts, or resumes from the checkpoint
    python -m dvdlib.toy export --out toy/run1                   # EMA weights → toy/run1/model + manifest.json
    python -m dvdlib.toy sample --model toy/run1/model "tower and ball" "ball" --png grid.png
    python -m dvdlib.toy render "tower and ball" --png scenes.png   # training renders, no model
    python -m dvdlib.toy findings --out toy/findings             # gates + chapters under `toy` → snapshot
    python -m dvdlib.toy gates --guidance 1.0 1.5 2.0 --csv sweep.csv  # the quality gates per guidance scale
    python -m dvdlib.toy handcheck --out toy/judge/handcheck/test --prompts ball "tower and ball"  # to label
    python -m dvdlib.toy handcheck --out toy/judge/handcheck/twins --twins 12    # the twins' images, to label

`main(argv)` is what ``dvd toy ...`` calls.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..chapters import snapshot_chapters


def _variants(items: list[str]) -> dict:
    """["tower=10", "robot=none"] → {"tower": 10, "robot": None}."""
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--variants takes NAME=COUNT (or NAME=none), got {item!r}")
        out[name] = None if value.lower() == "none" else int(value)
    return out


def _train(args) -> None:
    from .train import TrainConfig, train

    saved = Path(args.out) / "config.json"
    base = json.loads(saved.read_text()) if saved.is_file() else asdict(TrainConfig())
    given = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed, "lr": args.lr,
             "threads": args.threads, "checkpoint_every": args.checkpoint_every,
             "variants": _variants(args.variants) if args.variants else None}
    cfg = TrainConfig.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})
    train(args.out, cfg, progress=not args.no_progress)
    if not args.no_export:
        from .train import export

        manifest = export(args.out)
        print(f"exported {manifest['steps']} steps to {Path(args.out) / 'model'}; final loss {manifest['final_loss']}")


def _export(args) -> None:
    from .train import export

    manifest = export(args.out, args.to)
    print(json.dumps({k: manifest[k] for k in ("steps", "final_loss", "wall_time_s", "s_per_step", "data_hash")}, indent=2))


def _grid(rows: list[list[np.ndarray]], path: str, scale: int = 4) -> None:
    from PIL import Image

    pad = lambda im: np.pad(im, ((1, 1), (1, 1), (0, 0)), constant_values=1.0)
    grid = np.concatenate([np.concatenate([pad(im) for im in row], 1) for row in rows], 0)
    image = Image.fromarray((np.clip(grid, 0, 1) * 255).astype(np.uint8))
    image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(path)
    print(f"wrote {path} ({len(rows)} rows × {len(rows[0])})")


def _sample(args) -> None:
    import torch

    from .model import load_toy

    torch.set_num_threads(args.threads)
    pipe = load_toy(args.model)
    rows = []
    for prompt in args.prompts:
        latents = torch.cat([torch.randn(1, 12, 16, 16, generator=torch.Generator().manual_seed(s)) for s in range(args.seeds)])
        out = pipe([prompt] * args.seeds, latents=latents, num_inference_steps=args.steps,
                   guidance_scale=args.guidance, output_type="np")
        rows.append(list(out.images))
    _grid(rows, args.png)


def _render(args) -> None:
    from .world import World

    world = World()
    _grid([[world.render(p, s).image for s in range(args.seeds)] for p in args.prompts], args.png)


def _findings(args) -> None:
    from .snapshot import CHAPTERS, make_snapshot

    import yaml

    parameters = {}
    for item in args.param or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param takes NAME=VALUE (VALUE in YAML, e.g. sweep_layers=[1,3]), got {item!r}")
        parameters[name] = yaml.safe_load(value)
    index = make_snapshot(args.out, profile=args.profile, chapters=args.only or CHAPTERS, scratch=args.scratch,
                          measure=not args.no_gates, parameters=parameters, rerun=args.rerun)
    failed = [name for name, c in index["chapters"].items() if not c["ok"]]
    print(f"snapshot of {index['model']['path']} (step {index['model']['step']}, hash {index['model']['hash'][:12]}) "
          f"in {args.out}: {len(index['chapters'])} chapter(s), failed: {', '.join(failed) or 'none'}")
    if failed:
        raise SystemExit(1)


def _step(model) -> int | None:
    """The training step a toy model folder was exported at (its ``toy.json``)."""
    return json.loads((Path(model) / "toy.json").read_text()).get("steps")


def _gates(args) -> None:
    import pandas as pd
    import torch

    from ..store import model_key
    from ..profiles import load_profile
    from ..store import Store
    from .gates import measure_gates
    from .judge import load_toy_judge
    from .model import load_toy

    torch.set_num_threads(args.threads)
    P = load_profile(args.profile)
    model, judge = args.model or P.model, load_toy_judge(args.judge or P.judge)
    pipe, step = load_toy(model), _step(model)
    rows = []
    for guidance in args.guidance or [P.guidance]:
        store = Store(P.store, model_key(model), {**P.sampler(model), "guidance": guidance})
        table = measure_gates(pipe, judge, store, P.seeds, batch_size=P.batch_size)
        rows += [{"model_step": step, "guidance": guidance, "gate": gate, **table.loc[gate].to_dict()} for gate in table.index]
        print(f"guidance {guidance}: " + ", ".join(f"{g} {int(table.loc[g, 'hits'])}/{int(table.loc[g, 'n'])}"
                                                  f" ({'pass' if table.loc[g, 'passed'] else 'FAIL'})" for g in table.index))
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


def _handcheck(args) -> None:
    import torch

    from .handcheck import save_blind_sample
    from .model import load_toy

    torch.set_num_threads(args.threads)
    if args.twins:
        from .handcheck import save_blind_twins

        print(save_blind_twins(args.out, K=args.twins, n=args.images, shuffle=args.shuffle, concepts=args.concepts))
        return
    if not args.prompts or args.guidance is None:
        raise SystemExit("dvd toy handcheck: give --prompts and --guidance (or --twins K for the twin chapter's images)")
    print(save_blind_sample(args.out, load_toy(args.model), args.prompts, args.seeds, args.guidance,
                            model_step=_step(args.model), shuffle=args.shuffle))


def _judge(args) -> None:
    from dataclasses import fields

    from .judge import JudgeConfig
    from .judge_report import rescore, train_and_report

    if args.report_only:
        rescore(args.out, args.handcheck)
        return
    cfg = JudgeConfig(**{k: v for k, v in vars(args).items() if k in {f.name for f in fields(JudgeConfig)} and v is not None})
    evaluation = train_and_report(cfg, args.out, args.handcheck, args.pipeline_samples)
    print(json.dumps({k: evaluation[k] for k in ("renders", "garbage")}, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dvd toy", description="The toy world: train, export, sample, render, "
                                     "findings, gates, handcheck, judge.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train or resume a toy model (options default to the run's saved config)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, model, manifest)")
    p.add_argument("--steps", type=int, help="train until this step (default 20000)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 400)")
    p.add_argument("--variants", nargs="*", help="concept variant counts, e.g. tower=10 robot=none")
    p.add_argument("--no-export", action="store_true", help="do not export the model at the end")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    p = sub.add_parser("export", help="export the latest checkpoint's EMA weights (fp16) and the manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--to", help="model folder (default OUT/model)")
    p.set_defaults(func=_export)

    p = sub.add_parser("sample", help="generate a grid of images from a toy model folder")
    p.add_argument("prompts", nargs="+")
    p.add_argument("--model", default="toy/run1/model")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--png", default="toy_samples.png")
    p.set_defaults(func=_sample)

    p = sub.add_parser("render", help="a grid of training renders (no model)")
    p.add_argument("prompts", nargs="+")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--png", default="toy_renders.png")
    p.set_defaults(func=_render)

    p = sub.add_parser("findings", help="snapshot of the toy findings: gates + chapters run with profile toy")
    p.add_argument("--out", default="toy/findings", help="snapshot folder (small, committed)")
    p.add_argument("--only", nargs="*", help="chapters to run (default: every chapter the snapshot keeps, "
                                             f"{', '.join(c[:2] for c in snapshot_chapters())}); one already done "
                                             "for the same model hash is kept")
    p.add_argument("--profile", default="toy", help="profile the chapters run with (default toy)")
    p.add_argument("--scratch", help="where the executed chapters and all their figures go (default store/findings-run)")
    p.add_argument("--no-gates", action="store_true", help="do not measure the quality gates")
    p.add_argument("--rerun", action="store_true", help="run the chapters named even if done for this model")
    p.add_argument("--param", nargs="*", help="chapter parameters NAME=VALUE (YAML) for the chapters run, e.g. "
                                              "sweep_layers=[1,3] sweep_seeds=[1825,410]; recorded in the snapshot")
    p.set_defaults(func=_findings)

    p = sub.add_parser("gates", help="measure the quality gates of a toy model (the profile's seeds, sampler and judge)")
    p.add_argument("--model", help="model folder (default: the profile's)")
    p.add_argument("--judge", help="judge folder (default: the profile's)")
    p.add_argument("--profile", default="toy")
    p.add_argument("--guidance", nargs="*", type=float, help="guidance scales to measure (default: the profile's)")
    p.add_argument("--csv", help="write the rates here")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_gates)

    p = sub.add_parser("handcheck", help="a shuffled sample of generated images to label by hand (the judge's check)")
    p.add_argument("--out", required=True, help="sample folder (sheet.png, labels.csv, contact.png)")
    p.add_argument("--model", default="toy/run1/model")
    p.add_argument("--prompts", nargs="+")
    p.add_argument("--seeds", nargs="+", type=int, default=[1825, 410, 4507])
    p.add_argument("--guidance", type=float)
    p.add_argument("--twins", type=int, metavar="K", help="instead: a sample of the twin chapter's stored images of "
                                                          "K pairs (chapter 12; `dvd toy findings` makes them)")
    p.add_argument("--images", type=int, default=96, help="with --twins: how many images")
    p.add_argument("--concepts", nargs="+", help="with --twins: only the prompts pairing the new token with these")
    p.add_argument("--shuffle", type=int, default=0, help="seed of the shuffled order")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_handcheck)

    p = sub.add_parser("judge", help="train the toy judge (evaluation, manifest, REPORT.md), or rescore its hand checks")
    p.add_argument("--out", default="toy/judge")
    for name in ("seed", "steps", "renders", "garbage", "threads"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--pipeline-samples", type=int, default=32, help="random-weight pipeline samples to evaluate on")
    p.add_argument("--report-only", action="store_true", help="only rescore the hand-checked samples and rewrite "
                                                              "REPORT.md (no training)")
    p.add_argument("--handcheck", default="toy/judge/handcheck", help="folder of hand-labelled samples of generations")
    p.set_defaults(func=_judge)

    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
