"""The toy world's judge: a small CNN behind the book's judge interface.

`ToyJudge` answers the yes/no questions of a `dvdlib.judge.QuestionSet` about toy scenes, so the
DvD Score machinery (paper §2) runs unchanged on the toy model. How it answers:

- **It reads the question.** The concept is found through the question set's templates (the text
  in place of ``{concept}``), or, for a question of no template, as the one concept word of the
  world it contains. A concept the world does not have is an error, never a silent No.
- **Presence probabilities.** The CNN gives, per concept of the world, the probability that the
  concept is in the image (multi-label; a category word such as "landmark" is present when any
  concept of its role is, the tower included), and a probability that the image is garbage.
- **Graded questions.** Question ``i`` of a group (in the set's order, weakest claim first) is
  Yes when the concept's probability reaches ``THRESHOLDS[i]`` = 0.5, 0.6, 0.7, 0.8, 0.9, so
  ``c`` counts how surely the concept is there. The judge is trained to give a ghost (a sprite
  faded toward the background) a presence that grows with its contrast (`FADE_RAMP`), so a faint
  object gets a small ``c`` rather than all or nothing. A question of no template uses 0.5.
- **Unrecognisable.** An image is unrecognisable when its garbage probability is ≥ 0.5. It then
  answers ``"No (unrecognisable)"`` to every question. Optionally (``guard=GUARD``) also when some
  concept's probability falls in the undecided band (0.2, 0.8), the guard of the earlier
  attempts; it is off by default because it turns one ambiguous concept into "nothing is there"
  (a clear tower beside a faint ball would score c = 0 instead of c = 5, n = 1).

Answers are ``"Yes (p=0.97)"`` / ``"No (p=0.03)"`` / ``"No (unrecognisable)"``, kept verbatim;
`dvdlib.judge.is_yes` reads them.

Files (`save_judge`, `load_toy_judge`): fp16 safetensors weights and ``manifest.json``. Training
data: `dvdlib.toy.judge_data`; training and evaluation: `dvdlib.toy.judge_training`; the report:
`dvdlib.toy.judge_report`; command line: ``dvd toy judge``.
"""

from __future__ import annotations

import json
import platform
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..judge import QuestionSet, load_questions
from .world import World

#: Presence probability needed for a Yes to question i of a group (weakest claim first).
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
#: With ``guard=GUARD``, concept probabilities strictly inside this band make an image unrecognisable.
GUARD = (0.2, 0.8)
UNRECOGNISABLE = "No (unrecognisable)"
WEIGHTS, MANIFEST = "judge.safetensors", "manifest.json"



@dataclass
class JudgeConfig:
    """Everything that determines a trained judge."""

    seed: int = 0
    channels: tuple = (16, 32, 64)
    renders: int = 40_000
    garbage: int = 12_000
    steps: int = 2_400
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    pixel_noise: float = 0.04  # max std of the light noise added to training renders
    # generations are never pixel-exact renders (`dvdlib.toy.handcheck` measured what that costs):
    # a share `degraded` of the renders is drawn the way a generator draws (`degrade`); 0 turns a part off
    colour_jitter: float = 0.06  # max per-channel gain change and brightness shift
    saturation: float = 0.2  # max change of saturation (factor in [1 - s, 1 + s])
    blur: float = 0.5  # max weight of a 3×3 box blur mixed in
    stretch: float = 0.12  # max change of scale along each axis (nearest-pixel resampling)
    fringe: float = 0.5  # max amplitude of random colour on edge pixels (up to half of them per image)
    background: float = 0.0  # max brightness lift of the plain background in a degraded render (tint: a third)
    degraded: float = 0.5  # share of the renders of a batch degraded (the rest stay exact)
    fade: float = 0.25  # share of unstyled renders with one sprite faded (soft target)
    empty: float = 0.1
    single: float = 0.35
    held_out: tuple = ()  # pairs the judge never sees (none: it must know every pair it is asked about)
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> "JudgeConfig":
        known = {f.name for f in fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in known})
        cfg.channels = tuple(cfg.channels)
        cfg.held_out = tuple(tuple(p) for p in cfg.held_out)
        return cfg


class ToyNet(nn.Module):
    """Three conv blocks (32² → 4²), global mean and max pooling, one logit per concept plus one
    for garbage (the last)."""

    def __init__(self, concepts: int, channels=(16, 32, 64)):
        super().__init__()
        layers, c_in = [], 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c_in, concepts + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, 32, 32] in [0, 1] → logits [N, concepts + 1]."""
        h = self.features(x * 2 - 1)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))


def _to_array(image) -> np.ndarray:
    """A PIL image or an array [H, W, 3] (uint8, or float in [0, 1]) → float32 [32, 32, 3]."""
    from PIL import Image

    if isinstance(image, Image.Image):
        image = image.convert("RGB")
        if image.size != (32, 32):
            image = image.resize((32, 32), Image.BOX)
        return np.asarray(image, np.float32) / 255
    a = np.asarray(image)
    a = a.astype(np.float32) / 255 if a.dtype == np.uint8 else a.astype(np.float32)
    if a.shape != (32, 32, 3):
        raise ValueError(f"the toy judge takes 32×32 RGB images, got an array of shape {a.shape}")
    return a


class ToyJudge:
    """The toy world's judge (see the module docstring); a `dvdlib.judge.Judge`."""

    name = "toy-cnn"

    def __init__(self, net: ToyNet, world: World | None = None, questions: QuestionSet | None = None,
                 thresholds=THRESHOLDS, guard: tuple[float, float] | None = None, garbage_at: float = 0.5):
        self.net, self.world = net.eval(), world or World()
        self.questions = questions or load_questions(self.world.question_set)
        self.thresholds, self.guard, self.garbage_at = tuple(thresholds), guard, garbage_at
        if net.head.out_features != len(self.world.names) + 1:
            raise ValueError(f"the network has {net.head.out_features - 1} concept outputs, the world {len(self.world.names)}")

    @torch.no_grad()
    def probabilities(self, images) -> tuple[np.ndarray, np.ndarray]:
        """(presence probability [N, concepts] in `World.names` order, garbage probability [N])."""
        x = np.stack([_to_array(im) for im in images]) if len(images) else np.zeros((0, 32, 32, 3), np.float32)
        p = torch.sigmoid(self.net(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())).numpy()
        return p[:, :-1], p[:, -1]

    def unrecognisable(self, presence: np.ndarray, garbage: np.ndarray) -> np.ndarray:
        """Per image: garbage probability ≥ ``garbage_at`` or (guard) any presence in the band."""
        out = garbage >= self.garbage_at
        if self.guard is not None:
            lo, hi = self.guard
            out |= ((presence > lo) & (presence < hi)).any(1)
        return out

    def read(self, question: str) -> tuple[str, float]:
        """(concept, threshold) of a question: by the question set's templates, else the one
        concept word of the world in it. ValueError for a concept the world does not have."""
        found = self.questions.match(question)
        if found:
            _, index, concept = found
            concept = concept.lower()
            if concept not in self.world.names:
                raise ValueError(f"question {question!r} asks about {concept!r}, which is not a concept of "
                                 f"the toy world (known: {', '.join(self.world.names)})")
            return concept, self.thresholds[index]
        words = [n for n in self.world.names if re.search(rf"\b{re.escape(n)}\b", question, re.I)]
        if len(words) != 1:
            raise ValueError(f"question {question!r} names {'no' if not words else 'several'} concepts of the toy "
                             f"world ({', '.join(words or self.world.names)}) and matches no template of "
                             f"question set {self.questions.name!r}")
        return words[0], self.thresholds[0]

    def ask(self, images, questions) -> list[list[str]]:
        """Per image, the answer to each question (one forward pass for all images)."""
        asked = [self.read(q) for q in questions]
        presence, garbage = self.probabilities(images)
        bad = self.unrecognisable(presence, garbage)
        column = {n: i for i, n in enumerate(self.world.names)}
        return [[UNRECOGNISABLE if bad[k] else
                 f"{'Yes' if presence[k, column[c]] >= t else 'No'} (p={presence[k, column[c]]:.2f})" for c, t in asked]
                for k in range(len(presence))]



def save_judge(judge: ToyJudge, folder, cfg: JudgeConfig, facts: dict) -> Path:
    """Write fp16 safetensors weights and ``manifest.json`` (config, world, thresholds, facts)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in judge.net.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    manifest = {"judge": judge.name, "config": asdict(cfg), "world": judge.world.to_dict(), "concepts": judge.world.names,
                "thresholds": list(judge.thresholds), "guard": judge.guard, "garbage_at": judge.garbage_at,
                "questions": judge.questions.name, **facts,
                "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def stored_name(judge: str) -> str:
    """The name a toy judge folder's answers are stored under (its manifest's), else ``judge`` itself."""
    manifest = Path(judge) / MANIFEST
    return json.loads(manifest.read_text())["judge"] if manifest.is_file() else judge


def load_toy_judge(folder="toy/judge", world_class=World, **judge_options) -> ToyJudge:
    """Load a judge written by `save_judge` (weights back to float32) for a world of
    ``world_class`` (rebuilt from the manifest); ``judge_options`` override the manifest's
    thresholds / guard / question set (`ToyJudge` arguments)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} holds no toy judge (no {MANIFEST}); train one with "
                                f"`dvd toy judge --out {folder}`")
    m = json.loads((folder / MANIFEST).read_text())
    cfg, world = JudgeConfig.from_dict(m["config"]), world_class.from_dict(m["world"])
    net = ToyNet(len(world.names), cfg.channels)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in load_file(str(folder / WEIGHTS)).items()})
    options = {"thresholds": m["thresholds"], "guard": tuple(m["guard"]) if m["guard"] else None,
               "garbage_at": m["garbage_at"], "questions": load_questions(m["questions"]), **judge_options}
    return ToyJudge(net, world, **options)
