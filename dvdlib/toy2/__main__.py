"""``python -m dvdlib.toy2 train --out toy/run2 [--steps N]`` and ``... export --out toy/run2``."""

import argparse
import json

from . import train as toy2_train


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dvdlib.toy2", description=__doc__)
    parser.add_argument("command", choices=["train", "export"])
    parser.add_argument("--out", default="toy/run2")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "train":
        from pathlib import Path

        saved = Path(args.out) / "config.json"
        cfg = toy2_train.TrainConfig.from_dict(json.loads(saved.read_text())) if saved.is_file() else toy2_train.TrainConfig()
        if args.steps:
            cfg.steps = args.steps
        toy2_train.train(args.out, cfg)
    else:
        print(json.dumps({k: v for k, v in toy2_train.export(args.out).items() if k not in ("world", "config")}, indent=2))


if __name__ == "__main__":
    main()
