"""Remedies compared on the same prompts, seeds and judge (beyond the paper, whose §3.8 has one
remedy: the dominant concept replaced by its category word).

Each remedy of `NAMES` (``none``, the plain image; ``replacement``, paper §3.8; Attend-and-Excite,
Chefer et al. 2023; early attention rebalancing; prompt weighting) generates every prompt × seed
into a store of its own, keyed by the profile's sampler and the remedy's key
(`dvdlib.remedies.fix.remedy_store`), with the seconds each image took in its record; the
profile's judge is asked the DvD questions about it (`dvdlib.dvd.judge_images`; after replacement
about the category word the prompt holds, as chapter 08 asks). A remedy run twice computes
nothing. `dvdlib.run.Run.remedy` computes this, `dvdlib.plan.Count.remedy` counts it.

Per remedy (`summary`): the dominated concept's presence (share of images with at least
`PRESENT_AT` of its five Yes, as `dvdlib.replace.object_return` counts it), **both present** (the
dominated concept present and the dominant one still there: the collapse fixed, not swapped; after
replacement, the category word), the mean DvD Score and the seconds per image. Against ``none``
and against ``replacement`` (`contrasts`): differences with 95% intervals over concepts (the
prompt's dominant concept is the cluster) and the book's verdict (`dvdlib.stats.decide`). Detect,
then fix (`end_to_end`): the detector's first-step Focus Score decides which prompts get the remedy.

On chapter 12's twins (`twin_judged`, `twin_contrasts`): every remedy on each twin, its new token
the dominant concept; each difference paired over the twin pairs (`dvdlib.twins.paired`), the pair
the unit. On balanced prompts (`balanced_contrasts`): whether a remedy lowers the share with both
present where nothing collapsed. The defaults were chosen on other twins (`dvdlib.remedies.tuning`).
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..replace import PRESENT_AT
from .fix import remedy_store

#: the remedies compared, in the order the page shows them
NAMES = ("none", "replacement", "attend_excite", "rebalance", "weighting")

#: how the page names each
LABELS = {"none": "none", "replacement": "replacement (§3.8)", "attend_excite": "Attend-and-Excite",
          "rebalance": "rebalance", "weighting": "weighting"}

#: each remedy's module in `dvdlib.remedies` (``none`` is `dvdlib.remedies.plain`)
MODULES = {"none": "plain", "replacement": "replacement", "attend_excite": "attend_excite",
           "rebalance": "rebalance", "weighting": "weighting"}

#: the remedies tried on balanced prompts: not replacement, which needs a dominant concept's
#: category word (a rigid concept's), and a balanced prompt's two flexible concepts have none
BALANCED_NAMES = tuple(n for n in NAMES if n != "replacement")

#: the twins the remedies are scored on: those made to dominate (chapter 12), the memorized most
TWIN_ARMS = ("rigid", "memorized")

#: columns of a judged table (one row per prompt-set row, seed and remedy)
COLUMNS = ["remedy", "case_num", "content_type", "concept", "nm_word", "prompt", "seed", "c", "n", "dvd", "seconds"]


def module(name: str):
    """The module of remedy ``name`` (one of `NAMES`)."""
    if name not in MODULES:
        raise ValueError(f"unknown remedy {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"{__package__}.{MODULES[name]}")


def parameters(rebalance_strength, rebalance_boost, rebalance_steps, rebalance_layers, ae_attn_res, ae_scale_factor,
               ae_max_iter_to_alter, weighting_weight) -> dict[str, dict]:
    """The chapter's named parameters as each remedy's own (None: the module's default)."""
    given = {"rebalance": {"strength": rebalance_strength, "boost": rebalance_boost, "steps": rebalance_steps,
                           "layers": rebalance_layers},
             "attend_excite": {"attn_res": ae_attn_res, "scale_factor": ae_scale_factor,
                               "max_iter_to_alter": ae_max_iter_to_alter},
             "weighting": {"weight": weighting_weight}}
    out = {name: {k: v for k, v in p.items() if v is not None} for name, p in given.items()}
    if "layers" in out["rebalance"] and out["rebalance"]["layers"] != "all":
        out["rebalance"]["layers"] = [int(v) for v in out["rebalance"]["layers"]]
    return {"none": {}, "replacement": {}, **out}


def with_words(name: str, params: dict, rows: pd.DataFrame, world_words: dict) -> dict:
    """``params`` of remedy ``name``; replacement's with the category word of each row's dominant
    concept (`dvdlib.remedies.replacement.words_for`)."""
    params = dict(params or {})
    if name == "replacement" and "words" not in params:
        from .replacement import words_for

        params["words"] = dict(zip(dominant_words(rows), words_for(rows, world_words)))
    return params


def asked_rows(name: str, rows: pd.DataFrame, params: dict) -> pd.DataFrame:
    """The rows the judge is asked about: after replacement, its concept questions ask about the
    category word (the prompt in the store stays the original, the remedy's key)."""
    if name != "replacement":
        return rows
    words = params["words"]
    return rows.assign(content=[words[c] for c in dominant_words(rows)])


def store_of(run, name: str, params: dict, model=None):
    """The store of remedy ``name``'s images under ``params`` with ``model`` (default the profile's;
    `dvdlib.remedies.fix.remedy_store`)."""
    return remedy_store(run, module(name).key(**params), model)


def dominant_words(rows: pd.DataFrame) -> pd.Series:
    """The words a remedy treats as each row's dominant concept: ``dominant`` where the rows name
    it apart from the concept the judge is asked about (a twin's new token, whose judged concept is
    its category word), else ``content``."""
    return rows["dominant"] if "dominant" in rows else rows["content"]


def _generate(run, store, name: str, params: dict, rows: pd.DataFrame, todo, model=None) -> None:
    """Generate the missing (prompt, seed) pairs ``todo`` with the remedy on ``model`` (default the
    profile's), grouped by their missing seeds, timing each call; each image's record keeps its
    seconds (the call's mean)."""
    first = rows.assign(dominant=dominant_words(rows)).drop_duplicates("prompt").set_index("prompt")
    pipe = run.load(model)
    by_prompt: dict = {}
    for prompt, seed in todo:
        by_prompt.setdefault(prompt, []).append(seed)
    groups: dict = {}
    for prompt, seeds in by_prompt.items():
        groups.setdefault(tuple(seeds), []).append(prompt)
    m = module(name)
    for seeds, prompts in groups.items():
        started = time.perf_counter()
        images = m.generate(pipe, prompts, list(seeds), run.profile.sampler(),
                            dominant=list(first.loc[prompts, "dominant"]), dominated=list(first.loc[prompts, "nm_word"]),
                            **params)
        seconds = (time.perf_counter() - started) / len(images)
        jobs = [(p, s) for p in prompts for s in seeds]
        for (p, s), image in zip(jobs, images):
            store.save(p, s, image=image, seconds=seconds, batch_size=len(images), remedy=name)


def remedy(run, rows: pd.DataFrame, seeds, name: str, params: dict | None = None, model=None) -> pd.DataFrame:
    """Remedy ``name`` (with ``params``) on every row × seed, through ``run`` with ``model`` (default
    the profile's; a twin, `dvdlib.finetune.Tuned`): what its store lacks is generated (timed), the
    rest read; then judged with the profile's judge (answers stored).
    One row per prompt-set row and seed (`COLUMNS`: ``concept`` the dominant concept, as the
    prompt had it; ``c`` about it or, after replacement, its category word; ``n`` the dominated)."""
    from ..dvd import judge_images

    params = with_words(name, params, rows, run.world.category_words())
    why = module(name).applies(run.pipe)
    if why:
        raise ValueError(f"remedy {name!r} does not apply to {run.profile.model}: {why}")
    store, seeds = store_of(run, name, params, model), [int(s) for s in seeds]
    jobs = [(p, s) for p in dict.fromkeys(rows["prompt"]) for s in seeds]
    todo = store.todo(jobs, what=f"images under {name}")
    if not store.frozen:  # an image stored untimed (by `dvd fix`) is made again, timed: the same image
        todo += [(p, s) for p, s in jobs if (p, s) not in todo and "seconds" not in store.record(p, s)]
    if todo:
        _generate(run, store, name, params, rows, todo, model)
    judged = judge_images(asked_rows(name, rows, params), seeds, store, run.judge, run.questions)
    seconds = [store.record(p, s).get("seconds", np.nan) for p, s in zip(judged["prompt"], judged["seed"])]
    keep = rows.set_index("case_num")[["content", "nm_word"]]
    return judged.assign(remedy=name, concept=list(keep.loc[judged["case_num"], "content"]),
                         nm_word=list(keep.loc[judged["case_num"], "nm_word"]), seconds=seconds)[COLUMNS]


def prefetch_images(run, works, model=None) -> int:
    """Generate the remedy images that `dvdlib.plan.Count.remedy` counted (`dvdlib.plan.Work` whose
    ``row`` names the remedy, its parameters and the prompt's concepts) with ``model`` (default the
    profile's) into their stores, as `remedy` would, timed; how many were made (`dvdlib.prefetch`)."""
    groups: dict = {}
    for w in works:
        groups.setdefault(w.row, []).append((w.prompt, int(w.seed)))
    made = 0
    for row, jobs in groups.items():
        spec = json.loads(row)
        rows = pd.DataFrame({"prompt": [spec["prompt"]], "content": [spec["dominant"]], "nm_word": [spec["dominated"]]})
        store = store_of(run, spec["remedy"], spec["params"], model)
        todo = store.todo(jobs, what=f"images under {spec['remedy']}")
        if todo:
            _generate(run, store, spec["remedy"], spec["params"], rows, todo, model)
            made += len(todo)
    return made


# ------------------------------------------------------------------------------ measures


def measured(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """``judged`` with ``dominated`` (its Yes count n ≥ ``present_at``), ``dominant`` (c ≥
    ``present_at``) and ``both`` per image."""
    dominated, dominant = judged["n"] >= present_at, judged["c"] >= present_at
    return judged.assign(dominated=dominated, dominant=dominant, both=dominated & dominant)


def summary(judged: pd.DataFrame, present_at: int = PRESENT_AT, cluster: str = "concept") -> pd.DataFrame:
    """Per remedy (in `NAMES`' order): images, the dominated concept's presence and both concepts'
    presence (shares, each ``cluster`` weighing the same, with the 95% interval over them: the
    dominant concept, or a twin's ``pair``), the mean DvD Score and the seconds per image."""
    from ..stats import cluster_mean

    rows = []
    for name, g in measured(judged, present_at).groupby("remedy", sort=False):
        dominated = cluster_mean(g["dominated"], g[cluster], bounds=(0, 1))
        both = cluster_mean(g["both"], g[cluster], bounds=(0, 1))
        rows.append({"remedy": name, "images": len(g), "clusters": g[cluster].nunique(),
                     "dominated": dominated["value"], "dominated_ci": dominated["ci"],
                     "both": both["value"], "both_ci": both["ci"], "dvd": float(g["dvd"].mean()),
                     "seconds": float(g["seconds"].mean())})
    out = pd.DataFrame(rows)
    order = [n for n in NAMES if n in set(out["remedy"])]
    return out.set_index("remedy").loc[order].reset_index()


#: the book's verdicts, as a comparison of two remedies reads them
WORDS = {"reproduced": "higher", "not reproduced": "lower"}


def _verdict(result: dict, unit: str = "concepts") -> str:
    from ..stats import decide

    said = decide(result, direction=1, unit=unit)
    return WORDS.get(said, said)


def contrast(judged: pd.DataFrame, a: str, b: str, measure: str, present_at: int = PRESENT_AT) -> dict:
    """Remedy ``a`` − remedy ``b`` in ``measure`` (``both`` or ``dominated``): the difference of
    their shares with its 95% interval over concepts (`dvdlib.stats.difference`, the dominant
    concept as cluster on both sides) and the book's verdict ("higher", "lower", "inconclusive",
    "underpowered (n concepts)")."""
    from ..stats import difference, within

    m = measured(judged, present_at)
    A, B = m[m.remedy == a], m[m.remedy == b]
    result = difference(A[measure].astype(float), B[measure].astype(float), clusters=(list(A.concept), list(B.concept)))
    result["ci"] = within(result["ci"], (-1.0, 1.0))  # a difference of two shares
    return {**result, "verdict": _verdict(result)}


def contrasts(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Per remedy but ``none``: both present and the dominated concept's presence against ``none``,
    and both present against ``replacement`` (the paper's remedy; not for replacement itself), each
    a difference with its interval and verdict; ``works``: whether it beats replacement on both
    present by the book's rule."""
    from ..stats import interval_text

    names = [n for n in NAMES if n in set(judged.remedy) and n != "none"]
    rows = []
    for name in names:
        row = {"remedy": name}
        for col, (b, measure) in {"both_vs_none": ("none", "both"), "dominated_vs_none": ("none", "dominated"),
                                  "both_vs_replacement": ("replacement", "both")}.items():
            if name == b or b not in set(judged.remedy):
                row[col], row[f"{col}_verdict"], row[f"{col}_result"] = "—", "—", None
                continue
            r = contrast(judged, name, b, measure, present_at)
            row[col], row[f"{col}_verdict"], row[f"{col}_result"] = interval_text(r, "{:+.2f}"), r["verdict"], r
        row["works"] = row["both_vs_replacement_verdict"] == "higher"
        rows.append(row)
    return pd.DataFrame(rows)


def contrast_table(table: pd.DataFrame) -> pd.DataFrame:
    """`contrasts` as the page shows it: a row per remedy, each difference with its verdict."""
    shown = table.assign(remedy=table.remedy.map(LABELS)).set_index("remedy")
    cols = {"both_vs_none": "both present − none", "both_vs_none_verdict": "verdict",
            "dominated_vs_none": "dominated present − none", "dominated_vs_none_verdict": "verdict ",
            "both_vs_replacement": "both present − replacement", "both_vs_replacement_verdict": "verdict  "}
    return shown[list(cols)].rename(columns=cols)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """`summary` as the page shows it: shares with their intervals, DvD, seconds per image."""
    def share(v, ci):
        return "—" if v is None else f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    return pd.DataFrame({"remedy": table.remedy.map(LABELS), "images": table.images,
                         "dominated present": [share(v, c) for v, c in zip(table.dominated, table.dominated_ci)],
                         "both present": [share(v, c) for v, c in zip(table.both, table.both_ci)],
                         "mean DvD": table.dvd.round(1), "seconds per image": table.seconds.round(3)}).set_index("remedy")


# ------------------------------------------------------------------------------ detect, then fix


def detector_threshold(threshold, profile, out_dir: str | Path = "book") -> tuple[float, str]:
    """The detector's threshold and where it comes from: a number as given; ``"matched"``, the
    threshold chapter 08 matched to the paper's control rate on this profile's model (its results
    JSON under ``out_dir``), else the paper's 0.010 (paper §3.8) where chapter 08 has not run."""
    from ..detect import THRESHOLD

    if threshold != "matched":
        return float(threshold), f"{float(threshold):.3g}, as given"
    path = Path(out_dir) / "results" / "08_detection_replacement.json"
    if path.is_file():
        data = json.loads(path.read_text())
        same = data.get("profile", {}).get("name") == profile.name and data.get("profile", {}).get("model") == profile.model
        found = [r.get("threshold") for r in data.get("results", []) if r.get("key") == "det_matched"]
        if same and found and found[0] is not None:
            return float(found[0]), (f"{float(found[0]):.3g}, chapter 08's, matched to the paper's control rate "
                                     "(33.67% flagged) on this model")
    return THRESHOLD, f"{THRESHOLD:.3f}, the paper's: chapter 08 has matched none on this model in this book"


def detector_scores(samples, tokenizer, layers, detector_layers, combine: str = "mean") -> pd.Series:
    """Per prompt, the first step's Focus Score in ``detector_layers`` combined as the detector
    combines them (`dvdlib.detect.combined_scores`), each prompt's seeds averaged."""
    from ..detect import combined_scores
    from ..focus import focus_table, per_prompt

    return combined_scores(per_prompt(focus_table(samples, tokenizer, layers)), detector_layers, combine)


def end_to_end(judged: pd.DataFrame, flagged: dict, steps: int, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Detect, then fix, over all prompts: per remedy but ``none``, the share of rows flagged
    (``flagged``: prompt → bool), both-present rates (each concept weighing the same, with its
    interval) when only the flagged prompts get the remedy, when all do and when none does, and
    the mean seconds per image of each; the detector's own cost, one of the schedule's ``steps``
    per image, is counted as the plain image's seconds / ``steps``."""
    from ..stats import cluster_mean

    m = measured(judged, present_at)
    plain = m[m.remedy == "none"].set_index(["case_num", "seed"]).sort_index()
    detector = float(plain.seconds.mean()) / steps
    is_flagged = np.array([bool(flagged[p]) for p in plain.prompt])
    rows = []
    for name in [n for n in NAMES if n in set(m.remedy) and n != "none"]:
        fixed = m[m.remedy == name].set_index(["case_num", "seed"]).loc[plain.index]
        mixed = np.where(is_flagged, fixed.both, plain.both)
        seconds = np.where(is_flagged, fixed.seconds, plain.seconds)
        rates = {how: cluster_mean(both.astype(float), plain.concept, bounds=(0, 1)) for how, both in
                 (("flagged", mixed), ("all", fixed.both.values), ("none", plain.both.values))}
        rows.append({"remedy": name, "flagged": float(is_flagged.mean()),
                     **{f"both_{how}": r["value"] for how, r in rates.items()},
                     **{f"both_{how}_ci": r["ci"] for how, r in rates.items()},
                     "seconds_flagged": float(np.nanmean(seconds)) + detector, "seconds_all": float(fixed.seconds.mean()),
                     "seconds_none": float(plain.seconds.mean())})
    return pd.DataFrame(rows)


def end_to_end_table(table: pd.DataFrame) -> pd.DataFrame:
    """`end_to_end` as the page shows it."""
    def share(v, ci):
        return f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")

    out = pd.DataFrame({"remedy": table.remedy.map(LABELS)})
    for how, label in (("flagged", "fix flagged only"), ("all", "fix all"), ("none", "fix none")):
        out[f"both present, {label}"] = [share(v, c) for v, c in zip(table[f"both_{how}"], table[f"both_{how}_ci"])]
        out[f"s/image, {label}"] = table[f"seconds_{how}"].round(3)
    return out.set_index("remedy")


# ------------------------------------------------------------------------------ on the twins, on balanced prompts


def twin_rows(prompts: pd.DataFrame, token: str) -> pd.DataFrame:
    """The twins' test prompts as the remedies take them: the new ``token`` is the dominant concept
    the remedy acts on (``dominant``), its category word (``content``) the one the judge is asked
    about, as chapter 12 asks."""
    return prompts.assign(dominant=token)


def twin_judged(x, models: dict, rows: pd.DataFrame, seeds, params: dict, names=NAMES) -> pd.DataFrame:
    """Each remedy of ``names`` (with ``params[name]``) on every twin of ``models`` ({(pair, arm):
    fine-tune}), through the executor ``x``, as one table with each row's ``pair`` and ``arm``."""
    return pd.concat([x.remedy(rows, seeds, name, params[name], model=model).assign(pair=pair, arm=arm)
                      for (pair, arm), model in models.items() for name in names], ignore_index=True)


def paired_contrast(judged: pd.DataFrame, a: str, b: str, measure: str = "both", present_at: int = PRESENT_AT) -> dict:
    """Remedy ``a`` − remedy ``b`` in ``measure`` on twins, paired: each pair's share under ``a``
    minus its share under ``b`` (the same twin, prompts and seeds), its interval over the pairs
    (`dvdlib.twins.paired`) and the book's verdict, the pair as the unit."""
    from ..stats import within
    from ..twins import paired

    m = measured(judged[judged.remedy.isin([a, b])], present_at)
    result = paired(m.assign(value=m[measure].astype(float)), a, b, arm="remedy")
    result["ci"] = within(result["ci"], (-1.0, 1.0))
    return {**result, "verdict": _verdict(result, unit="pairs")}


def twin_contrasts(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """Per arm and remedy but ``none``: both present against ``none`` and against ``replacement``
    (not for replacement itself), each paired over the twin pairs, with its verdict; ``works``:
    beats replacement by the rule."""
    from ..stats import interval_text

    rows = []
    for arm, g in judged.groupby("arm", sort=False):
        for name in [n for n in NAMES if n in set(g.remedy) and n != "none"]:
            row = {"arm": arm, "remedy": name}
            for b in ("none", "replacement"):
                if name == b:
                    row[f"vs_{b}"], row[f"vs_{b}_verdict"], row[f"vs_{b}_result"] = "—", "—", None
                    continue
                r = paired_contrast(g, name, b, "both", present_at)
                row[f"vs_{b}"], row[f"vs_{b}_verdict"], row[f"vs_{b}_result"] = (
                    f"{interval_text(r, '{:+.2f}')} over {r['n']} pairs", r["verdict"], r)
            row["works"] = row["vs_replacement_verdict"] == "higher"
            rows.append(row)
    return pd.DataFrame(rows)


def twin_summary(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """`summary` per arm, each pair weighing the same."""
    return pd.concat([summary(g, present_at, cluster="pair").assign(arm=arm)
                      for arm, g in judged.groupby("arm", sort=False)], ignore_index=True)


def twin_table(summary_: pd.DataFrame, versus: pd.DataFrame) -> pd.DataFrame:
    """The twins as the page shows them: per arm and remedy, both present (interval over pairs)
    and the paired differences against none and against replacement with their verdicts."""
    keyed = versus.set_index(["arm", "remedy"])

    def said(arm, name, b):
        if (arm, name) not in keyed.index or keyed.at[(arm, name), f"vs_{b}"] == "—":
            return "—"
        return f"{keyed.at[(arm, name), f'vs_{b}']}: {keyed.at[(arm, name), f'vs_{b}_verdict']}"

    return pd.DataFrame({"twin": summary_.arm, "remedy": summary_.remedy.map(LABELS),
                         "both present": [_share(v, c) for v, c in zip(summary_.both, summary_.both_ci)],
                         "− none": [said(a, n, "none") for a, n in zip(summary_.arm, summary_.remedy)],
                         "− replacement": [said(a, n, "replacement") for a, n in zip(summary_.arm, summary_.remedy)],
                         }).set_index(["twin", "remedy"])


def twin_part(twin, present_at: int = PRESENT_AT):
    """The twins' analyses (``twin``: the chapter's twin work, None where the profile runs none):
    `twin_summary`, `twin_contrasts` and `twin_table`, or None."""
    from types import SimpleNamespace

    if twin is None:
        return None
    summary_, versus = twin_summary(twin.judged, present_at), twin_contrasts(twin.judged, present_at)
    return SimpleNamespace(summary=summary_, versus=versus, table=twin_table(summary_, versus), n_prompts=len(twin.rows),
                           source=None)


def snapshot_twin_part(folder, chapter: str):
    """The twin part of a findings snapshot (``folder``, written by `dvd toy findings`, whose run of
    ``chapter`` compared the remedies on the twins at the snapshot's scale), read back from its
    results rows as `twin_part` gives it; ``source`` says where it comes from. None without a
    folder. Its numbers are the snapshot's, not this run's: `add_twin_results` is not for them."""
    from types import SimpleNamespace

    if not folder:
        return None
    index, results = Path(folder) / "snapshot.json", Path(folder) / "results" / f"{chapter}.json"
    if not (index.is_file() and results.is_file()):
        raise FileNotFoundError(f"no findings snapshot of {chapter} in {folder}: make it with `dvd toy findings`")
    index = json.loads(index.read_text(encoding="utf-8"))
    rows = {row["key"]: row for row in json.loads(results.read_text(encoding="utf-8"))["results"]}
    info = index["chapters"].get(chapter, {})
    summary_, versus = [], []
    for arm in TWIN_ARMS:
        first = rows.get(TWIN_KEYS["replacement", "none"] + arm)
        if first is None:
            continue
        for name in NAMES:
            both, dominated = rows[f"rem_twin_both_{name}_{arm}"], rows.get(f"rem_twin_dominated_{name}_{arm}", {})
            summary_.append({"remedy": name, "arm": arm, "images": both["n"], "clusters": first["n_clusters"],
                             "both": both["value"], "both_ci": both["ci"], "dominated": dominated.get("value"),
                             "dominated_ci": dominated.get("ci")})
            if name != "none":
                row = {"arm": arm, "remedy": name}
                for b in ("none", "replacement"):
                    key = TWIN_KEYS.get((name, b))  # none for replacement against itself
                    said = rows.get(key + arm) if key else None
                    text, verdict = said["this run"].rsplit(": ", 1) if said else ("—", "—")
                    row.update({f"vs_{b}": text, f"vs_{b}_verdict": verdict, f"vs_{b}_result": said})
                versus.append({**row, "works": row["vs_replacement_verdict"] == "higher"})
    if not summary_:
        raise ValueError(f"the findings snapshot in {folder} has no twin rows for {chapter}: rerun "
                         f"`dvd toy findings --only {chapter[:2]}`")
    summary_, versus = pd.DataFrame(summary_), pd.DataFrame(versus)
    given = info.get("parameters", {})
    how = (f"this chapter run by `dvd toy findings` on the toy model at step {index.get('model', {}).get('step')}, "
           f"with {given.get('twin_pairs')} pairs of the {' and '.join(given.get('twin_arms', []))} twins × "
           f"{given.get('twin_prompts')} prompts")
    return SimpleNamespace(summary=summary_, versus=versus, table=twin_table(summary_, versus), n_prompts=None,
                           source=f"the findings snapshot's (`{Path(folder).as_posix()}`)", how=how,
                           pairs=int(summary_.clusters.max()))


def twin_scope(twin, part=None) -> str:
    """What the twin part compares (``twin``: the chapter's twin work; ``part``: what the page
    shows, `twin_part` or `snapshot_twin_part`), or why this run has none."""
    if twin is None and part is not None:
        return (f"This run compares no twins (the profile's `scales.remedies` sets none, so this chapter need not wait "
                f"for chapter 12's fine-tunes). The twin table and figure below are {part.source}, not this run's: "
                f"{part.how}. Chapter 09 reads them as claims.")
    if twin is None:
        return ("This profile runs no twins for this chapter (its `scales.remedies` sets none; chapter 12's twins on "
                "Stable Diffusion need a folder of dog photos), so the remedies are compared on the benchmark alone.")
    d = twin.design
    pairs = sorted(set(d.pair))
    others = ", ".join(dict.fromkeys(twin.rows.nm_word))
    text = (f"Twins: pairs {pairs[0]}–{pairs[-1]} of chapter 12's design ({len(pairs)} pairs; the "
            f"{' and '.join(dict.fromkeys(d.arm))} arm{'s' * (d.arm.nunique() > 1)}), each read from the store where "
            f"chapter 12 trained it; {len(twin.rows)} of their test prompts (the new token `{twin.rows.dominant.iloc[0]}` "
            f"beside {others}), seed {', '.join(map(str, twin.seeds))}. Replacement puts the twins' category word, "
            f"`{twin.recipe.class_prompt}`, for the new token.")
    return text


def balanced_scope(rows, seeds) -> str:
    """What the balanced part compares, or why this run has none."""
    if rows is None:
        return "This run compares no balanced prompts (the profile's `scales.remedies` sets none)."
    return (f"Balanced prompts: {len(rows)} rows of the balanced set (two flexible concepts that compose), seed "
            f"{', '.join(map(str, seeds))}. Each remedy treats the row's first concept as the one to lower; the "
            "question is whether a remedy applied where nothing collapsed lowers the share with both present.")


#: the results key of each paired contrast on the twins (remedy, against), the arm appended
#: (`dvdlib.chapters.REMEDIES`' keys, which `dvdlib.findings` reads)
TWIN_KEYS = {("replacement", "none"): "rem_twin_vs_none_replacement_",
             ("attend_excite", "none"): "rem_twin_vs_none_attend_excite_",
             ("rebalance", "none"): "rem_twin_vs_none_rebalance_",
             ("weighting", "none"): "rem_twin_vs_none_weighting_",
             ("attend_excite", "replacement"): "rem_twin_vs_replacement_attend_excite_",
             ("rebalance", "replacement"): "rem_twin_vs_replacement_rebalance_",
             ("weighting", "replacement"): "rem_twin_vs_replacement_weighting_"}

#: how a remedy against the plain images reads on prompts that did not collapse
HARM = {"higher": "helps", "lower": "harms", "inconclusive": "harm not shown (the interval includes 0)"}


def balanced_contrasts(judged: pd.DataFrame, present_at: int = PRESENT_AT) -> pd.DataFrame:
    """On prompts that were fine (the balanced set): per remedy but ``none``, both present under
    the remedy − under none, interval over the rows' first concepts, and whether it harms them."""
    from ..stats import interval_text

    rows = []
    for name in [n for n in NAMES if n in set(judged.remedy) and n != "none"]:
        r = contrast(judged, name, "none", "both", present_at)
        rows.append({"remedy": name, "difference": interval_text(r, "{:+.2f}"),
                     "reads": HARM.get(r["verdict"], r["verdict"]), "result": r})
    return pd.DataFrame(rows)


def balanced_table(table: pd.DataFrame) -> pd.DataFrame:
    """`balanced_contrasts` as the page shows it."""
    return pd.DataFrame({"remedy": table.remedy.map(LABELS), "both present − none": table.difference,
                         "reads": table.reads}).set_index("remedy")


# ------------------------------------------------------------------------------ figures


def _both_axes(ax, table: pd.DataFrame, unit: str = "concepts") -> None:
    """Both present (filled) and the dominated concept present (open) per remedy of ``table``
    (`summary`), each with its 95% interval over ``unit``, on ``ax``."""
    y = np.arange(len(table))[::-1]
    for offset, col, style, label in ((0.12, "both", "o", "both present"), (-0.12, "dominated", "s", "dominated present")):
        values = np.array([np.nan if v is None else v for v in table[col]], float)
        err = np.array([[v - c[0], c[1] - v] if c else [0, 0] for v, c in zip(values, table[f"{col}_ci"])]).T
        ax.errorbar(values, y + offset, xerr=err, fmt=style, capsize=3, label=label,
                    mfc="C0" if col == "both" else "white", color="C0" if col == "both" else "C1")
    ax.set_yticks(y, [LABELS[n] for n in table.remedy])
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel(f"share of images (95% interval over {unit})")


def both_figure(table: pd.DataFrame, title: str = ""):
    """Both concepts present (filled) and the dominated concept present (open) per remedy, each
    with its 95% interval over concepts."""
    import matplotlib.pyplot as plt

    from ..plots import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    _both_axes(ax, table)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


def twin_figure(summary_: pd.DataFrame, title: str = ""):
    """`both_figure` for the twins, one panel per arm, intervals over the pairs."""
    import matplotlib.pyplot as plt

    from ..plots import use_style

    use_style()
    arms = list(dict.fromkeys(summary_.arm))
    fig, axes = plt.subplots(1, len(arms), figsize=(8, 3.4), sharey=True, squeeze=False)
    for ax, arm in zip(axes[0], arms):
        part = summary_[summary_.arm == arm]
        _both_axes(ax, part, f"{int(part.clusters.max())} pairs")
        ax.set_title(f"{arm} twins", fontsize=10)
    axes[0][0].legend(loc="upper center", bbox_to_anchor=(0.5 * len(arms), -0.28), ncol=2, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def cost_figure(table: pd.DataFrame, e2e: pd.DataFrame, title: str = ""):
    """Cost against benefit: seconds per image (log scale) against both present, per remedy on
    every prompt (filled) and on the flagged prompts only (open)."""
    import matplotlib.pyplot as plt

    from ..plots import use_style

    use_style()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, row in enumerate(table.itertuples()):
        ax.plot(row.seconds, row.both, "o", color=f"C{i}", label=LABELS[row.remedy])
        flagged = e2e[e2e.remedy == row.remedy]
        if len(flagged):
            ax.plot(flagged.seconds_flagged.iloc[0], flagged.both_flagged.iloc[0], "o", mfc="white", color=f"C{i}")
    ax.plot([], [], "o", mfc="white", color="0.4", label="flagged prompts only")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(plt.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(plt.FormatStrFormatter("%g"))
    ax.set_xlabel("seconds per image (log scale)")
    ax.set_ylabel("both present")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    ax.set_title(title, fontsize=10)
    return fig


def example(judged: pd.DataFrame, case=None, present_at: int = PRESENT_AT) -> tuple:
    """The (prompt-set row, seed) the grid shows: ``case`` (a ``case_num``) with its first seed,
    else the image where the plain one lacks the dominated concept and the most remedies have both
    (the first row's first seed where none does)."""
    m = measured(judged, present_at)
    if case is not None:
        row = m[m.case_num == case]
        if row.empty:
            raise ValueError(f"no row {case!r} among the compared prompts ({sorted(set(m.case_num))})")
        return case, int(row.seed.iloc[0])
    wins = m[m.remedy != "none"].groupby(["case_num", "seed"], sort=False).both.sum()
    lost = m[(m.remedy == "none") & ~m.dominated].set_index(["case_num", "seed"]).index
    pick = wins.loc[wins.index.isin(lost)]
    key = pick.idxmax() if len(pick) else wins.index[0]
    return key[0], int(key[1])


def grid_rows(judged: pd.DataFrame, stores: dict, case, seed: int) -> list:
    """One row of `dvdlib.plots.image_grid`: the prompt-set row ``case`` and ``seed`` under every
    remedy, captioned with the remedy and the judge's Yes counts (c about the dominant concept or
    its category word, n about the dominated)."""
    shown = judged[(judged.case_num == case) & (judged.seed == seed)].set_index("remedy")
    prompt = shown.prompt.iloc[0]
    images = [(stores[n].image(prompt, seed).convert("RGB"), f"{LABELS[n]}\nc {shown.c[n]}, n {shown.n[n]}")
              for n in NAMES if n in shown.index]
    return [(f'"{prompt}", seed {seed}: {shown.concept.iloc[0]} dominant, {shown.nm_word.iloc[0]} dominated', images)]


# ------------------------------------------------------------------------------ words


def twins_sentence(part) -> str:
    """What the twins show (``part``: `twin_part` or `snapshot_twin_part`), from their paired
    verdicts: per arm, which remedies beat replacement and which beat the plain images, said to be
    the snapshot's where they are ("" when there are no twins)."""
    from ..stats import UNDERPOWERED

    if part is None or not len(part.versus):
        return ""
    versus = part.versus
    said = [f"The twin comparison shown is {part.source}, not this run's."] if part.source else []
    for arm, g in versus.groupby("arm", sort=False):
        n = next(r["n"] for r in g.vs_none_result if r is not None)
        if g.vs_none_verdict.str.startswith(UNDERPOWERED).all():
            said.append(f"On the {arm} twins ({n} pairs) every comparison is underpowered.")
            continue
        plus = [LABELS[r] for r, v in zip(g.remedy, g.vs_none_verdict) if v == "higher"]
        works = [LABELS[r] for r in g[g.works].remedy]
        said.append(f"On the {arm} twins ({n} pairs), against the plain images: "
                    + (f"{', '.join(plus)} {'raises' if len(plus) == 1 else 'raise'} the share with both present"
                       if plus else "no remedy raises the share with both present by the rule")
                    + "; against replacement: " + (f"{', '.join(works)} {'beats' if len(works) == 1 else 'beat'} it"
                                                   if works else "none beats it") + ".")
    return " ".join(said)


def closing(table: pd.DataFrame, versus: pd.DataFrame, e2e: pd.DataFrame, twin=None,
            balanced: pd.DataFrame | None = None) -> str:
    """The closing paragraph, written from this run's verdicts (each remedy against the plain
    images and against replacement, on both present; on the twins, paired, from ``twin``:
    `twin_part`'s, or the snapshot's, said so; on the balanced set, whether a remedy harms) and its
    detect-then-fix numbers."""
    from ..stats import UNDERPOWERED

    n = int(table.clusters.max())
    beyond = versus[versus.remedy != "replacement"]
    works = [LABELS[r] for r in beyond[beyond.works].remedy]
    verdicts = set(versus.both_vs_none_verdict) | set(beyond.both_vs_replacement_verdict)
    if len(verdicts) == 1:
        text = [f"Every remedy, against the plain images and against the paper's replacement, on the share with both "
                f"concepts present, reads {verdicts.pop()} under the book's rule."]
    else:
        said = "; ".join(f"{LABELS[r.remedy]} {r.both_vs_none_verdict}" for r in versus.itertuples())
        text = [f"Against the plain images, on the share with both concepts present, the book's rule reads: {said}."]
        said = "; ".join(f"{LABELS[r.remedy]} {r.both_vs_replacement_verdict}" for r in beyond.itertuples())
        if said:
            text.append(f"Against the paper's replacement: {said}.")
    text.append(f"{', '.join(works)} {'works' if len(works) == 1 else 'work'} in this chapter's sense (beats "
                "replacement)." if works else "No remedy works in this chapter's sense: none beats replacement by the rule.")
    if versus.both_vs_none_verdict.str.startswith(UNDERPOWERED).all():
        text.append(f"With {n} dominant concepts this run has too few clusters for any verdict; its shares describe "
                    "these prompts and seeds only.")
    said_of_twins = twins_sentence(twin)
    if said_of_twins:
        text.append(said_of_twins)
    if balanced is not None and len(balanced) and balanced.reads.str.startswith(UNDERPOWERED).all():
        text.append(f"On the balanced prompts every comparison is {balanced.reads.iloc[0]}.")
    elif balanced is not None and len(balanced):
        harms = [LABELS[r] for r, v in zip(balanced.remedy, balanced.reads) if v == HARM["lower"]]
        text.append(f"On the balanced prompts, {', '.join(harms)} {'harms' if len(harms) == 1 else 'harm'} prompts that "
                    "were fine." if harms else "On the balanced prompts no remedy is shown to harm prompts that were "
                    "fine (which is not the same as shown harmless).")
    if len(e2e) and e2e.flagged.iloc[0] == 0:
        text.append("The detector flags none of the rows, so detect-then-fix gives the plain images at the plain "
                    "images' cost and one step more.")
    elif len(e2e):
        best = e2e.sort_values("both_flagged", ascending=False, kind="stable").iloc[0]
        text.append(f"The detector flags {best.flagged:.0%} of the rows; fixing only those, {LABELS[best.remedy]} "
                    f"gives the highest share with both present, {best.both_flagged:.2f} (fixing all: "
                    f"{best.both_all:.2f}; none: {best.both_none:.2f}), at {best.seconds_flagged:.3g} s per image "
                    f"(all: {best.seconds_all:.3g}; none: {best.seconds_none:.3g}).")
    return " ".join(text)


# ------------------------------------------------------------------------------ the chapter


def joined(judged: dict) -> pd.DataFrame:
    """The judged tables of every remedy (name → table, as the chapter's work returns them) as one."""
    return pd.concat(list(judged.values()), ignore_index=True)


def stores(run, params: dict, rows: pd.DataFrame) -> dict:
    """Each remedy's store (name → `dvdlib.store.Store`) under its ``params``."""
    words = run.world.category_words()
    return {name: store_of(run, name, with_words(name, p, rows, words)) for name, p in params.items()}


def params_table(params: dict) -> pd.DataFrame:
    """Each remedy's parameters as its images are keyed (defaults filled in), in words."""
    def said(k, value):
        if value is None:
            return "read from the model"
        if k == "thresholds":
            return ", ".join(f"step {s}: {t}" for s, t in value)
        return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)

    rows = []
    for name in NAMES:
        key = {k: v for k, v in module(name).key(**params.get(name, {})).items() if k != "remedy"}
        text = "; ".join(f"{k} {said(k, v)}" for k, v in key.items()) if key else "—"
        if name == "replacement":
            text = "the dominant concept's words → its category word (paper §3.8)"
        rows.append({"remedy": LABELS[name], "parameters (as keyed)": text})
    return pd.DataFrame(rows).set_index("remedy")


def defaults_text(params: dict) -> str:
    """Whether this run's remedies ran with their modules' defaults, and which parameters did not."""
    changed = [LABELS[name] for name in NAMES if module(name).key(**params.get(name, {})) != module(name).key()]
    if not changed:
        return ("Every remedy ran with its module's defaults, chosen on twin pairs that no chapter scores, at a seed no "
                "chapter gives them (methods page), not on the units scored here.")
    return (f"{', '.join(changed)} ran with parameters other than its module's defaults (given to this chapter); the "
            "others ran with their defaults, chosen on twin pairs that no chapter scores.")


def scope_text(scale: dict, rows: pd.DataFrame, seeds, benchmark: str) -> str:
    """What this run compares: the prompts and seeds, and whether the profile runs a pilot."""
    concepts = ", ".join(dict.fromkeys(rows.content))
    text = (f"Prompts: {len(rows)} rows of `{benchmark}` ({rows.prompt.nunique()} distinct prompts; dominant concepts: "
            f"{concepts}), each with {len(seeds)} seed{'s' * (len(seeds) != 1)} ({', '.join(map(str, seeds))}).")
    if scale.get("slice"):
        text += (" This is the profile's pilot (`scales.remedies`: "
                 f"{scale['prompts']} prompts, {scale['seeds']} seeds), not the whole set.")
    return text


def _share(value, ci) -> str:
    return "—" if value is None else f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def add_results(report, table: pd.DataFrame, versus: pd.DataFrame, e2e: pd.DataFrame, threshold_text: str,
                paper_detection: dict) -> None:
    """This run's numbers beside the paper's: per remedy, both present, the dominated concept's
    presence, mean DvD, seconds per image, the differences against none and replacement with their
    verdicts, and detect-then-fix. The paper's only remedy is replacement (§3.8: DvD medians
    64 → 20 on SD 1.4); for the others it has no number."""
    beyond = "— (beyond the paper)"
    before, after = paper_detection["replacement"]["CompVis/stable-diffusion-v1-4"]
    paper_both = {"none": "not reported", "replacement": "not reported"}
    paper_dvd = {"none": f"median {before} (SD 1.4, before replacement)", "replacement": f"median {after} (SD 1.4)"}
    for row in table.itertuples():
        label = LABELS[row.remedy]
        report.add(f"rem_both_{row.remedy}", f"both concepts present, {label} (share of images; 95% interval over "
                   f"{row.clusters} concepts)", paper_both.get(row.remedy, beyond), _share(row.both, row.both_ci),
                   value=row.both, ci=row.both_ci, n=row.images)
        report.add(f"rem_dominated_{row.remedy}", f"dominated concept present, {label}", paper_both.get(row.remedy, beyond),
                   _share(row.dominated, row.dominated_ci), value=row.dominated, ci=row.dominated_ci, n=row.images)
        report.add(f"rem_dvd_{row.remedy}", f"mean DvD Score, {label}", paper_dvd.get(row.remedy, beyond), f"{row.dvd:.1f}")
        report.add(f"rem_seconds_{row.remedy}", f"seconds per image, {label}", "not reported" if row.remedy in paper_dvd
                   else beyond, f"{row.seconds:.3g}")
    for row in versus.itertuples():
        label = LABELS[row.remedy]
        paper = "not reported" if row.remedy == "replacement" else beyond
        report.add(f"rem_vs_none_{row.remedy}", f"{label} − none, both present", paper,
                   f"{row.both_vs_none}: {row.both_vs_none_verdict}", **_fields(row.both_vs_none_result))
        if row.both_vs_replacement_result is not None:
            report.add(f"rem_vs_replacement_{row.remedy}", f"{label} − replacement, both present", beyond,
                       f"{row.both_vs_replacement}: {row.both_vs_replacement_verdict}",
                       **_fields(row.both_vs_replacement_result))
    flagged = float(e2e.flagged.iloc[0]) if len(e2e) else float("nan")
    report.add("rem_flagged", f"rows the detector flags; threshold {threshold_text}",
               f"{paper_detection['benchmark_rate']:.2f}% of DominanceBench at {paper_detection['threshold']:.3f} (SD 1.4)",
               f"{100 * flagged:.2f}%")
    for row in e2e.itertuples():
        paper = "not reported" if row.remedy == "replacement" else beyond
        report.add(f"rem_e2e_{row.remedy}", f"detect, then fix with {LABELS[row.remedy]}: both present (s/image), "
                   "flagged only / all / none", paper,
                   f"{row.both_flagged:.2f} ({row.seconds_flagged:.3g}) / {row.both_all:.2f} ({row.seconds_all:.3g}) / "
                   f"{row.both_none:.2f} ({row.seconds_none:.3g})")


def add_twin_results(report, part) -> None:
    """The twins' numbers (``part``: `twin_part`'s; the paper has no twins): per arm and remedy both
    present, and each paired difference against none and against replacement with its verdict and
    the fields a twin claim keeps (`dvdlib.twins.row_fields`), under ``rem_twin_vs_<b>_<remedy>_<arm>``
    (the keys `dvdlib.findings` reads)."""
    from ..twins import row_fields

    beyond = "— (beyond the paper)"
    for row in part.summary.itertuples():
        report.add(f"rem_twin_both_{row.remedy}_{row.arm}", f"both concepts present, {LABELS[row.remedy]}, {row.arm} "
                   f"twins (share of images; 95% interval over {row.clusters} pairs)", beyond,
                   _share(row.both, row.both_ci), value=row.both, ci=row.both_ci, n=row.images)
        report.add(f"rem_twin_dominated_{row.remedy}_{row.arm}", f"dominated concept present, {LABELS[row.remedy]}, "
                   f"{row.arm} twins (share of images; 95% interval over {row.clusters} pairs)", beyond,
                   _share(row.dominated, row.dominated_ci), value=row.dominated, ci=row.dominated_ci, n=row.images)
    for row in part.versus.itertuples():
        for b in ("none", "replacement"):
            result = getattr(row, f"vs_{b}_result")
            if result is not None:
                report.add(TWIN_KEYS[row.remedy, b] + row.arm, f"{LABELS[row.remedy]} − {b}, both present, "
                           f"paired over pairs: {row.arm} twins", beyond,
                           f"{getattr(row, f'vs_{b}')}: {getattr(row, f'vs_{b}_verdict')}",
                           **row_fields(result, part.n_prompts))


def add_balanced_results(report, table: pd.DataFrame) -> None:
    """The balanced set's numbers: each remedy − none on both present, and whether it harms."""
    for row in table.itertuples():
        report.add(f"rem_balanced_{row.remedy}", f"{LABELS[row.remedy]} − none, both present, balanced prompts",
                   "— (beyond the paper)", f"{row.difference}: {row.reads}", **_fields(row.result))


def _fields(result: dict) -> dict:
    """The structured fields of a `contrast` kept in the results JSON."""
    return {k: result.get(k) for k in ("value", "ci", "n", "n_clusters", "test", "verdict")}
