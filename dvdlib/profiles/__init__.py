"""Profiles: one name picks the world, model, judge, scale and sampler of a whole run.

Profiles are YAML files beside this module (``smoke.yaml``, ``paper.yaml``, ``toy.yaml``) or any
YAML path. A profile names its world (``world:``, `dvdlib.worlds`), whose prompt sets and question
set it takes unless it names its own. A chapter's parameters cell names the profile and may
override single fields; ``None`` means "keep the profile's value".
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.resources import files
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    model: str
    models: list[str]
    judge: str
    resolution: int
    steps: int
    guidance: float
    eta: float
    seeds: list[int]
    n_prompts: int
    batch_size: int
    dtype: str
    device: str
    store: str
    caveat: str = ""
    #: the world the model, judge, prompts and images come from (`dvdlib.worlds`)
    world: str = "sd"
    #: prompt sets by role, named as `dvdlib.bench.load_prompt_set` knows them (None: the world's)
    prompt_sets: dict[str, str] | None = None
    #: the question set of the DvD judge (`dvdlib.judge.load_questions`; None: the world's)
    questions: str | None = None
    resolutions: dict[str, int] = field(default_factory=dict)
    #: how much of a large procedure this profile runs, by procedure (``ablation``, ``causal``);
    #: a procedure not named runs at the paper's full scale
    scales: dict[str, dict] = field(default_factory=dict)
    #: concepts left out of every prompt set (`dvdlib.bench.load_prompt_set`): ones the profile's
    #: judge does not see where a person does (the toy world's limits, on the methods page)
    exclude_concepts: list[str] = field(default_factory=list)
    #: the sampler's name: "DDIM" (the paper's, every UNet model) or "flow-matching Euler" (SD3 keeps its own)
    scheduler: str = "DDIM"
    #: "write": compute what the run store lacks; "frozen": raise instead (a book built from a
    #: store `dvd prefetch` filled, with nothing recomputed; `dvdlib.store`)
    store_mode: str = "write"

    def resolution_of(self, model: str) -> int:
        """The image side to generate ``model`` at (its native size where the profile says)."""
        return self.resolutions.get(model, self.resolution)

    def sampler(self, model: str | None = None) -> dict:
        """The generation settings that, with the model, key the run store; the guidance is the one
        the model applies (`dvdlib.models.guidance_of`: none for FLUX.1-schnell, whatever is asked)."""
        from ..models import guidance_of

        model = model or self.model
        return {"resolution": self.resolution_of(model), "steps": self.steps,
                "guidance": guidance_of(model, self.guidance), "eta": self.eta, "dtype": self.dtype,
                "sampler": self.scheduler, "negative_prompt": ""}

    def scale(self, procedure: str, full: dict) -> dict:
        """How much of a large procedure this profile runs: ``full`` narrowed by its
        ``scales[procedure]`` (keys of ``full``); ``slice`` says whether anything was narrowed."""
        narrowed = self.scales.get(procedure, {})
        unknown = set(narrowed) - set(full)
        if unknown:
            raise ValueError(f"profile {self.name!r}: unknown scales.{procedure} keys {sorted(unknown)}; "
                             f"known: {sorted(full)}")
        return {**copy.deepcopy(full), **copy.deepcopy(narrowed), "slice": bool(narrowed)}

    def card(self, uses_judge: bool = True, seeds=None, prompts=None) -> str:
        """A Markdown summary of what produced a chapter's numbers (shown at the top of each chapter):
        ``seeds`` and ``prompts`` (a count or a phrase) are the chapter's own where it does not use
        the profile's (the causal test's five seeds, the ablation sweep's one)."""
        judge = f"`{self.judge}`" if uses_judge else f"none used in this chapter (profile's judge: `{self.judge}`)"
        guidance = self.sampler()["guidance"]  # the one the model applies
        seeds = [int(s) for s in (self.seeds if seeds is None else seeds)]
        mine = "" if seeds == list(self.seeds) else f" (this chapter's; the profile has {len(self.seeds)})"
        rows = [("profile", f"`{self.name}` — {self.description}"), ("model", f"`{self.model}`"),
                ("judge", judge), ("sampler", f"{self.scheduler} {self.steps} steps, guidance {guidance}, "
                 f"eta {self.eta}, {self.resolution_of(self.model)}², {self.dtype} on {self.device}"),
                ("seeds", ", ".join(map(str, seeds)) + mine),
                ("prompts per set", str(self.n_prompts)) if prompts is None else ("prompts (this chapter)", str(prompts))]
        if self.exclude_concepts:
            rows.append(("left out of the prompt sets", ", ".join(self.exclude_concepts)
                         + " (the judge misses it where a person sees it)"))
        from ..worlds import get

        limits = get(self.world).limits
        if limits:
            rows.append(("limits", f"{{ref}}`what this world can and cannot test <{limits}>`"))
        table = "| | |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        return table + (f"\n\n**Caveat.** {self.caveat}" if self.caveat else "")

    def asdict(self) -> dict:
        return asdict(self)


def available() -> list[str]:
    """Names of the profiles shipped with dvdlib."""
    return sorted(p.name[:-5] for p in files(__package__).iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str = "smoke", **overrides) -> Profile:
    """The profile ``name`` (a shipped name or a YAML path), with non-None ``overrides`` applied."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else files(__package__) / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown profile {name!r}: use one of {available()} or a path to a YAML file")
    data = yaml.safe_load(path.read_text())
    known = {f.name for f in fields(Profile)}
    unknown = set(data) - known | {k for k in overrides if k not in known}
    if unknown:
        raise ValueError(f"profile {name!r}: unknown fields {sorted(unknown)}; known fields: {sorted(known)}")
    profile = Profile(name=Path(name).stem, **{k: v for k, v in data.items() if k != "name"})
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "model" in changes and "models" not in changes:
        changes["models"] = [changes["model"]]
    if "model" in changes and "scheduler" not in changes:  # another family's model brings its own sampler
        from ..models import sampler_of

        changes["scheduler"] = sampler_of(changes["model"]) or profile.scheduler
    if "model" in changes and "guidance" not in changes:  # and the guidance it applies (FLUX.1-schnell: none)
        from ..models import guidance_of

        changes["guidance"] = guidance_of(changes["model"], profile.guidance)
    return with_world_defaults(replace(profile, **changes))


def with_world_defaults(profile: Profile) -> Profile:
    """``profile`` with the prompt sets and question set of its world where it names none."""
    from ..worlds import get

    world = get(profile.world)
    return replace(profile, prompt_sets=dict(profile.prompt_sets or world.roles),
                   questions=profile.questions or world.questions)
