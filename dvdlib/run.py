"""One chapter's run: what a chapter takes from its profile, made in one call.

    run = dvdlib.setup("toy", "04_focus_score", seeds=seeds)   # overrides: None keeps the profile's
    run.profile          # the profile, overrides applied (its card: run.card())
    run.pipe             # the profile's model, loaded by its world when first used
    run.store()          # the run store of a model and the profile's sampler
    run.judge, run.questions
    run.prompts("benchmark", n)   # the world's prompt set of a role
    run.report           # paper vs this run: `dvdlib.report.Report`
    run.save(fig, name)  # a figure into the chapter's figures folder

Everything is made when first used, so a chapter that needs no judge loads none.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pandas as pd

from .profiles import Profile, load_profile, with_world_defaults
from .report import Report, number
from .store import Store, model_key
from .worlds import World, get


class Run:
    """A chapter's profile, world, models, stores, judge, questions, report and figures folder, and
    the executor that computes its work (`dvdlib.chapters`; `dvdlib.plan.Count` counts it instead)."""

    counting = False

    def __init__(self, profile: Profile, chapter: str, out_dir: str | Path = "book"):
        profile = with_world_defaults(profile)  # a Profile built by hand takes its world's sets too
        self.profile, self.chapter = profile, chapter
        self.world: World = get(profile.world)
        self.report = Report(chapter, profile, out_dir)
        self.figures = f"{out_dir}/figures/{chapter}"
        self._other = (None, None)

    def load(self, model=None):
        """A model (default the profile's; a `dvdlib.finetune.Tuned` fine-tune: its base with its
        UNet) loaded by the world, in the profile's dtype and device; of the other models, the last
        one loaded is kept (one at a time)."""
        from .finetune import Tuned, load_finetuned

        P, model = self.profile, model or self.profile.model
        if model == P.model and "pipe" in self.__dict__:
            return self.pipe
        if self._other[0] != model:
            self._other = (None, None)  # dropped before the next one loads
            if isinstance(model, Tuned):
                loaded = load_finetuned(model.base, model.folder, dtype=P.dtype, device=P.device,
                                        load=self.world.load_model)
            else:
                loaded = self.world.load_model(model, dtype=P.dtype, device=P.device)
            self._other = (model, loaded)
        return self._other[1]

    @cached_property
    def pipe(self):
        """The profile's model (loaded once)."""
        return self.load()

    @cached_property
    def layers(self):
        """The cross-attention layers of the profile's model (`dvdlib.layers.registry`)."""
        from .layers import registry

        return registry(self.pipe, self.profile.resolution)

    def store(self, model=None) -> Store:
        """The run store of ``model`` (default the profile's; a fine-tune samples as its base)
        under the profile's sampler."""
        from .finetune import base_of

        model = model or self.profile.model
        return Store(self.profile.store, model_key(model), self.profile.sampler(base_of(model)), self.profile.store_mode)

    @cached_property
    def judge(self):
        """The profile's judge, loaded by the world (paper §2), with the pixel limits of the
        question set where it brings them (the authors' set: `dvdlib.authors.PIXEL_LIMITS`)."""
        limits = self.questions.pixel_limits
        return self.world.load_judge(self.profile.judge, device=self.profile.device,
                                     cache=f"{self.profile.store}/judges",
                                     **({"pixel_limits": limits} if limits else {}))

    @cached_property
    def questions(self):
        """The profile's question set (`dvdlib.judge.load_questions`)."""
        from .judge import load_questions

        return load_questions(self.profile.questions)

    def prompts(self, role: str, n: int | None = None, tokenize: bool = True):
        """The prompt set the profile gives ``role`` (``benchmark``, ``control``, ``balanced``,
        ``memorized``), at most ``n`` rows; ``tokenize`` adds the token spans of its concepts
        (with the model's tokenizer)."""
        from .bench import load_prompt_set

        from .tokens import sequence_tokenizer

        tokenizer = sequence_tokenizer(self.pipe) if tokenize else None
        return load_prompt_set(self.profile.prompt_sets[role], tokenizer, n, sets=self.world.prompt_sets,
                               exclude=self.profile.exclude_concepts)

    # --- the chapter's work, computed (`dvdlib.chapters`; `dvdlib.plan.Count` counts it instead) -------

    def generate(self, prompts, seeds, *, model: str | None = None, attention: dict | None = None,
                 until_step: int | None = None, noise_norms: bool = False) -> list:
        """`dvdlib.generate.generate` of ``prompts`` × ``seeds`` with ``model`` (default the
        profile's) into its store: what is stored is read, the rest made."""
        from .finetune import Tuned
        from .generate import generate, missing

        store, prompts = self.store(model), list(prompts)
        options = dict(attention=attention, until_step=until_step, noise_norms=noise_norms)
        # a fine-tune whose work is all stored is not loaded: its base reads the prompts alike
        pipe = self.pipe if isinstance(model, Tuned) and not missing(store, prompts, seeds, **options) else self.load(model)
        return generate(pipe, prompts, seeds, store=store, batch_size=self.profile.batch_size, **options)

    def judge_dvd(self, rows: pd.DataFrame, seeds, *, model: str | None = None) -> pd.DataFrame:
        """The judge's DvD answers about ``model``'s images of ``rows`` (`dvdlib.dvd.judge_images`, paper §2)."""
        from .dvd import judge_images

        return judge_images(rows, seeds, self.store(model), self.judge, self.questions)

    def remedy(self, rows: pd.DataFrame, seeds, name: str, params: dict | None = None, *, model=None) -> pd.DataFrame:
        """Remedy ``name`` (with ``params``) on ``rows`` × ``seeds`` with ``model`` (default the profile's):
        its images, stored in a store keyed by the sampler and the remedy (made where missing, timed),
        judged (`dvdlib.remedies.compare.remedy`)."""
        from .remedies.compare import remedy

        return remedy(self, rows, seeds, name, params, model)

    def finetune(self, images, recipe):
        """The profile's model fine-tuned on ``images`` (PIL) with ``recipe`` (DreamBooth, paper
        §3.3; prior-preservation images made first where the recipe asks), trained into the run
        store unless finished there (`dvdlib.finetune`: resumable, atomic): a
        `dvdlib.finetune.Tuned` that `generate`, `judge_dvd` and `store` take as ``model``."""
        from .finetune import Tuned, class_images, finetune, finetune_dir, images_digest, is_finished
        from .store import StoreMiss, log_reads

        P = self.profile
        folder = finetune_dir(P.store, model_key(P.model), recipe, images_digest(images))
        if not is_finished(folder):
            if P.store_mode == "frozen":
                raise StoreMiss(f"frozen store {P.store}: the fine-tune {folder} is missing (recipe seed {recipe.seed}); "
                                "run `dvd prefetch` for this chapter first, or build with store_mode 'write'")
            klass = class_images(self.pipe, recipe, self.store(), batch_size=P.batch_size) \
                if recipe.prior_preservation else None
            finetune(self.pipe, images, recipe, folder, class_images=klass)
        log_reads([folder.relative_to(P.store).as_posix()])
        return Tuned(P.model, str(folder))

    def judge_presence(self, rows: pd.DataFrame, seeds, present_at: int = 3) -> pd.DataFrame:
        """Each target's presence in the images of three-concept ``rows`` (`dvdlib.triplets.judge_presence`)."""
        from .triplets import judge_presence

        return judge_presence(rows, seeds, self.store(), self.judge, self.questions, present_at)

    def sweep(self, rows: pd.DataFrame, seeds, *, model=None):
        """An ablation `dvdlib.ablation.Sweep` of ``model`` (default the profile's; a fine-tune samples
        as its base) over ``rows`` and ``seeds`` (paper §3.6), its plain images ``store(model)``'s."""
        from .ablation import Sweep
        from .finetune import base_of

        P, model = self.profile, model or self.profile.model
        return Sweep(self.load(model), rows, seeds, root=P.store, model=model_key(model),
                     sampler=P.sampler(base_of(model)), batch_size=P.batch_size, store_mode=P.store_mode)

    def skip(self, what: str) -> None:
        """Work a count leaves out (`dvdlib.plan.Count.skip`); computing, there is nothing to say."""

    def card(self, uses_judge: bool = True, note: str = "", seeds=None, prompts=None):
        """The profile card (Markdown) that heads a chapter, with the chapter's own ``seeds`` and
        ``prompts`` where they are not the profile's, and an optional ``note`` after it."""
        from IPython.display import Markdown

        return Markdown(self.profile.card(uses_judge=uses_judge, seeds=seeds, prompts=prompts) + note)

    def save(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<figures>/<name>.png`` and ``.pdf`` (`dvdlib.plots.save`)."""
        from .plots import save

        return save(fig, name, self.figures)


def _assigned(source: str) -> set[str]:
    """The names a cell's code assigns at its top level."""
    import ast

    tree = ast.parse(source)
    return {t.id for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target]) if isinstance(t, ast.Name)}


def injected_parameters() -> tuple[set[str], set[str]] | None:
    """(the chapter's parameters, the names papermill injected after them), read from this
    kernel's cell history; None outside a kernel or when papermill injected nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    cells = list(shell.user_ns.get("In", [])) if shell is not None else []
    for i in range(len(cells) - 1, 0, -1):
        if cells[i].lstrip().startswith("# Parameters"):
            return _assigned(cells[i - 1]), _assigned(cells[i])
    return None


def check_parameters() -> None:
    """Stop a chapter given a parameter it does not have (papermill itself only warns)."""
    found = injected_parameters()
    if found:
        known, given = found
        unknown = sorted(given - known)
        if unknown:
            raise ValueError(f"this chapter has no parameter {', '.join(map(repr, unknown))}; "
                             f"its parameters are: {', '.join(sorted(known))}")


def setup(profile: str | Profile = "toy", chapter: str = "chapter", *, out_dir: str | Path = "book",
          **overrides) -> Run:
    """The `Run` of ``chapter`` under ``profile`` (a name, a YAML path or a `Profile`), with the
    non-None ``overrides`` of profile fields applied (a chapter passes its parameters through).
    A parameter papermill injected that the chapter does not have stops it here. Tables the
    chapter displays show every cell whole (pandas cuts text at 50 characters by default, which
    hid verdicts' reasons and p-values behind "..."), and every float as `report.number` writes it."""
    check_parameters()
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.float_format", number)  # 0.579, not 0.579167; 0.022, not 2.201e-02
    chosen = profile if isinstance(profile, Profile) else load_profile(profile, **overrides)
    return Run(chosen, chapter, out_dir)
