"""What a chapter computes, as data: its work items under a profile, before anything runs.

A `Work` is one unit the run store keeps: one generation of (model, sampler, intervention,
prompt, seed, recording), one judge answer set of (image, questions), or one fine-tune of (base
model, recipe, training images). Its ``key`` is the store's own: the file the store checks
(``<model>/<settings hash>/<prompt hash>/<seed>.png`` or ``.attn-<spec hash>.npz``), the record
and the answer key the chapter reads (``...<seed>.json#judge:...``), or the fine-tune's folder
(``finetune/<base>/<hash>``, `dvdlib.finetune.finetune_dir`). `plan(chapter, profile, params)` lists a chapter's work with the
parameters the chapter itself reads (its parameters cell's defaults, then ``params``) by running
the chapter's own work (`dvdlib.chapters`) with the executor that counts (`Count`), so the plan
and the chapter cannot drift; `Plan.todo`
keeps what the store lacks. `counts` gives UNet evaluations (steps × 2 under classifier-free
guidance, paper §2's sampler), images and judge calls; `dvdlib.prefetch` computes a plan.

Work a plan cannot know before part of it has run is read from the store where it holds what
decides it (chapter 06: which rows are collapsed before ablation, which heads did not mitigate
them), else counted as an upper bound marked ``provisional`` (`dvdlib.prefetch` plans again once it
is known) or, where no bound is useful (chapter 06's pairs of heads, chapter 08's
``validate_on="flagged"``, chapter 01's image embeddings), left out and named in
`Plan.not_counted`: never guessed.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import SimpleNamespace

from . import chapters as CH
from .finetune import Tuned, base_of
from .store import digest, model_key, plain, slug

#: Work kinds: a generation (image, attention or noise norms), a judge's answers about one image,
#: or a fine-tune (DreamBooth, paper §3.3).
GENERATE, JUDGE, FINETUNE = "generate", "judge", "finetune"


@dataclass(frozen=True)
class Work:
    """One unit of stored work (generation or judge answers), keyed as `dvdlib.store.Store` keys it.

    ``options``: JSON of the `dvdlib.generate.generate` options (``attention``, ``until_step``,
    ``noise_norms``); ``intervention``: JSON of an `dvdlib.ablation.Intervention`'s
    or `dvdlib.ablation.Suppression`'s key (paper §3.6) or ""; for judge work, ``answers`` is the
    record key, ``asks`` the library function that asks ("dvd": `dvdlib.dvd.judge_images`, "presence":
    `dvdlib.triplets.judge_presence`), ``row`` the prompt-set row as JSON and ``questions`` how
    many questions the image is asked; for a fine-tune, ``store`` is its folder in the run store,
    ``settings`` its recipe as JSON, ``seed`` its training seed and ``options`` its images' digest
    and count. ``model`` is a model name or a `dvdlib.finetune.Tuned` (work with a fine-tune)."""

    kind: str
    model: object
    store: str
    settings: str
    prompt: str
    seed: int
    options: str = "{}"
    intervention: str = ""
    answers: str = ""
    asks: str = ""
    row: str = ""
    questions: int = 0
    #: the stored file's ending after ``<seed>``: ".png", ".attn-<spec hash>.npz" (set when built)
    artifact: str = field(default="", compare=False)
    #: what the image's UNet runs cost: steps run × (2 under classifier-free guidance); a
    #: fine-tune's: its training steps
    unet_evals: int = field(default=0, compare=False)
    #: needed only if results not yet stored say so (counted as an upper bound, not computed yet)
    provisional: bool = field(default=False, compare=False)

    @cached_property
    def spec(self) -> dict | None:
        """The recording spec that keys the stored attention (`dvdlib.generate.recording_spec`)."""
        from .generate import recording_spec

        o = json.loads(self.options)
        holder = SimpleNamespace(settings=json.loads(self.settings))
        return recording_spec(holder, o.get("attention"), o.get("until_step"), o.get("noise_norms", False))

    @cached_property
    def wants_image(self) -> bool:
        return json.loads(self.options).get("until_step") is None

    @property
    def base(self) -> str:
        """``<model>/<settings hash>/<prompt hash>/<seed>``: where the store keeps this (prompt, seed)."""
        return f"{self.store}/{digest(self.prompt)}/{self.seed}"

    @property
    def key(self) -> str:
        """The store's key of this work: the file `Store.has` checks last, or record#answer-key."""
        if self.kind == JUDGE:
            return f"{self.base}.json#{self.answers}"
        if self.kind == FINETUNE:
            return self.store
        return f"{self.base}{self.artifact}"

    @cached_property
    def shard_key(self) -> str:
        """What places this work in a shard: its model, sampler (any intervention left out) and
        prompt. Every seed, recording and intervention of a prompt lands in one shard, so the judge
        asks all its seeds in one call (as the chapters do) about images the same process made, and
        work that depends on a prompt's results (`provisional`) is planned where they are made. A
        fine-tune and all work with it land in one shard (its folder's hash): no shard waits on
        another."""
        if self.kind == FINETUNE:
            return Path(self.store).name
        if isinstance(self.model, Tuned):
            return Path(self.model.folder).name
        sampler = {k: v for k, v in json.loads(self.settings).items() if k != "intervention"}
        return f"{self.store.split('/')[0]}/{digest(sampler)}/{digest(self.prompt)}"

    def files(self) -> list[str]:
        """The store files a generation writes (image, attention), store-relative."""
        if self.kind == JUDGE:
            return [f"{self.base}.json"]
        if self.kind == FINETUNE:
            return [self.store]
        out = [f"{self.base}.png"] if self.wants_image else []
        return out + ([f"{self.base}.attn-{digest(self.spec)}.npz"] if self.spec else [])

    def done(self, root: str | Path) -> bool:
        """Whether the store under ``root`` already holds this work."""
        from .finetune import is_finished

        root = Path(root)
        if self.kind == FINETUNE:
            return is_finished(root / self.store)
        if self.kind == GENERATE:
            return all((root / f).exists() for f in self.files())
        record = root / f"{self.base}.json"
        if not record.exists():
            return False
        return isinstance(json.loads(record.read_text()).get(self.answers), dict)


@dataclass
class Plan:
    """A chapter's work under a profile (``items``, without repeats) and what it leaves uncounted."""

    chapter: str
    profile: object
    items: list[Work]
    not_counted: list[str] = field(default_factory=list)
    #: the chapter's `dvdlib.run.Run` (what `dvdlib.prefetch` loads models and the judge from)
    run: object = field(default=None, repr=False)
    #: fine-tune key → (training images, `dvdlib.finetune.Recipe`): what `dvdlib.prefetch` trains on
    trainings: dict = field(default_factory=dict, repr=False)

    def todo(self) -> list[Work]:
        """The work the store lacks, of what is known to be needed (not `Work.provisional`)."""
        return [w for w in self.items if not w.provisional and not w.done(self.profile.store)]

    def counts(self) -> dict:
        """UNet evaluations, images (generations), judge calls (image × question), fine-tunes and
        their training steps of the plan."""
        gens = [w for w in self.items if w.kind == GENERATE]
        tunes = [w for w in self.items if w.kind == FINETUNE]
        return {"unet_evals": sum(w.unet_evals for w in gens), "generations": len(gens),
                "images": sum(w.wants_image for w in gens),
                "judge_calls": sum(w.questions for w in self.items if w.kind == JUDGE),
                "finetunes": len(tunes), "train_steps": sum(w.unet_evals for w in tunes)}


# --- counting a chapter's work ---------------------------------------------------------------------


class Count:
    """The executor that counts a chapter's work (`dvdlib.chapters`) instead of computing it: the
    chapter's own work function runs with it, what it would generate or ask is recorded as `Work`,
    and generations and answers come back empty. What decides further work (chapter 06's rows
    collapsed before ablation, the heads that did not mitigate) is read from the store where it is
    there (`CountingSweep`). No model is loaded where its UNet config is known (`model_pipe`);
    prompt sets are read untokenized."""

    counting = True

    def __init__(self, run, params: dict):
        self.run, self.params, self.profile, self.world = run, params, run.profile, run.world
        self.items: dict[str, Work] = {}
        self.not_counted: list[str] = []
        self.trainings: dict = {}
        self._keys: dict = {}
        self._unseen: set = set()  # fine-tunes keyed by stand-ins: their work waits for the images

    def prompts(self, role: str, n: int | None = None, tokenize: bool = True):
        return self.run.prompts(role, n, tokenize=False)

    @cached_property
    def questions(self):
        return self.run.questions

    @cached_property
    def judge(self):
        """The profile's judge as its answers are keyed (its world's `judge_name`), never loaded."""
        return SimpleNamespace(name=self.world.judge_name(self.profile.judge))

    @cached_property
    def pipe(self):
        return model_pipe(self)

    @cached_property
    def layers(self):
        from .layers import registry

        return registry(self.pipe, self.profile.resolution_of(self.profile.model))

    def _key(self, model) -> str:
        """``model``'s run-store key, computed once (a local folder's is a hash of its weights)."""
        if model not in self._keys:
            self._keys[model] = model_key(model)
        return self._keys[model]

    def _store(self, model, intervention: dict | None, remedy: dict | None = None):
        """The store folder and settings text of ``model``'s images: plain, an ablation's
        (``intervention``) or a remedy's (``remedy``: its key, `dvdlib.remedies.fix.remedy_store`)."""
        key = self._key(model)
        settings = self.profile.sampler(base_of(model))
        if intervention is not None:
            settings = {**settings, "intervention": intervention}
        if remedy is not None:
            settings = {**settings, "remedy": remedy}
        return f"{slug(key)}/{digest({'model': key, **settings})}", json.dumps(settings, sort_keys=True)

    def generate(self, prompts, seeds, *, model: str | None = None, attention: dict | None = None,
                 until_step: int | None = None, noise_norms: bool = False,
                 intervention: dict | None = None, provisional: bool = False) -> list:
        """Count `dvdlib.run.Run.generate` (same arguments) into ``model``'s store (``intervention``:
        an ablation's; ``provisional``: needed only if results not yet stored say so)."""
        P, model = self.profile, model or self.profile.model
        provisional = provisional or model in self._unseen
        store, settings = self._store(model, intervention)
        if until_step is not None and until_step >= P.steps:
            until_step = None  # the whole schedule, as `generate` stores it
        options = {"attention": plain(attention) if attention else None,
                   "until_step": until_step, "noise_norms": noise_norms}
        steps = min(until_step or P.steps, P.steps)
        evals = steps * (2 if P.sampler(base_of(model))["guidance"] > 1 else 1)  # the guidance the model applies
        options = json.dumps(options, sort_keys=True)
        iv = json.dumps(intervention, sort_keys=True) if intervention else ""
        first = Work(GENERATE, model, store, settings, "", 0, options, iv)
        artifact = f".attn-{digest(first.spec)}.npz" if first.spec else ".png"
        for prompt in dict.fromkeys(prompts):
            for seed in seeds:
                self._add(Work(GENERATE, model, store, settings, prompt, int(seed), options, iv, artifact=artifact,
                               unet_evals=evals, provisional=provisional))
        return []

    def judge_dvd(self, rows, seeds, *, model: str | None = None, intervention: dict | None = None,
                  provisional: bool = False):
        """Count `dvdlib.run.Run.judge_dvd`: ten questions per (row, seed), paper §2; no answers."""
        import pandas as pd

        from .dvd import _key, question_groups
        from .judge import QUESTIONS_PER_SET

        Q, model = self.questions, model or self.profile.model
        provisional = provisional or model in self._unseen
        store, settings = self._store(model, intervention)
        for row in rows.itertuples():
            key = _key(self.judge, Q, row.content, row.nm_word, question_groups(row, Q))
            self._judge(model, store, settings, row.prompt, seeds, key, "dvd", row._asdict(), 2 * QUESTIONS_PER_SET,
                        intervention, provisional)
        return pd.DataFrame(columns=["case_num", "content_type", "prompt", "concept_group", "object_group", "seed",
                                     "c", "n", "dvd", "answers"])

    def remedy(self, rows, seeds, name: str, params: dict | None = None, *, model=None):
        """Count `dvdlib.run.Run.remedy`: each prompt × seed generated with ``model`` (default the
        profile's) into the remedy's store (the sampler and the remedy's key,
        `dvdlib.remedies.fix.remedy_store`; ``row`` holds the remedy and the prompt's concepts, which
        `dvdlib.prefetch` computes it from), ten questions per (row, seed)."""
        import pandas as pd

        from .dvd import _key, question_groups
        from .judge import QUESTIONS_PER_SET
        from .remedies.compare import COLUMNS, asked_rows, dominant_words, module, with_words

        P, model = self.profile, model or self.profile.model
        params = with_words(name, params, rows, self.world.category_words())
        store, text = self._store(model, None, module(name).key(**params))
        settings = json.loads(text)
        options = json.dumps({"attention": None, "until_step": None, "noise_norms": False}, sort_keys=True)
        evals = P.steps * (2 if settings["guidance"] > 1 else 1)
        if name == "attend_excite":
            self.skip("Attend-and-Excite's latent updates (a UNet pass and its gradient per update, up to "
                      "max_iter_to_alter steps and their refinements) are counted as a plain generation's UNet "
                      "evaluations: its GPU-hours are a lower bound")
        first = rows.assign(dominant=dominant_words(rows)).drop_duplicates("prompt")
        for prompt, dominant, dominated in zip(first.prompt, first.dominant, first.nm_word):
            made = json.dumps(plain({"remedy": name, "params": params, "prompt": prompt, "dominant": dominant,
                                     "dominated": dominated}),
                              sort_keys=True)
            for seed in seeds:
                self._add(Work(GENERATE, model, store, text, prompt, int(seed), options, row=made, artifact=".png",
                               unet_evals=evals))
        Q = self.questions
        for row in asked_rows(name, rows, params).itertuples():
            answers = _key(self.judge, Q, row.content, row.nm_word, question_groups(row, Q))
            self._judge(model, store, text, row.prompt, seeds, answers, "dvd", row._asdict(), 2 * QUESTIONS_PER_SET, None)
        return pd.DataFrame(columns=COLUMNS)

    def judge_presence(self, rows, seeds, present_at: int = 3):
        """Count `dvdlib.run.Run.judge_presence`: five questions per target and (row, seed)."""
        import pandas as pd

        from .judge import QUESTIONS_PER_SET
        from .triplets import IMAGE_COLUMNS, TRIPLET_SLOTS, _key

        model = self.profile.model
        store, settings = self._store(model, None)
        for row in rows.to_dict("records"):
            for k in TRIPLET_SLOTS:
                key = _key(self.judge, self.questions, row[f"target{k}"], row[f"target{k}_type"])
                self._judge(model, store, settings, row["prompt"], seeds, key, "presence", row, QUESTIONS_PER_SET, None)
        return pd.DataFrame(columns=list(IMAGE_COLUMNS))

    def finetune(self, images, recipe) -> Tuned:
        """Count `dvdlib.run.Run.finetune` (same arguments): the fine-tune as `Work` (its folder,
        computable before training from the base, recipe and images), the prior-preservation
        images it would generate first; the `dvdlib.finetune.Tuned` the chapter generates with."""
        from .finetune import finetune_dir, images_digest

        P = self.profile
        known = not any(isinstance(im, str) for im in images)  # else stand-ins (`dvdlib.causal.standin_images`)
        images_hash = images_digest(images)
        folder = finetune_dir(P.store, self._key(P.model), recipe, images_hash)
        if recipe.prior_preservation:
            self.generate([recipe.class_prompt], range(1, recipe.n_class_images + 1))
        key = folder.relative_to(P.store).as_posix()
        self.trainings[key] = (list(images), recipe)
        options = json.dumps({"images": images_hash, "n_images": len(images)})
        self._add(Work(FINETUNE, P.model, key, json.dumps(recipe.identity(), sort_keys=True), "", int(recipe.seed),
                       options, unet_evals=int(recipe.steps), provisional=not known))
        tuned = Tuned(P.model, str(folder))
        if not known:
            self._unseen.add(tuned)
        return tuned

    def sweep(self, rows, seeds, *, model=None):
        """A `CountingSweep` of ``model`` (default the profile's) over ``rows`` and ``seeds``."""
        return CountingSweep(self, rows, seeds, model)

    def _judge(self, model, store, settings, prompt, seeds, key, asks, row, questions, intervention, provisional=False):
        row = json.dumps(plain({k: v for k, v in row.items() if k != "Index"}), sort_keys=True, default=str)
        for seed in seeds:
            self._add(Work(JUDGE, model, store, settings, prompt, int(seed),
                           intervention=json.dumps(intervention, sort_keys=True) if intervention else "",
                           answers=key, asks=asks, row=row, questions=questions, provisional=provisional))

    def _add(self, work: Work) -> None:
        known = self.items.get(work.key)
        if known is None or known.provisional and not work.provisional:
            self.items[work.key] = work

    def skip(self, what: str) -> None:
        """Name work this count leaves out (it depends on results, data or training)."""
        if what not in self.not_counted:
            self.not_counted.append(what)


def _sweep_class():
    from .ablation import Sweep

    return Sweep


class CountingSweep:
    """An ablation sweep (paper §3.6) that counts: what `dvdlib.ablation.Sweep` would generate and
    ask is recorded in its `Count`, and what decides further work is read from the store, row by
    row, where it is there: a row collapsed (DvD) or reproduced (memorized) before ablation is
    ablated; a row the store cannot tell yet is counted as an upper bound (`Work.provisional`,
    `dvdlib.prefetch` plans again once it is known); outcomes not yet stored are left out of the
    tables it returns (``unjudged`` counts their rows: chapter 06 names the pairs of heads they
    decide in `Plan.not_counted`)."""

    def __init__(self, count: Count, rows, seeds, model=None):
        P = count.profile
        self.count, self.seeds, self.model = count, [int(s) for s in seeds], model or P.model
        self.frozen = _sweep_class()(None, rows, seeds, root=P.store, model=count._key(self.model),
                                     sampler=P.sampler(base_of(self.model)), batch_size=P.batch_size,
                                     store_mode="frozen")
        self.rows = self.frozen.rows
        self.state: dict = {}  # row → True (ablated), False (not), None (not yet known)
        self.unjudged = 0  # rows whose ablations' outcomes the store cannot give yet

    def prompts(self, cases) -> list[str]:
        return self.frozen.prompts(cases)

    def cost(self, plan, baseline: bool = True) -> dict:
        return self.frozen.cost(plan, baseline)

    def _one(self, case):
        """The frozen sweep of row ``case`` alone (the same stores)."""
        f = self.frozen
        return _sweep_class()(None, f.rows.loc[[case]].reset_index(drop=True), f.seeds, root=f.root, model=f.model,
                              sampler=f.sampler, batch_size=f.batch_size, store_mode="frozen")

    def _read(self, read):
        """``read()`` from the store, or None where it lacks what it needs."""
        from .store import StoreMiss

        try:
            return read()
        except StoreMiss:
            return None

    def run(self, plan, baseline: bool = True, progress: bool = True) -> None:
        if baseline:
            self.count.generate(self.prompts(self.rows.index), self.seeds, model=self.model)
        for job in plan:
            for provisional in (False, True):
                cases = [c for c in job.cases if (self.state.get(c, True) is None) is provisional]
                if cases:
                    self.count.generate(self.prompts(cases), self.seeds, model=self.model,
                                        intervention=job.intervention.key(), provisional=provisional)

    def mitigable(self, judge, questions, rule) -> list:
        self.run([])
        self.count.judge_dvd(self.rows, self.seeds, model=self.model)
        for case in self.rows.index:
            self.state[case] = self._read(lambda: bool(self._one(case).mitigable(judge, questions, rule)))
        return self._ablated()

    def reproduced(self, rule, similarity="pixels") -> list:
        self.run([])
        if str(similarity).startswith("clip:"):
            self.count.skip("ablation: CLIP embeddings of the memorized images (similarity 'clip:...'): not "
                            "counted; every memorized row's ablations are counted (those not reproduced before "
                            "ablation are not needed)")
            return list(self.rows.index)
        for case in self.rows.index:
            self.state[case] = self._read(lambda: bool(self._one(case).reproduced(rule, similarity)))
        return self._ablated()

    def _ablated(self) -> list:
        """The rows ablated: those with something to mitigate, and those not yet known (named)."""
        unknown = sum(v is None for v in self.state.values())
        if unknown:
            self.count.skip(f"ablation: which of {unknown} rows are ablated (with require_baseline, those collapsed / "
                            "reproduced before ablation) is known once their plain images are judged: all are "
                            "counted, an upper bound (dvd prefetch computes them once known)")
        return [c for c, v in self.state.items() if v is not False]

    def judge_dvd(self, plan, judge, questions, rule, require_baseline: bool = True):
        """Count the answers `Sweep.judge_dvd` asks; the outcomes of the rows whose answers are all
        stored (the others left out and named)."""
        import pandas as pd

        self.count.judge_dvd(self.rows, self.seeds, model=self.model)
        for job in plan:
            for provisional in (False, True):
                cases = [c for c in job.cases if (self.state.get(c, True) is None) is provisional
                         and (not require_baseline or self.state.get(c, True) is not False)]
                if cases:
                    self.count.judge_dvd(self.rows.loc[cases], self.seeds, model=self.model,
                                         intervention=job.intervention.key(), provisional=provisional)
        tables, unknown = [], 0
        for case in self.rows.index:
            jobs = [type(job)(job.intervention, (case,)) for job in plan if case in job.cases]
            table = self._read(lambda: self._one(case).judge_dvd(jobs, judge, questions, rule, require_baseline))
            unknown += table is None
            tables += [] if table is None else [table]
        self.unjudged = max(self.unjudged, unknown)  # work chosen from these outcomes is not counted (its chapter says)
        return pd.concat(tables, ignore_index=True) if tables else _empty_outcomes()

    def judge_memorized(self, plan, rule, similarity="pixels", require_baseline: bool = True):
        """Memorization is judged by the images' similarity (no judge): nothing to count."""
        return _empty_outcomes()


def model_pipe(r: Count):
    """The profile's model as a plan reads it (its layers and family, `dvdlib.adapters`): for a
    UNet whose config is known (the packaged SD 1.4 / 2.1 / XL configs, a folder's own) a stand-in
    holding that UNet built on the meta device, no weights read; else the world's model loaded
    (the small ones)."""
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    from .models import SD14, SD21, SDXL, resolve_id, unet_config

    model = r.profile.model
    known = {SD14: "sd1.4", SD21: "sd2.1", SDXL: "sdxl", "random:sd1.4": "sd1.4", "random:sd2.1": "sd2.1"}
    name = model if model.startswith("random:") else resolve_id(model) if not Path(model).exists() else model
    config = None
    if name in known:
        config = unet_config(known[name])
    elif (Path(model) / "unet" / "config.json").is_file():
        config = json.loads((Path(model) / "unet" / "config.json").read_text())
    if config is None:
        return r.run.pipe
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    return SimpleNamespace(unet=unet, vae_scale_factor=8)  # any pipeline with a UNet reads as SD's (layers alike)


def _empty_outcomes():
    from .ablation.sweep import _table

    return _table([])


# --- parameters and the entry point ---------------------------------------------------------------------


def chapter_parameters(source: str | Path) -> dict:
    """A chapter's parameters with their defaults, read from its ``parameters`` cell."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(source)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def chapter_source(name: str, chapters_dir: str | Path = "chapters") -> Path:
    """The chapter notebook ``name`` names (file, stem or number prefix, as `dvd book --only`)."""
    from .scheduler import chapter_sources

    found = chapter_sources(chapters_dir, only=[name])
    if len(found) != 1:
        raise ValueError(f"{name!r} names {len(found)} chapters ({', '.join(s.stem for s in found)}): give one")
    return found[0]


def plan(name: str, profile: str = "toy", params: dict | None = None, chapters_dir: str | Path = "chapters") -> Plan:
    """The `Plan` of chapter ``name`` (``"02"``, ``"02_dvd_benchmark"``) under ``profile`` with the
    chapter parameters ``params`` (others keep the chapter's defaults; unknown ones are an error)."""
    from .profiles import Profile, load_profile
    from .run import Run

    source = chapter_source(name, chapters_dir)
    chapter = CH.BY_NAME.get(source.stem)
    if chapter is None:
        raise ValueError(f"chapter {source.stem} is not defined in dvdlib.chapters (defined: {', '.join(CH.BY_NAME)})")
    defaults = chapter_parameters(source)
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"{source.stem} has no parameter {', '.join(map(repr, unknown))}; "
                         f"its parameters are: {', '.join(defaults)}")
    values = {**defaults, **params, "profile": profile}
    fields = set(Profile.__dataclass_fields__) - {"name", "models"}
    overrides = {k: v for k, v in values.items() if k in fields}
    run = Run(load_profile(profile, **overrides), source.stem, out_dir=values.get("out_dir", "book"))
    count = Count(run, values)
    chapter.work(count, **{k: values[k] for k in chapter.parameters()})  # the chapter's own work, counted
    return Plan(source.stem, run.profile, list(count.items.values()), count.not_counted, run, count.trainings)


# --- cost ---------------------------------------------------------------------------------------------

#: Where the GPU benchmark writes its measurements (``benchmarks/gpu.sh``; key ``costs``).
COSTS_FILE = "benchmarks/results/gpu.json"


def load_costs(path: str | Path = COSTS_FILE) -> dict | None:
    """The measured costs (``costs`` of the GPU benchmark's result: seconds per image per model,
    seconds per judge question), or None when no measurement exists at ``path``."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    costs = data.get("costs", data)
    if "generation" not in costs or "judge" not in costs:
        raise ValueError(f"{path}: expected a 'costs' object with 'generation' and 'judge' (from benchmarks/gpu.sh)")
    return costs


def _measured(costs: dict, model: str) -> dict | None:
    """The generation measurement of ``model``: its own id, else the random-weight model of its
    architecture (same cost: SD 1.4 → ``random:sd1.4``, SD 2.1 → ``random:sd2.1``)."""
    from .models import SD14, SD21, resolve_id

    gen = costs["generation"]
    if model in gen:
        return gen[model]
    name = resolve_id(model) if not Path(model).exists() else model
    return gen.get(name) or gen.get({SD14: "random:sd1.4", SD21: "random:sd2.1"}.get(name, ""))


#: How a rate measured at some batch sizes is read at another (`at_batch`): "1/batch", linear in
#: 1 / batch between the two measured sizes around it (a call of b units costs about a fixed part,
#: kernel launches, text encoding, ``generate``'s set-up, plus b × a per-unit part, so seconds per
#: unit = fixed / b + per unit, a line in 1 / b); or "batch", linear in the batch size itself.
#: Outside the measured sizes, the nearest one's rate (a larger batch is not priced cheaper than the
#: largest one measured).
INTERPOLATION = "1/batch"


def at_batch(by_batch: dict, batch: int, interpolation: str = INTERPOLATION) -> float:
    """Seconds per unit at ``batch`` from the measured seconds per unit at some batch sizes
    (``{"1": s, "8": s, ...}``), read as `INTERPOLATION` says."""
    if interpolation not in ("1/batch", "batch"):
        raise ValueError(f"interpolation must be '1/batch' or 'batch', got {interpolation!r}")
    sizes = sorted((int(b), float(s)) for b, s in by_batch.items())
    if batch <= sizes[0][0]:
        return sizes[0][1]
    if batch >= sizes[-1][0]:
        return sizes[-1][1]
    x = (lambda b: 1 / b) if interpolation == "1/batch" else float
    (b0, s0), (b1, s1) = next((lo, hi) for lo, hi in zip(sizes, sizes[1:]) if lo[0] <= batch <= hi[0])
    return s0 + (x(batch) - x(b0)) / (x(b1) - x(b0)) * (s1 - s0)


def image_seconds(measured: dict, batch: int) -> float:
    """Seconds per image of a model's measurement (`_measured`) in batches of ``batch`` (`at_batch`
    over its ``seconds_per_image_by_batch``; a measurement of one batch size only: that one's)."""
    by_batch = measured.get("seconds_per_image_by_batch")
    return at_batch(by_batch, batch) if by_batch else measured["seconds_per_image"]


def question_seconds(costs: dict, pairs: int) -> float:
    """Seconds per question of a judge call holding ``pairs`` (image, question) pairs (`at_batch`
    over the judge's ``seconds_per_question_by_batch``; else its one measured rate)."""
    judge = costs["judge"]
    by_batch = judge.get("seconds_per_question_by_batch")
    return at_batch(by_batch, pairs) if by_batch else judge["seconds_per_question"]


def judge_batch() -> int:
    """(Image, question) pairs per call of the Qwen-VL judge (`dvdlib.vqa.BATCH_SIZE`), whose
    measured rates price every judge."""
    from .vqa import BATCH_SIZE

    return BATCH_SIZE


def judge_asks(items) -> list[list[Work]]:
    """The judge work grouped as the judge is asked: one `Judge.ask` per prompt-set row, model,
    intervention and question set, holding every seed of it (`dvdlib.dvd.judge_images`,
    `dvdlib.triplets.judge_presence`, `dvdlib.prefetch`)."""
    asks: dict[tuple, list[Work]] = {}
    for w in items:
        if w.kind == JUDGE:
            asks.setdefault((w.store, w.answers, w.prompt), []).append(w)
    return list(asks.values())


def call_sizes(ask: list[Work], batch: int) -> list[int]:
    """The pairs in each ``generate`` call of one ask: its images × questions, ``batch`` at a time
    (`dvdlib.vqa.QwenJudge.ask`)."""
    pairs = sum(w.questions for w in ask)
    return [batch] * (pairs // batch) + ([pairs % batch] if pairs % batch else [])


def seconds(p: Plan, costs: dict | None, shares: dict | None = None,
            batch: int | None = None) -> tuple[float | None, list[str]]:
    """GPU-seconds of a plan on one GPU from measured costs, and what could not be priced.

    A generation costs the measured seconds per image in the profile's batches (``batch``, default
    the profile's ``batch_size``; `image_seconds`) scaled to its UNet evaluations (steps run × 2
    under guidance, against the benchmark's steps × 2) and to its pixels (resolution², against the
    benchmark's): where a chapter's sampler differs from the benchmark's (first steps only, another
    resolution) the cost is scaled, not measured; model loading is not counted. The judge's answers
    cost its real calls (`judge_asks`, `call_sizes`), each call its size's seconds per question
    (`question_seconds`). ``shares``: (model, prompt) → the share of its provisional ablations
    expected to run (`expected_shares`; a row not in it: all of them); None prices all of them (the
    upper bound). A fine-tune is not priced
    (the GPU benchmark measures none; `unpriced` says so), a generation with it as its base model is."""
    if costs is None:
        return None, ["no measurement (run benchmarks/gpu.sh)"]
    batch = batch or p.profile.batch_size

    def share(w):  # only a provisional ablation has a share (`expected_shares`)
        return shares.get(_row(w), 1.0) if shares and w.provisional and w.intervention else 1.0

    total, missing, each = 0.0, set(), {}
    for w in p.items:
        if w.kind != GENERATE:
            continue
        model = base_of(w.model)
        if (model, w.settings, w.unet_evals) not in each:
            m, resolution = _measured(costs, model), json.loads(w.settings)["resolution"]
            each[model, w.settings, w.unet_evals] = None if m is None else (
                image_seconds(m, batch) * w.unet_evals / (2 * m["steps"]) * (resolution / m["resolution"]) ** 2)
        if each[model, w.settings, w.unet_evals] is None:
            missing.add(model)
            continue
        total += share(w) * each[model, w.settings, w.unet_evals]
    call = {}  # pairs in a call → its seconds
    for ask in judge_asks(p.items):
        for n in call_sizes(ask, judge_batch()):
            if n not in call:
                call[n] = n * question_seconds(costs, n)
            total += share(ask[0]) * call[n]
    return (None if missing else total), [f"no measurement for {m}" for m in sorted(missing)]


def _row(w: Work) -> tuple[str, str]:
    """(model, prompt) of a work item: a prompt-set row's plain and ablated images alike."""
    return w.store.split("/")[0], w.prompt


def expected_shares(p: Plan) -> tuple[dict[tuple, float], list[str]]:
    """(Model, prompt) → the share of its work expected to run, for the plan's ablations not yet known to be
    needed (`Work.provisional` with an intervention: chapter 06's and chapter 12's ablations of the
    rows whose plain images are not judged yet, paper §3.6), and a sentence per kind of row saying
    where its share comes from.

    A DvD row is ablated when its plain images are collapsed (mean DvD ≥ τ, `dvdlib.outcome.DvDRule`'s
    default, chapter 06's): its share is the one measured on the rows of the same model whose plain
    images the run store holds every answer of (chapter 02's answers: the same store keys), where
    there are any; else, for the profile's own model, the paper's (§3.6 ablates every DominanceBench
    prompt: `dvdlib.paper.ABLATION` ``ablated_dvd``), and for a fine-tune none (counted in full). A
    memorized row (judged by its images' similarity, which a plan does not compute) is counted in
    full: the paper ablates every memorized prompt (``ablated_memorized``)."""
    import pandas as pd

    from .metrics import dvd_score
    from .outcome import UNCHANGED, DvDRule, dvd_outcomes
    from .paper import ABLATION

    row = _row
    root, rule = Path(p.profile.store), DvDRule()
    plain: dict[tuple, list[Work]] = {}
    for w in p.items:
        if w.kind == JUDGE and not w.intervention and w.asks == "dvd":
            plain.setdefault(row(w), []).append(w)
    unknown: dict[tuple, set] = {}  # (kind, model or "" for every fine-tune) → its rows with provisional ablations
    for w in p.items:
        if w.provisional and w.intervention:
            kind = "dvd" if row(w) in plain else "memorized"
            unknown.setdefault((kind, "" if isinstance(w.model, Tuned) else row(w)[0]), set()).add(row(w))
    judged = [{"model": model, "case_num": prompt, **json.loads((root / f"{w.base}.json").read_text())[w.answers]}
              for (model, prompt), works in plain.items() if all(w.done(root) for w in works) for w in works]
    outcomes = pd.DataFrame(columns=["model", "outcome"])
    if judged:
        table = pd.DataFrame(judged)
        table["dvd"] = [dvd_score(c, n) for c, n in zip(table["c"], table["n"])]
        outcomes = dvd_outcomes(table, rule, by=("model", "case_num"))
    shares, said = {}, []
    for (kind, model), rows in unknown.items():
        tuned = not model
        known = outcomes[outcomes["model"].isin({m for m, _ in rows} if tuned else {model})]
        if kind == "memorized":
            k, n = ABLATION["ablated_memorized"]
            share, why = 1.0, (f"the ablations of {len(rows)} memorized rows not yet compared are counted in full: "
                               "whether a prompt's images reproduce is read from their similarity, which a plan does "
                               f"not compute (the paper ablates every memorized prompt, {k} of {n}, §3.6)")
        elif len(known):
            collapsed = int((known["outcome"] == UNCHANGED).sum())
            share = collapsed / len(known)
            whose = "these fine-tunes" if tuned else "this model"
            answers = "" if tuned else " (chapter 02's answers)"
            why = (f"the ablations of {len(rows)} DvD rows not yet judged are counted at the share measured in the run "
                   f"store: {collapsed} of the {len(known)} rows of {whose} whose plain images are judged{answers} are "
                   f"collapsed (mean DvD ≥ τ = {rule.tau:g}), {share:.0%}")
        elif not tuned:
            k, n = ABLATION["ablated_dvd"]
            share = k / n
            why = (f"the ablations of {len(rows)} DvD rows are counted at the paper's share, {k} of {n} DominanceBench "
                   f"prompts ablated (§3.6; collapsed by construction, §3.2), {share:.0%}: the run store holds no "
                   "judged row of this model yet (chapter 02 measures it)")
        else:
            share, why = 1.0, (f"the ablations of {len(rows)} DvD rows of fine-tunes (fine-tune × prompt) are counted in "
                               "full: none of their rows is judged in the run store yet and the paper reports no share "
                               "for them")
        shares.update(dict.fromkeys(rows, share))
        said.append(why)
    return shares, said


def unpriced(p: Plan) -> list[str]:
    """What `seconds` counts but does not price: the plan's fine-tunes."""
    c = p.counts()
    if not c["finetunes"]:
        return []
    return [f"{c['finetunes']} DreamBooth fine-tunes ({c['train_steps']:,} training steps in all) are counted, not "
            "priced: the GPU benchmark measures no fine-tune, so the hours above leave them out"]


def cost_table(plans: list[Plan], costs: dict | None, gpus: int = 8, source: str = COSTS_FILE) -> str:
    """A Markdown table of the plans: images, UNet evaluations (first-step runs included), judge questions and the
    judge's calls, GPU-hours on one GPU expected (`expected_shares`) and with every row ablated (the
    upper bound), and the expected hours on ``gpus`` GPUs (shards of equal size assumed); a total
    row, then how the hours are priced, where the expected shares come from and what is not counted."""
    profile = plans[0].profile if plans else None
    batch = profile.batch_size if profile is not None else None
    head = (f"| chapter | images | UNet evals | questions | judge calls | GPU-h, 1 GPU "
            f"| all rows ablated | {gpus} GPUs (wall) |\n|---|--:|--:|--:|--:|--:|--:|--:|")

    def hours(x):
        return "unknown" if x is None else f"{x / 3600:,.1f}"

    def line(name, p, shares):
        c = p.counts()
        calls = sum(len(call_sizes(ask, judge_batch())) for ask in judge_asks(p.items))
        if not p.items:
            shown = ("not counted",) * 3 if p.not_counted else (hours(0.0),) * 3
        else:
            expected, upper = seconds(p, costs, shares, batch)[0], seconds(p, costs, None, batch)[0]
            shown = (hours(expected), hours(upper), hours(None if expected is None else expected / gpus))
        return (f"| {name} | {c['images']:,} | {c['unet_evals']:,} | {c['judge_calls']:,} | "
                f"{calls:,} | {' | '.join(shown)} |")

    lines, notes, expected_notes, every = [head], [], [], {}
    for p in plans:
        shares, said = expected_shares(p) if p.items else ({}, [])
        every.update(shares)
        lines.append(line(p.chapter.replace("_", " "), p, shares))  # words wrap at a page's width
        missing = seconds(p, costs, None, batch)[1] if p.items and costs else []
        notes += [f"- {p.chapter}: {m}" for m in p.not_counted + unpriced(p) + missing]
        expected_notes += [f"- {p.chapter}: {m}" for m in said]
    union = Plan("all", None, list({w.key: w for p in plans for w in p.items}.values()))
    lines.append(line("**all** (shared work once)", union, every))
    out = "\n".join(lines)
    if profile is not None:
        out = f"Profile `{profile.name}` ({profile.description}).\n\n" + out
    if costs is None:
        out += (f"\n\nGPU-hours unknown: no measurement at {source} (run benchmarks/gpu.sh on the GPU, "
                "or pass --costs FILE); the counts above need none.")
    else:
        out += (f"\n\nFrom measured costs on {costs.get('device', 'the benchmark device')} ({source}): each "
                f"generation in the profile's batches of {batch}, its seconds per image read from the measured "
                f"batch sizes (linear in {INTERPOLATION} between the two around it), scaled by UNet evaluations "
                "and resolution² where a chapter's sampler differs from the benchmark's; the judge's answers in "
                f"the calls it makes (each row's images × questions, {judge_batch()} pairs per call), each call "
                "at its size's measured seconds per question. Questions: the judge's Yes/No questions; UNet evals: "
                "UNet evaluations. GPU-h, 1 GPU: expected GPU-hours on one GPU, the ablations of rows not yet "
                "known to be collapsed counted at the share below; all rows ablated: the upper bound. "
                f"{gpus} GPUs: the expected 1-GPU hours / {gpus} (shards by hash are near equal); the measured "
                "seconds per image include its VAE decode; model loading not counted.")
    if expected_notes:
        out += "\n\nExpected cost:\n" + "\n".join(expected_notes)
    if notes:
        out += "\n\nNot counted or not priced:\n" + "\n".join(notes)
    return out
