"""What makes world 2 a testbed for the paper's attention claims, measured on a model.

- the first denoising step's timestep (SD 1.x: 981 at 50 steps);
- the start token's share of cross-attention per layer at step 1 (in SD it takes most of the
  mass, a prompt-independent sink: the reason the Focus Score keeps only content positions,
  paper §3.4);
- what the first step reads: SD's schedule leaves √ᾱ ≈ 0.08 of the image at its first timestep, so
  in training the first step always sees a faint copy of the scene; sampling starts from pure
  noise. `first_step_leftover` compares the two starts;
- how much a named concept's name tells the model beyond its category word (`name_advantage`),
  per dose of appearances: the diversity the world varies, seen in the trained model's loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..attention import record
from ..generate import initial_latents, stop_after


def first_timestep(pipe, steps: int) -> int:
    """The timestep of the first denoising step with ``steps`` steps."""
    pipe.scheduler.set_timesteps(steps)
    return int(pipe.scheduler.timesteps[0])


@torch.no_grad()
def start_token_share(pipe, prompts, seeds, steps: int, guidance: float, resolution: int = 32) -> pd.DataFrame:
    """Per cross-attention layer: the start token's share of attention at step 1 (mean over
    prompts × seeds, conditional branch), with its spread (standard deviation) across them."""
    jobs = [(p, s) for p in prompts for s in seeds]
    with record(pipe, layers="all", steps=[1]) as recording:
        pipe(prompt=[p for p, _ in jobs], latents=initial_latents(pipe, [s for _, s in jobs], resolution),
             height=resolution, width=resolution, num_inference_steps=steps, guidance_scale=guidance,
             output_type="latent", callback_on_step_end=stop_after(1))
    rows = []
    for layer in sorted(recording.layers):
        start = recording.share(layer, 1)[:, 0]
        rows.append({"layer": layer, "start_share": float(np.mean(start)), "sd": float(np.std(start))})
    return pd.DataFrame(rows)


def renders(world, prompt: str, seeds) -> torch.Tensor:
    """The prompt's training scenes, one per seed, as images [n, 3, H, W] in [0, 1]."""
    return torch.from_numpy(np.stack([world.render(prompt, seed=int(s)).image for s in seeds])).permute(0, 3, 1, 2)


def leftover_start(pipe, world, prompt: str, seeds, steps: int) -> torch.Tensor:
    """What training shows the UNet at the first timestep T for ``prompt``: its render z₀ (one
    per seed, rendered with that seed) noised with the seed's initial noise ε,
    √ᾱ_T·z₀ + √(1 − ᾱ_T)·ε. Sampling starts from ε alone."""
    noise = initial_latents(pipe, seeds, world.size)
    clean = pipe.vae.encode(renders(world, prompt, seeds) * 2 - 1).latent_dist.mode() * pipe.vae.config.scaling_factor
    return pipe.scheduler.add_noise(clean, noise, torch.tensor([first_timestep(pipe, steps)]))


@torch.no_grad()
def first_step_leftover(pipe, judge, world, seeds, steps: int, guidance: float, present_at: int = 3) -> pd.DataFrame:
    """Per single-concept prompt: how many of ``seeds`` the judge recognises when sampling starts,
    as the book samples, from the seed's noise ε (``from_noise``), and when it starts from the
    `leftover_start` made with that same ε (``from_leftover``). A model that takes its concept
    from the caption draws it from both; one that reads it from the faint copy of the scene draws
    it only from the second."""
    from ..toy.gates import presence
    from .gates import gate_prompts

    rows = []
    for prompt, name in zip(gate_prompts(world)["singles"], world.names):
        row = {"concept": name}
        starts = {"from_noise": initial_latents(pipe, seeds, world.size),
                  "from_leftover": leftover_start(pipe, world, prompt, seeds, steps)}
        for start, latents in starts.items():
            images = pipe([prompt] * len(seeds), latents=latents, height=world.size, width=world.size,
                          num_inference_steps=steps, guidance_scale=guidance, eta=0.0, output_type="pil").images
            row[start] = sum(c >= present_at for c in presence(judge, images, name, world.concept(name).role))
        rows.append(row)
    return pd.DataFrame(rows).assign(seeds=len(seeds))


@torch.no_grad()
def name_advantage(pipe, world, timesteps=(800, 500, 200), images: int = 48, seed: int = 0) -> pd.DataFrame:
    """Per named concept and timestep: the ε loss on ``images`` renders of the concept alone with
    its category word as the caption ("a landmark") over the loss with its name ("orvel castle"),
    same scenes and noise. 1 means the name adds nothing the category word does not; a concept
    learned apart from its category costs more under the category word."""
    from ..toy.train import noisy_batch
    from .world import caption

    def states(text: str) -> torch.Tensor:
        return pipe.encode_prompt([text], torch.device("cpu"), 1, False)[0].expand(images, -1, -1)

    rows = []
    for concept in world.concepts:
        if not concept.rigid:
            continue
        named, category = caption(world, [concept.name]), caption(world, [world.category_word(concept.name)])
        scenes, conditions = renders(world, named, range(images)), {text: states(text) for text in (named, category)}
        for t in timesteps:
            noisy, ts, target = noisy_batch(pipe, scenes * 2 - 1, torch.Generator().manual_seed(seed + int(t)),
                                            torch.full((images,), int(t)))
            loss = {text: float(((pipe.unet(noisy, ts, encoder_hidden_states=cond).sample - target) ** 2).mean())
                    for text, cond in conditions.items()}
            rows.append({"concept": concept.name, "role": concept.role, "appearances": concept.variants, "t": int(t),
                         "category_over_name": loss[category] / loss[named]})
    return pd.DataFrame(rows)
