"""World 2's command line (``dvd toy2 ...``, or ``python -m dvdlib.toy2 ...``).

    train  --out toy/run2 [--steps N]   train or resume the model (one thread; resumable)
    export --out toy/run2               write the EMA model (fp16) and the manifest
    judge  --out toy/judge2             train world 2's judge on renders and report on it
    judge  --out toy/judge2 --report-only   rewrite its REPORT.md from the stored numbers (no training)
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
    judge.add_argument("--handcheck", default=None, help="folder of hand-labelled samples (default: OUT/handcheck)")
    judge.add_argument("--report-only", action="store_true", help="only rescore the hand-checked samples and "
                       "rewrite manifest.json's hand-check results and REPORT.md (no training)")
    args = parser.parse_args(argv)
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
        cfg = JudgeConfig(renders=args.renders, garbage=args.renders // 4, steps=args.steps)
        evaluation = train_and_report(cfg, args.out, handcheck=handcheck, pipeline_samples=0, world=World())
        print(json.dumps(evaluation["renders"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
