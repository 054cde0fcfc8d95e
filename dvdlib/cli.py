"""The ``dvd`` command.

    dvd book [--profile toy] [--only NAME ...] [-p KEY VALUE ...] [--jobs N] [--no-build]

runs every chapter (or ``--only`` some) with the profile through papermill into ``book/``, ``--jobs``
at a time (default one per core on a CPU, one on a GPU; longest first; torch threads = cores / jobs), writes
the status page, builds the HTML with warnings as errors and prints where ``index.html`` is. It
exits non-zero when a chapter failed or the build failed (the book is still built in the first case).

    dvd check PROMPT [--concepts A B] [--profile smoke]
    dvd fix PROMPT --concepts A B [--remedy rebalance] [--profile smoke] [-p KEY VALUE ...] [--out fixed.png]

``check`` reads one prompt at the first denoising step (paper §3.8's detector); ``fix`` does too and,
when the detector flags the prompt, generates it with a remedy (`dvdlib.remedies`), else plainly.

    dvd plan [CHAPTER ...] [--profile toy] [-p KEY VALUE ...] [--gpus 8] [--costs FILE]
    dvd prefetch CHAPTER ... [--profile toy] [-p KEY VALUE ...] [--shard i/N]

``plan`` prints what chapters compute (images, UNet evaluations, judge questions and
calls) and, from measured costs at the profile's batch size, GPU-hours on 1 GPU (expected, and with
every row ablated: the upper bound) and on N GPUs (`dvdlib.plan`); ``prefetch`` computes it into the
run store, this process's shard of it (`dvdlib.prefetch`; under ``accelerate launch -m dvdlib``).
"""

from __future__ import annotations

import argparse
import sys


def _value(text: str):
    """A ``-p`` value as papermill's ``-y`` would read it (numbers, lists, true/false), else a string."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _positive(text: str) -> int:
    """An argument that must be a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def _book(args) -> int:
    from dvdlib.book import make_book

    return make_book(args.profile, only=args.only, parameters=_params(args), jobs=args.jobs, threads=args.threads,
                     build=not args.no_build)


def _check(args) -> int:
    import dvdlib
    from dvdlib.detect import check_prompt, locate
    from dvdlib.models import ModelUnavailable
    from dvdlib.tokens import BlankText, ConceptNotFound, check_text

    try:
        check_text(args.prompt, args.concepts)  # before any model is loaded
        run = dvdlib.setup(args.profile, "check", model=args.model)
        profile = run.profile
        locate(run.pipe, args.prompt, args.concepts)  # before the store is made
        result = check_prompt(run.pipe, args.prompt, args.concepts, store=run.store(),
                              seeds=args.seeds or profile.seeds[:1], layers=args.layers, threshold=args.threshold)
    except (BlankText, ConceptNotFound, ModelUnavailable) as exc:
        print(f"dvd check: {exc}", file=sys.stderr)
        return 2
    print(f"model {profile.model} (profile {profile.name}; {profile.caveat or 'the paper setting'})")
    print(result.report(args.layers, args.threshold))
    return 0


def _fix(args) -> int:
    import dvdlib
    from dvdlib.models import ModelUnavailable
    from dvdlib.profiles import load_profile
    from dvdlib.remedies.fix import default_remedy, fix_prompt, remedy_module, write_images
    from dvdlib.tokens import BlankText, ConceptNotFound, check_text

    try:
        check_text(args.prompt, args.concepts)  # before any model is loaded
        if len(args.concepts) != 2:
            raise ValueError(f"give the prompt's two concepts, e.g. --concepts tower ball (got {len(args.concepts)})")
        remedy, chosen = (args.remedy, "named") if args.remedy else default_remedy(load_profile(args.profile).world)
        remedy_module(remedy)
        run = dvdlib.setup(args.profile, "fix", model=args.model)
        fixed = fix_prompt(run, args.prompt, args.concepts, remedy=remedy, seeds=args.seeds,
                           layers=args.layers, threshold=args.threshold, params=_params(args))
    except (BlankText, ConceptNotFound, ModelUnavailable, ValueError) as exc:
        print(f"dvd fix: {exc}", file=sys.stderr)
        return 2
    profile = run.profile
    paths = write_images(fixed, args.out, args.seeds or profile.seeds[:1])
    print(f"model {profile.model} (profile {profile.name}; {profile.caveat or 'the paper setting'})")
    print(f"remedy {remedy} ({chosen}), applied only if the detector flags the prompt")
    print(fixed.report())
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _params(args) -> dict:
    return {k: _value(v) for k, v in (args.param or [])}


def _plan(args) -> int:
    from dvdlib import plan as planning
    from dvdlib.chapters import BY_NAME
    from dvdlib.scheduler import chapter_sources

    try:
        chapters = args.chapters or [s.stem for s in chapter_sources() if s.stem in BY_NAME]
        from dvdlib.prefetch import plans_for

        plans = plans_for(chapters, args.profile, _params(args))
        costs = planning.load_costs(args.costs)
    except ValueError as exc:
        print(f"dvd plan: {exc}", file=sys.stderr)
        return 2
    print(planning.cost_table(plans, costs, args.gpus, args.costs))
    return 0


def _prefetch(args) -> int:
    from dvdlib.prefetch import prefetch

    try:
        summary = prefetch(args.chapters, args.profile, _params(args), shard=args.shard)
    except ValueError as exc:
        print(f"dvd prefetch: {exc}", file=sys.stderr)
        return 2
    print(f"[shard {summary['shard']}/{summary['shards']}] done: {summary['computed']:,} computed, "
          f"{summary['items'] - summary['computed']:,} were stored")
    return 0


def _world_command(name: str):
    """The ``dvd <world> ...`` command line of the world ``name`` (`dvdlib.worlds.World.command`), if any."""
    from dvdlib import worlds

    return worlds.get(name).command if name in worlds.available() else None


def main(argv=None) -> int:
    """Entry point of ``dvd``."""
    parser = argparse.ArgumentParser(prog="dvd", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("book", help="run the chapters with a profile and build the HTML book")
    p.add_argument("--profile", default="toy", help="profile name (dvdlib/profiles/NAME.yaml); "
                   "default toy (the trained toy world; smoke: the random-weight pipeline check)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="run only this chapter (file name, stem or number prefix); repeatable")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="extra chapter parameter, e.g. -p model /path/to/stable-diffusion-v1-4")
    p.add_argument("--jobs", type=_positive, metavar="N", help="chapters run at once (default: one per core on a CPU, "
                   "one on a GPU; the longest start first, by their last run's times)")
    p.add_argument("--threads", type=_positive, metavar="T", help="torch threads per chapter (default: cores / jobs)")
    p.add_argument("--no-build", action="store_true", help="run the chapters, skip jupyter-book")
    p = sub.add_parser("check", help="first-step collapse risk of one prompt (paper §3.8), no full generation")
    p.add_argument("prompt")
    p.add_argument("--concepts", nargs="*", default=[], help="concepts to locate in the prompt, e.g. 'van gogh' notebook")
    p.add_argument("--profile", default="smoke", help="profile giving model, sampler, device (default smoke)")
    p.add_argument("--model", help="override the profile's model (Hub id or folder)")
    p.add_argument("--seeds", nargs="*", type=int, help="seeds (default: the profile's first)")
    p.add_argument("--layers", nargs="*", type=int, help="detector layers (default 9 10; another family's: "
                   "the blocks at their depth)")
    p.add_argument("--threshold", type=float, default=0.010, help="detector threshold (default 0.010)")
    p = sub.add_parser("fix", help="check one prompt at the first step and, if the detector flags it, generate it "
                       "with a remedy that brings the dominated concept back")
    p.add_argument("prompt")
    p.add_argument("--concepts", nargs="*", default=[], help="the prompt's two concepts, e.g. tower ball")
    p.add_argument("--remedy", help="rebalance, attend_excite or weighting (default: the one chapter 13 "
                   "measured best for the profile's world, else rebalance)")
    p.add_argument("--profile", default="smoke", help="profile giving model, sampler, device (default smoke)")
    p.add_argument("--model", help="override the profile's model (Hub id or folder)")
    p.add_argument("--seeds", nargs="*", type=int, help="seeds (default: the profile's first)")
    p.add_argument("--layers", nargs="*", type=int, help="detector layers (default as dvd check)")
    p.add_argument("--threshold", type=float, default=0.010, help="detector threshold (default 0.010)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="a remedy parameter, e.g. -p strength 0.5")
    p.add_argument("--out", default="fixed.png", help="image to write (several seeds: NAME-SEED.png; default fixed.png)")
    p = sub.add_parser("plan", help="what chapters compute under a profile, and its GPU-hours from measured costs "
                       "(expected, and every row ablated)")
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapter names, stems or numbers (default: all)")
    p.add_argument("--profile", default="toy", help="profile name or YAML path (default toy)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="chapter parameter, e.g. -p n_prompts 30 (given to each chapter that has it)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs to price the run on besides one (default 8)")
    p.add_argument("--costs", default="benchmarks/results/gpu.json",
                   help="measured costs (written by benchmarks/gpu.sh; default benchmarks/results/gpu.json)")
    p = sub.add_parser("prefetch", help="compute chapters' work into the run store (sharded under accelerate "
                       "launch -m dvdlib prefetch, or --shard i/N)")
    p.add_argument("chapters", nargs="+", metavar="CHAPTER", help="chapter names, stems or numbers")
    p.add_argument("--profile", default="toy", help="profile name or YAML path (default toy)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="chapter parameter, e.g. -p n_prompts 30 (given to each chapter that has it)")
    p.add_argument("--shard", metavar="i/N", help="compute shard i of N (from 0), e.g. "
                   "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT; default: accelerate's process, else all")
    sub.add_parser("toy", help="a world's own commands, e.g. the toy world's: train, export, sample, render, "
                   "findings (dvd toy --help)", add_help=False)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _world_command(argv[0]) if argv else None
    if command is not None:
        return command(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "book":
        return _book(args)
    if args.command == "check":
        return _check(args)
    if args.command == "fix":
        return _fix(args)
    if args.command == "plan":
        return _plan(args)
    if args.command == "prefetch":
        return _prefetch(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 2


if __name__ == "__main__":
    sys.exit(main())
