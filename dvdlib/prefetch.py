"""Compute chapters' plans into the run store, sharded over processes, GPUs and nodes.

    dvd prefetch 02_dvd_benchmark --profile paper                        # one process
    accelerate launch --num_processes 8 -m dvdlib prefetch 02 --profile paper   # one node, 8 GPUs
    dvd prefetch 06 --profile paper --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT

Each process takes the work (`dvdlib.plan.Work`) whose model, sampler and prompt hash to its index
(`shard_of`): disjoint, deterministic, the same on every node, so no two processes write one key.
The index and count come from ``--shard i/N`` or from accelerate (`accelerate.PartialState`);
nothing waits on another process, so a Slurm job array needs no launcher. Within its shard a
process computes only what the store lacks, through the chapters' own code paths
(`dvdlib.run.Run.finetune`, `dvdlib.generate.generate`, `dvdlib.ablation.Sweep.run`, `dvdlib.dvd.judge_images`,
`dvdlib.triplets.judge_presence`), which batch and write each batch through the store's atomic
writes: a killed process loses at most its batch in flight, and the same command rerun computes
only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import replace

from .plan import FINETUNE, GENERATE, JUDGE, Plan, plan


def shard_of(work, count: int) -> int:
    """The shard (0 … count-1) of a work item: a stable hash of its `dvdlib.plan.Work.shard_key`."""
    return int(hashlib.sha1(work.shard_key.encode()).hexdigest()[:15], 16) % count


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` (i from 0, as Slurm's ``$SLURM_ARRAY_TASK_ID`` with ``--array=0-(N-1)``) → (i, N)."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/N with whole numbers, e.g. 0/8; got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: i must lie in 0..N-1 and N ≥ 1 (Slurm: --array=0-{max(count, 1) - 1})")
    return index, count


def process_shard(shard: str | None = None):
    """(index, count, accelerate state or None): ``shard`` when given, else accelerate's process."""
    if shard is not None:
        return (*parse_shard(shard), None)
    import os

    import torch
    from accelerate import PartialState

    # without CUDA, processes torchrun started (accelerate launch --multi_gpu) join over gloo
    state = PartialState(cpu=os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
                         or not torch.cuda.is_available())
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if state.num_processes != launched:
        raise RuntimeError(f"{launched} processes were launched but accelerate sees {state.num_processes}: "
                           "they would compute the same work; pass --shard i/N instead")
    return state.process_index, state.num_processes, state


def plans_for(chapters, profile: str, params: dict | None = None) -> list[Plan]:
    """The plans of ``chapters``; a parameter goes to each chapter that has it (none: an error)."""
    from .plan import chapter_parameters, chapter_source

    params = dict(params or {})
    sources = [chapter_source(c) for c in chapters]
    known = {s.stem: chapter_parameters(s) for s in sources}
    unused = [k for k in params if not any(k in names for names in known.values())]
    if unused:
        raise ValueError(f"no chapter among {', '.join(known)} has the parameter(s) {', '.join(map(repr, unused))}")
    return [plan(s.stem, profile, {k: v for k, v in params.items() if k in known[s.stem]}) for s in sources]


def prefetch(chapters, profile: str = "toy", params: dict | None = None, shard: str | None = None,
             log=print) -> dict:
    """Compute this process's shard of the chapters' plans into the store; a summary dict.

    Work that depends on results (`dvdlib.plan.Work.provisional`: chapter 06's ablations of the rows
    collapsed before ablation, its pairs of heads) is planned once a round has stored what decides
    it: the plans are made again after each round, until a round finds nothing new to compute."""
    index, count, state = process_shard(shard)
    device = None
    if state is not None and state.num_processes > 1 and str(state.device) != "cpu":
        device = str(state.device)  # this process's GPU (accelerate's local rank)
    computed, tried, rounds = 0, set(), 0
    while True:
        plans = plans_for(chapters, profile, params)
        mine: dict[str, tuple] = {}
        planned = 0
        for p in plans:
            if device and p.profile.device != "cpu":
                p.run.profile = replace(p.run.profile, device=device)
            for w in p.items:
                planned += 1
                if shard_of(w, count) == index and w.key not in mine:
                    mine[w.key] = (w, p)
        todo = [(w, p) for w, p in mine.values() if not w.provisional and not w.done(p.profile.store)]
        waiting = sum(w.provisional and not w.done(p.profile.store) for w, p in mine.values())
        log(f"[shard {index}/{count}] {len(mine):,} of {planned:,} work items are this shard's; "
            f"{len(todo):,} to compute ({sum(w.kind == FINETUNE for w, _ in todo):,} fine-tunes, "
            f"{sum(w.kind == GENERATE for w, _ in todo):,} generations, "
            f"{sum(w.kind == JUDGE for w, _ in todo):,} judge answer sets)"
            + (f"; {waiting:,} wait on results" if waiting else ""))
        if not todo:
            break
        again = [w.key for w, _ in todo if w.key in tried]
        if again:
            raise RuntimeError(f"computed but still not stored: {len(again)} work items, e.g. {again[0]}")
        tried |= {w.key for w, _ in todo}
        _finetune(todo, log, index, count)
        _generate(todo, log, index, count)
        _judge(todo, mine, log, index, count)
        computed, rounds = computed + len(todo), rounds + 1
    if waiting:
        log(f"[shard {index}/{count}] {waiting:,} work items still wait on results no round of this shard made")
    return {"shard": index, "shards": count, "items": len(mine), "computed": computed, "rounds": rounds,
            "waiting": waiting}


def _finetune(todo, log, index, count) -> None:
    """The shard's missing fine-tunes, through the chapters' own `dvdlib.run.Run.finetune`, on the
    images and recipe the count recorded (`dvdlib.plan.Plan.trainings`); before any generation
    with them (a fine-tune and its work share a shard)."""
    for w, p in todo:
        if w.kind == FINETUNE:
            images, recipe = p.trainings[w.key]
            p.run.finetune(images, recipe)
            log(f"[shard {index}/{count}] fine-tune {w.key} done ({len(images)} images, {recipe.steps} steps)")


def _generate(todo, log, index, count) -> None:
    """The shard's missing generations, model by model, each group through the chapters' code."""
    import pandas as pd

    from .ablation import Job, Sweep, from_key
    from .generate import generate
    from .store import Store, model_key

    by_model = defaultdict(list)
    for w, p in todo:
        if w.kind == GENERATE:
            by_model[w.model, id(p.run)].append((w, p))
    for (model, _), works in by_model.items():
        run, P = works[0][1].run, works[0][1].profile
        if any(w.row for w, _ in works):  # a remedy's images (chapter 13), made by the remedy's own module
            from .remedies.compare import prefetch_images

            made = prefetch_images(run, [w for w, _ in works if w.row], model)
            log(f"[shard {index}/{count}] {model}: {made:,} remedy images done")
            works = [(w, p) for w, p in works if not w.row]
            if not works:
                continue
        pipe, key = run.load(model), model_key(model)
        groups = defaultdict(lambda: defaultdict(list))  # (settings, options, iv) → prompt → seeds
        for w, _ in works:
            groups[w.settings, w.options, w.intervention][w.prompt].append(w.seed)
        # whole runs that record attention first: they keep the images and norms others read
        for (settings, options, iv), seeds_of in sorted(groups.items(), key=lambda g: _records_less(g[0][1])):
            settings, options = json.loads(settings), json.loads(options)
            by_seeds = defaultdict(list)
            for prompt, seeds in seeds_of.items():
                by_seeds[tuple(sorted(seeds))].append(prompt)
            for seeds, prompts in by_seeds.items():
                if iv:
                    sampler = {k: v for k, v in settings.items() if k != "intervention"}
                    sweep = Sweep(pipe, pd.DataFrame({"case_num": prompts, "prompt": prompts}), seeds, root=P.store,
                                  model=key, sampler=sampler, batch_size=P.batch_size)
                    job = Job(from_key(json.loads(iv)), tuple(prompts))
                    sweep.run([job], baseline=False, progress=False)
                else:
                    generate(pipe, prompts, seeds, store=Store(P.store, key, settings), batch_size=P.batch_size,
                             progress=False, **{k: v for k, v in options.items() if v is not None})
                log(f"[shard {index}/{count}] {model}: {len(prompts) * len(seeds):,} generations done"
                    + (" (ablated)" if iv else ""))
        if model != P.model:
            del pipe


def _records_less(options: str) -> tuple[bool, bool]:
    """Sort key of a generation's options: whole runs recording attention first, then other whole
    runs, then runs stopped early (`dvdlib.generate`: a whole run keeps its image and norms)."""
    o = json.loads(options)
    return o.get("until_step") is not None, not o.get("attention")


def _judge(todo, mine, log, index, count) -> None:
    """The shard's missing judge answers: each prompt-set row with all its planned seeds in one
    call, as the chapters ask (`dvdlib.dvd.judge_images`, `dvdlib.triplets.judge_presence`)."""
    import pandas as pd

    from .dvd import judge_images
    from .store import Store, model_key
    from .triplets import judge_presence

    wanted = {(w.store, w.asks, w.row) for w, _ in todo if w.kind == JUDGE}
    if not wanted:
        return
    seeds_of, groups = defaultdict(set), defaultdict(dict)
    for w, p in mine.values():
        if w.kind == JUDGE and (w.store, w.asks, w.row) in wanted:
            seeds_of[w.store, w.asks, w.row].add(w.seed)
            groups[w.store, w.asks, w.model, w.settings, id(p.run)][w.row] = p
    for (store_dir, asks, model, settings, _), rows in groups.items():
        run = next(iter(rows.values())).run
        store = Store(run.profile.store, model_key(model), json.loads(settings))
        by_seeds = defaultdict(list)
        for row in rows:
            by_seeds[tuple(sorted(seeds_of[store_dir, asks, row]))].append(json.loads(row))
        for seeds, table in by_seeds.items():
            table = pd.DataFrame(table)
            if asks == "dvd":
                judge_images(table, list(seeds), store, run.judge, run.questions)
            else:
                judge_presence(table, list(seeds), store, run.judge, run.questions)
            log(f"[shard {index}/{count}] judge: {len(table):,} rows × {len(seeds)} seeds answered ({model})")
