"""Where DvD sits next to memorization (paper §3.7): the text-conditional noise-prediction norm.

Wen et al. (ICLR 2024) detect memorized prompts by how far the prompt pulls the noise prediction
from the unconditional one: ‖ε(x_t, prompt) − ε(x_t, "")‖₂ (`dvdlib.metrics.noise_prediction_norm`)
at each step, averaged over the first steps and the seeds. Under classifier-free guidance with
the empty negative prompt (the authors' release), the pipeline already calls the UNet on the batch
[ε(x_t, ""); ε(x_t, prompt)]: `record_noise_norms` reads both halves from a forward hook on the
UNet, so measuring costs no extra UNet call. `noise_norms` runs prompt × seed through the store
(resumable, atomic), and `order_tests` checks the paper's order memorized > DominanceBench >
balanced with one-sided Mann–Whitney U tests.
"""

from __future__ import annotations

from contextlib import contextmanager
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm import tqdm

from .generate import initial_latents, stop_after
from .metrics import adjusted_p, noise_prediction_norm
from .store import Store
from .temporal import PAPER_STEPS, scaled_label

#: Wen et al.'s measure reads the first steps; open here: the first 10 of 50, scaled to the schedule.
PAPER_FIRST_STEPS = 10


def first_steps(n_steps: int, paper_first: int = PAPER_FIRST_STEPS, paper_steps: int = PAPER_STEPS) -> int:
    """How many of a ``n_steps`` schedule's steps correspond to the paper's first ``paper_first``
    of ``paper_steps`` (proportional, at least 1)."""
    return scaled_label(paper_first, n_steps, paper_steps)


def epsilon_scale(prediction_type: str, alpha_bar: float) -> float:
    """Factor that turns a difference of two UNet outputs at one step into a difference of noise
    predictions ε. ``"epsilon"`` (SD 1.x): 1. ``"v_prediction"`` (SD 2.1 at 768²): with
    v = √ᾱ ε − √(1−ᾱ) x₀ and the same x_t on both branches, Δv = Δε / √ᾱ, so Δε = √ᾱ · Δv."""
    if prediction_type == "epsilon":
        return 1.0
    if prediction_type == "v_prediction":
        if not 0 < alpha_bar <= 1:
            raise ValueError(f"ᾱ_t must lie in (0, 1], got {alpha_bar}")
        return float(np.sqrt(alpha_bar))
    raise ValueError(f"noise-prediction norm: unsupported prediction type {prediction_type!r} "
                     "(use a model predicting 'epsilon' or 'v_prediction')")


class NoiseNormRecording:
    """Per-step text-conditional noise-prediction norms captured by `record_noise_norms`.

    ``norms[step]``: one array [images] per UNet call of that step (1 = first denoising step),
    in the order the pipeline was called; `per_image` stacks them to [images, steps].
    """

    def __init__(self, pipe):
        self.pipe = pipe
        self.norms: dict[int, list[np.ndarray]] = {}

    def on_unet_output(self, module, args, kwargs, output):
        sample = kwargs.get("sample", args[0] if args else None)
        t = kwargs.get("timestep", args[1] if len(args) > 1 else None)
        half = sample.shape[0] // 2
        guided = (getattr(self.pipe, "do_classifier_free_guidance", False) and sample.shape[0] % 2 == 0
                  and torch.equal(sample[:half], sample[half:]))
        if not guided:
            raise ValueError("the noise-prediction norm needs classifier-free guidance (guidance > 1): the "
                             "UNet was called without the unconditional half")
        step, t_value = self._step(t)
        eps = output[0] if isinstance(output, tuple) else output.sample
        scheduler = self.pipe.scheduler
        alpha_bar = float(scheduler.alphas_cumprod[int(t_value)])
        scale = epsilon_scale(scheduler.config.prediction_type, alpha_bar)
        eps = eps.detach().float().cpu().numpy()
        self.norms.setdefault(step, []).append(scale * noise_prediction_norm(eps[half:], eps[:half]))

    def _step(self, t) -> tuple[int, float]:
        timesteps = self.pipe.scheduler.timesteps
        t = torch.as_tensor(t).flatten()[0].to(timesteps.device)
        hits = (timesteps == t).nonzero()
        if not len(hits):
            raise RuntimeError(f"UNet called at timestep {float(t)}, which is not in the scheduler's schedule")
        return int(hits[0]) + 1, float(t)

    def per_image(self) -> np.ndarray:
        """Norms as [images, steps] (steps 1..n in order); raises if a step saw another batch size."""
        if not self.norms:
            raise ValueError("no noise-prediction norm recorded: run the pipeline inside record_noise_norms")
        steps = sorted(self.norms)
        if steps != list(range(1, len(steps) + 1)):
            raise ValueError(f"recorded steps {steps} are not the first {len(steps)} steps")
        return np.stack([np.concatenate(self.norms[s]) for s in steps], axis=1)


@contextmanager
def record_noise_norms(pipe):
    """``with record_noise_norms(pipe) as rec: pipe(...)`` — ‖ε(x_t, prompt) − ε(x_t, "")‖₂ per image
    and step from the CFG batch the pipeline already runs (paper §3.7); the hook is removed on exit."""
    recording = NoiseNormRecording(pipe)
    hook = pipe.unet.register_forward_hook(recording.on_unet_output, with_kwargs=True)
    try:
        yield recording
    finally:
        hook.remove()


def _spec(store: Store, until_step: int | None) -> dict:
    return {"measure": "noise_prediction_norm", "resolution": store.settings["resolution"], "until_step": until_step}


def noise_norms(pipe, prompts, seeds, *, store: Store, batch_size: int = 8, until_step: int | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Noise-prediction norm per (prompt, seed, step), with the store's sampler (the authors' release).

    Runs the denoising to ``until_step`` (None: the whole schedule), keeps no image, and stores
    each (prompt, seed)'s norms as soon as its batch ends; a rerun computes only what is missing.
    Columns: prompt, seed, step (1 = first), norm.
    """
    prompts, seeds = list(dict.fromkeys(prompts)), [int(s) for s in seeds]
    spec = _spec(store, until_step)
    jobs = [(p, s) for p in prompts for s in seeds]
    todo = [job for job in jobs if not store.has(*job, image=False, attention=spec)]
    bar = tqdm(total=len(todo), disable=not progress or not todo, unit="img",
               desc=f"{store.model}: noise norms for {len(todo)} of {len(jobs)} (prompt, seed)")
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        _run_batch(pipe, batch, store, spec, until_step)
        bar.update(len(batch))
    bar.close()
    rows = []
    for prompt, seed in jobs:
        norms = store.attention(prompt, seed, spec)["noise_norm"]
        rows += [{"prompt": prompt, "seed": seed, "step": i + 1, "norm": float(v)} for i, v in enumerate(norms)]
    return pd.DataFrame(rows)


def _run_batch(pipe, batch, store: Store, spec: dict, until_step: int | None) -> None:
    sampler = store.settings
    if sampler["guidance"] <= 1:
        raise ValueError(f"guidance {sampler['guidance']} ≤ 1 runs no unconditional branch: the noise-prediction "
                         "norm needs classifier-free guidance")
    side = sampler["resolution"]
    call = dict(prompt=[p for p, _ in batch], latents=initial_latents(pipe, [s for _, s in batch], side),
                height=side, width=side, num_inference_steps=sampler["steps"], guidance_scale=sampler["guidance"],
                eta=sampler["eta"], negative_prompt=[""] * len(batch), output_type="latent")
    if until_step:
        call["callback_on_step_end"] = stop_after(until_step)
    with record_noise_norms(pipe) as recording:
        pipe(**call)
    norms = recording.per_image()
    for i, (prompt, seed) in enumerate(batch):
        store.save(prompt, seed, attention={"noise_norm": norms[i]}, spec=spec)


def per_prompt(table: pd.DataFrame, first: int) -> pd.DataFrame:
    """Wen et al.'s score per prompt: the norm averaged over the first ``first`` steps and the seeds."""
    if first < 1 or first > table["step"].max():
        raise ValueError(f"first must lie in 1..{table['step'].max()} (the recorded steps), got {first}")
    kept = table[table["step"] <= first]
    return kept.groupby("prompt", sort=False)["norm"].mean().rename("score").reset_index()


def per_step(table: pd.DataFrame) -> pd.DataFrame:
    """Per step: mean and standard error over prompts of the seed-averaged norm."""
    per = table.groupby(["prompt", "step"])["norm"].mean().reset_index()
    return per.groupby("step")["norm"].agg(mean="mean", sem=lambda x: stats.sem(x) if len(x) > 1 else 0.0).reset_index()


def order_tests(scores: dict[str, np.ndarray], correction: str = "bh") -> pd.DataFrame:
    """One-sided Mann–Whitney U tests of an expected order, for every pair (a before b ⇒ a > b).

    ``scores`` maps set names, in the expected order (highest first: memorized, DominanceBench,
    balanced), to per-prompt scores. Columns: higher, lower, median of each, U, the probability
    that a random prompt of ``higher`` outscores one of ``lower`` (U / n₁n₂), p and the p-value
    corrected over the pairs (Benjamini–Hochberg "bh", or "bonferroni"); ``holds`` when the corrected p < 0.05.
    """
    names = list(scores)
    if len(names) < 2:
        raise ValueError("an order needs at least two prompt sets")
    rows = []
    for a, b in combinations(names, 2):
        x, y = np.asarray(scores[a], float), np.asarray(scores[b], float)
        test = stats.mannwhitneyu(x, y, alternative="greater")
        rows.append({"higher": a, "lower": b, "median_higher": np.median(x), "median_lower": np.median(y),
                     "U": test.statistic, "P(higher > lower)": test.statistic / (len(x) * len(y)), "p": test.pvalue})
    out = pd.DataFrame(rows)
    out["p_adjusted"] = adjusted_p(out["p"], correction)
    out["holds"] = out["p_adjusted"] < 0.05
    return out


# --- figures ---------------------------------------------------------------------------------------

def plot_distributions(scores: dict[str, np.ndarray], ylabel: str):
    """Per-prompt scores of each set (box + points), in the expected order."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    colors = ["0.35", BENCH_COLOR, CONTROL_COLOR][-len(scores):] if len(scores) <= 3 else None
    fig, ax = plt.subplots(figsize=(1.8 * len(scores) + 2, 3.6))
    parts = ax.boxplot([np.asarray(v) for v in scores.values()], patch_artist=True, showfliers=False,
                       medianprops={"color": "black"})
    for i, (box, values) in enumerate(zip(parts["boxes"], scores.values())):
        color = colors[i] if colors else None
        box.set(facecolor=color, alpha=0.5)
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(values))
        ax.plot(i + 1 + jitter, values, ".", color=color, alpha=0.6, ms=4)
    ax.set_xticks(range(1, len(scores) + 1), list(scores))
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def plot_per_step(tables: dict[str, pd.DataFrame], first: int | None = None):
    """Mean noise-prediction norm per denoising step (± s.e.), one line per prompt set; the
    ``first`` steps that the per-prompt score averages are shaded."""
    import matplotlib.pyplot as plt

    from .plots import BENCH_COLOR, CONTROL_COLOR, use_style

    use_style()
    colors = ["0.35", BENCH_COLOR, CONTROL_COLOR][-len(tables):] if len(tables) <= 3 else [None] * len(tables)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for color, (name, table) in zip(colors, tables.items()):
        c = per_step(table)
        ax.plot(c["step"], c["mean"], color=color, label=name)
        ax.fill_between(c["step"], c["mean"] - c["sem"], c["mean"] + c["sem"], color=color, alpha=0.2)
    if first:
        ax.axvspan(0.5, first + 0.5, color="0.92", zorder=0, label=f"first {first} steps (score)")
    ax.set_xlabel("denoising step (1 = first, noisiest)")
    ax.set_ylabel("‖ε(x_t, prompt) − ε(x_t, \"\")‖₂\n(mean over prompts ± s.e.)")
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def prompt_sets(run, n_memorized: int | None = None) -> dict[str, list[str]]:
    """The prompts of each set the chapter compares, by the set's name: the memorized set (where
    the world has one; ``n_memorized`` prompts, None: n_prompts · 5/3, at most 500), the benchmark
    and the balanced set (the profile's ``n_prompts`` each)."""
    P, sets = run.profile, {}
    name = P.prompt_sets.get("memorized")
    if name is not None:
        sets[name] = run.prompts("memorized", n_memorized or min(500, round(P.n_prompts * 5 / 3)), tokenize=False).prompt.tolist()
    else:
        print(f"No memorized prompts in this world (benchmark {P.prompt_sets['benchmark']!r}): "
              "comparing the benchmark with the balanced set only.")
    sets[P.prompt_sets["benchmark"]] = run.prompts("benchmark", P.n_prompts).prompt.unique().tolist()
    sets[P.prompt_sets["balanced"]] = run.prompts("balanced", P.n_prompts).prompt.tolist()
    return sets


def sets_table(sets: dict[str, list[str]]) -> pd.DataFrame:
    """How many prompts each set holds, with its first as an example."""
    return pd.DataFrame({"prompts": {name: len(p) for name, p in sets.items()},
                         "example": {name: p[0] for name, p in sets.items()}})


def norms_by_set(run, sets: dict[str, list[str]], until_step: int | None = None) -> dict[str, pd.DataFrame]:
    """`noise_norms` of every set's prompts with the run's model, seeds and store."""
    P = run.profile
    return {name: noise_norms(run.pipe, prompts, P.seeds, store=run.store(), batch_size=P.batch_size,
                              until_step=until_step) for name, prompts in sets.items()}


def scores_by_set(norms: dict[str, pd.DataFrame], first: int) -> dict[str, np.ndarray]:
    """Wen et al.'s per-prompt score (`per_prompt`) of every set, as arrays."""
    return {name: per_prompt(table, first)["score"].to_numpy() for name, table in norms.items()}


def order_text(scores: dict[str, np.ndarray]) -> str:
    """The sets ordered by median score, highest first: "memorized > dominancebench > balanced"."""
    return " > ".join(sorted(scores, key=lambda name: -pd.Series(scores[name]).median()))


def add_medians(report, scores: dict[str, np.ndarray]) -> None:
    """One results row per set: its median score (``median_<set>``; the paper reports none)."""
    for name, values in scores.items():
        report.add(f"median_{name.replace('-', '_')}", f"median score, {name}", "not reported",
                   f"{pd.Series(values).median():.4g}")


def tests_text(tests: pd.DataFrame) -> str:
    """`order_tests` in one line: "a > b: p = 0.01; …"."""
    expected = tests.set_index(["higher", "lower"])
    return "; ".join(f"{a} > {b}: p = {r.p_adjusted:.2g}" for (a, b), r in expected.iterrows())
