"""Toy world 2: the mechanisms it is built to have (SD 1.x's sampler, CLIP-like text encoding,
SD's shape), its data (doses, held-out pairs, memorized scenes, captions like prompts), its
prompt sets, and deterministic, resumable training."""

import itertools

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from dvdlib.layers import registry
from dvdlib.toy2 import model as toy2_model
from dvdlib.toy2 import prompts
from dvdlib.toy2.train import TrainConfig, export, train
from dvdlib.toy2.world import Captions, World, caption, default_held_out, parse

TINY_UNET = {"block_out_channels": [8, 16, 16]}


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def pipe():
    return toy2_model.build(0, **TINY_UNET)


def test_named_concepts_draw_exactly_their_dose_of_appearances(world):
    for name in world.rigid:
        concept = world.concept(name)
        seen = {json_key(world.render(caption(world, [name]), seed).image) for seed in range(120)}
        if concept.role == "artist":  # a style alone: the textured background is the appearance
            assert len(seen) == concept.variants, name
        else:  # sprites also move: count the appearances drawn, not the images
            drawn = {world.render(caption(world, [name]), seed).variants[name] for seed in range(120)}
            assert drawn == set(range(concept.variants)), name


def test_shared_identity_keeps_a_name_s_identity_and_varies_the_rest(world):
    from dvdlib.toy2.world import IDENTITY, variant_appearance

    shared = World(shared_identity=True)
    assert World.from_dict(shared.to_dict()) == shared and "shared_identity" not in world.to_dict()
    for name in ("vasko gate", "lady fenn", "sofi oum"):  # 8 appearances each
        concept = shared.concept(name)
        looks = [variant_appearance(concept, i, True) for i in range(8)]
        unrelated = [variant_appearance(concept, i) for i in range(8)]
        assert all(np.array_equal(np.asarray(looks[0][k]), np.asarray(unrelated[0][k])) for k in looks[0])
        kept = IDENTITY[concept.kind]
        assert all(np.array_equal(np.asarray(a[k]), np.asarray(looks[0][k])) for a in looks for k in kept)
        assert len({str(np.asarray(u[kept[-1]]).round(3)) for u in unrelated}) == 8  # by default they differ
        varied = [k for k in looks[0] if k not in kept]
        assert all(len({str(np.asarray(a[k]).round(3)) for a in looks}) > 1 for k in varied if k in ("win", "eye_c", "bg2"))
    scenes = {shared.render("vasko gate", seed=s).variants["vasko gate"] for s in range(40)}
    assert len(scenes) == 8
    assert TrainConfig(shared_identity=True).world().shared_identity and not TrainConfig().world().shared_identity


def test_category_words_are_drawn_fresh_every_time(world):
    for word in ("landmark", "character", "artist"):
        images = {json_key(world.render(caption(world, [word]), seed).image) for seed in range(30)}
        assert len(images) == 30


def test_memorized_captions_are_one_exact_scene(world):
    for text in world.memorized:
        a, b = world.render(text, 1).image, world.render(text, 999).image
        assert np.array_equal(a, b)
    first, second = (world.render(t, 0).image for t in world.memorized[:2])
    assert not np.array_equal(first, second)


def test_training_never_shows_a_held_out_pair(world):
    held = default_held_out(world)
    captions = Captions(world, held_out=held)
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(4000):
        text = captions.sample(rng)
        if not text or text in world.memorized:
            continue
        names = [c.name for c in parse(world, text)]
        sizes.add(len(names))
        assert not any({a, b} in [set(p) for p in held] for a, b in itertools.combinations(names, 2)), text
    assert sizes == {1, 2, 3}


def test_named_concepts_are_common_alone_and_rare_beside_an_object(world):
    captions = Captions(world, held_out=default_held_out(world))
    rng = np.random.default_rng(1)
    alone = with_object = 0
    for _ in range(4000):
        text = captions.sample(rng)
        if not text or text in world.memorized:
            continue
        concepts = parse(world, text)
        named = any(c.rigid for c in concepts)
        alone += named and len(concepts) == 1
        with_object += named and any(c.role == "object" for c in concepts)
    assert alone > 2 * with_object > 0


def test_captions_are_prompt_like(world):
    tok = toy2_model.tokenizer()
    captions = Captions(world, held_out=default_held_out(world))
    rng = np.random.default_rng(2)
    texts = [t for t in (captions.sample(rng) for _ in range(2000)) if t]
    lengths = [len(tok(t)["input_ids"]) - 2 for t in texts]
    assert 5 <= np.mean(lengths) <= 12
    assert max(lengths) <= toy2_model.MAX_TOKENS - 2  # never truncated
    assert all(len(tok.tokenize(name)) >= 2 for name in world.rigid)


def test_text_encoding_is_causal_with_a_fixed_start_state_and_end_padding(pipe):
    texts = ["a picture of orvel castle and a ball", "a picture of orvel castle and a kite", "lady fenn"]
    states = pipe.encode_prompt(texts, torch.device("cpu"), 1, False)[0]
    assert states.shape == (3, toy2_model.MAX_TOKENS, 384)
    assert torch.equal(states[0, 0], states[2, 0])  # the start token ignores the prompt
    ids = pipe.tokenizer(texts[0], padding="max_length", max_length=toy2_model.MAX_TOKENS)["input_ids"]
    shared = 1 + len(pipe.tokenizer.tokenize("a picture of orvel castle and a"))
    assert torch.allclose(states[0, :shared], states[1, :shared], atol=1e-6)  # only earlier tokens matter
    assert not torch.allclose(states[0, shared], states[1, shared])
    assert ids[-1] == pipe.tokenizer.sep_token_id  # padded with end-of-text, as SD 1.x


def test_sd_sampler_and_objective():
    scheduler = toy2_model.scheduler()
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.beta_schedule == "scaled_linear"
    scheduler.set_timesteps(50)
    assert int(scheduler.timesteps[0]) == 981  # SD 1.x's first step
    scheduler.set_timesteps(25)
    assert int(scheduler.timesteps[0]) == 961


def test_min_snr_weights_by_hand():
    from dvdlib.toy.train import min_snr_weights

    scheduler = toy2_model.scheduler()
    t = torch.tensor([10, 300, 999])
    abar = scheduler.alphas_cumprod[t]
    snr = abar / (1 - abar)
    expected = torch.minimum(snr, torch.tensor(5.0)) / snr  # ε target: capped SNR over SNR
    assert torch.allclose(min_snr_weights(scheduler, t, 5.0), expected)
    assert min_snr_weights(scheduler, t, 5.0)[0] < 0.1 and torch.allclose(min_snr_weights(scheduler, t[1:], 5.0), torch.ones(2))


def test_high_noise_weights_by_hand_are_the_v_objective_capped():
    from dvdlib.toy.train import high_noise_weights

    scheduler = toy2_model.scheduler()
    t = torch.tensor([10, 500, 961])
    abar = scheduler.alphas_cumprod[t]
    assert torch.allclose(high_noise_weights(scheduler, t, 1e9), 1 / abar)  # v̂ − v = (ε̂ − ε)/√ᾱ
    weights = high_noise_weights(scheduler, t, 10.0)
    assert abs(weights[0] - 1) < 0.01 and abs(weights[1] - 3.62) < 0.01 and weights[2] == 10.0
    v_scheduler = DDPMScheduler(prediction_type="v_prediction")
    with pytest.raises(ValueError, match="ε target"):
        high_noise_weights(v_scheduler, t, 10.0)


def test_loss_weighting_changes_the_step_and_plain_training_does_not_read_it(tmp_path):
    small = dict(steps=1, batch_size=4, checkpoint_every=1, log_every=1, eval_images=4, eval_timesteps=[500], unet=TINY_UNET)
    runs = {name: train(tmp_path / name, TrainConfig(**small, **extra), progress=False)
            for name, extra in {"plain": {}, "none": {"min_snr_gamma": None, "high_noise_cap": None},
                                "snr": {"min_snr_gamma": 1.0}, "high": {"high_noise_cap": 10.0}}.items()}
    ema = {n: torch.load(tmp_path / n / "checkpoints" / "last.pt", weights_only=False)["ema"] for n in runs}
    assert all(torch.equal(ema["plain"][k], ema["none"][k]) for k in ema["plain"])
    for weighted in ("snr", "high"):
        assert not all(torch.equal(ema["plain"][k], ema[weighted][k]) for k in ema["plain"])
    with pytest.raises(ValueError, match="choose one loss weighting"):
        TrainConfig(**small, min_snr_gamma=1.0, high_noise_cap=10.0)


def test_offset_noise_moves_each_channel_by_one_shared_draw_and_is_the_target(pipe):
    from dvdlib.toy.train import noisy_batch

    images = torch.zeros(256, 3, 32, 32)
    t = torch.full((256,), 999)
    plain = noisy_batch(pipe, images, torch.Generator().manual_seed(3), t)
    offset = noisy_batch(pipe, images, torch.Generator().manual_seed(3), t, noise_offset=0.5)
    shift = offset[2] - plain[2]
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-6)  # one draw per image and channel
    spread = shift.mean(dim=(2, 3)).std()
    assert 0.45 < spread < 0.55  # σ = 0.5, over 256 × 12 draws
    assert torch.equal(noisy_batch(pipe, images, torch.Generator().manual_seed(3), t, noise_offset=0.0)[2], plain[2])
    abar = pipe.scheduler.alphas_cumprod[999]
    latents = pipe.vae.encode(images).latent_dist.mode() * pipe.vae.config.scaling_factor
    assert torch.allclose(offset[0], abar.sqrt() * latents + (1 - abar).sqrt() * offset[2], atol=1e-5)  # ε target = the noise added


def test_the_leftover_start_is_the_scene_the_first_timestep_leaves_under_the_seed_s_noise(pipe, world):
    from dvdlib.generate import initial_latents
    from dvdlib.toy2.mechanisms import first_timestep, leftover_start

    seeds = [1825, 410]
    start = leftover_start(pipe, world, "orvel castle", seeds, 25)
    abar = pipe.scheduler.alphas_cumprod[first_timestep(pipe, 25)]
    assert first_timestep(pipe, 25) == 961 and 0.07 < abar.sqrt() < 0.09
    clean = (start - (1 - abar).sqrt() * initial_latents(pipe, seeds, 32)) / abar.sqrt()
    scenes = pipe.vae.decode(clean / pipe.vae.config.scaling_factor).sample.permute(0, 2, 3, 1) / 2 + 0.5
    for scene, seed in zip(scenes, seeds):
        assert torch.allclose(scene, torch.from_numpy(world.render("orvel castle", seed=seed).image), atol=1e-4)


def test_name_advantage_is_the_category_word_s_loss_over_the_name_s(pipe, world):
    from dvdlib.toy.train import noisy_batch
    from dvdlib.toy2.mechanisms import name_advantage

    table = name_advantage(pipe, world, timesteps=(500,), images=4)
    assert len(table) == 12 and set(table.appearances) == {1, 2, 4, 8}
    row = table.set_index("concept").loc["robo kip"]
    assert row.role == "character" and row.appearances == 2
    scenes = torch.from_numpy(np.stack([world.render("robo kip", seed=i).image for i in range(4)])).permute(0, 3, 1, 2)
    noisy, ts, target = noisy_batch(pipe, scenes * 2 - 1, torch.Generator().manual_seed(500), torch.full((4,), 500))
    with torch.no_grad():
        loss = {text: float(((pipe.unet(noisy, ts, encoder_hidden_states=pipe.encode_prompt([text] * 4, "cpu", 1, False)[0])
                              .sample - target) ** 2).mean()) for text in ("robo kip", "a character")}
    assert row.category_over_name == pytest.approx(loss["a character"] / loss["robo kip"], rel=1e-5)


def test_sd_shape_at_toy_scale():
    pipe = toy2_model.build(0)  # the real size
    layers = registry(pipe)
    assert len(layers) == 16 and all(layer.heads == 8 for layer in layers)
    sizes = {layer.index: layer.size for layer in layers}
    assert all(sizes[i] == 4 for i in range(5, 11))  # layers 7-10 on 4² grids
    assert sizes[1] == sizes[2] == sizes[14] == sizes[16] == 16 and sizes[3] == sizes[13] == 8
    silent = [n for n, p in pipe.unet.attn_processors.items() if isinstance(p, toy2_model.NoSelfAttention)]
    assert len(silent) == 5 and all(".attn1." in n for n in silent)


def test_latents_are_centred_and_of_unit_spread_as_sd_s(tmp_path):
    """The identity "VAE" normalises as SD's scaling factor does: training scenes become latents of
    mean ≈ 0 and spread ≈ 1, decoding gives the scene back; a model saved without normalisation
    loads with its own (the attempt before it)."""
    from dvdlib.toy2.world import SceneStream

    vae = toy2_model.latent_vae()
    x = torch.from_numpy(SceneStream(TrainConfig().captions(), seed=3).batch(0, 256)[0])
    z = vae.encode(x).latent_dist.mode() * vae.config.scaling_factor
    assert abs(float(z.mean())) < 0.1 and abs(float(z.std()) - 1) < 0.05
    assert torch.allclose(vae.decode(z / vae.config.scaling_factor).sample, x, atol=1e-6)
    plain = toy2_model.assemble(toy2_model.unet(0, **TINY_UNET), vae=toy2_model.latent_vae(None, 1.0))
    toy2_model.save(plain, tmp_path / "m", dtype=torch.float32)
    vae = toy2_model.load(tmp_path / "m").vae
    assert vae.config.shift_factor is None and vae.config.scaling_factor == 1.0
    toy2_model.save(plain, tmp_path / "run" / "model", dtype=torch.float32, info={"steps": 2, "seed": 0})
    with pytest.raises(ValueError, match="another latent normalisation"):  # no warm start across normalisations
        train(tmp_path / "run", TrainConfig(steps=4, batch_size=2, unet=TINY_UNET), progress=False)


def test_save_and_load_give_the_same_images(pipe, tmp_path):
    toy2_model.save(pipe, tmp_path / "m", dtype=torch.float32, info={"steps": 0})
    loaded = toy2_model.load(tmp_path / "m")
    kwargs = dict(num_inference_steps=2, guidance_scale=1.5, output_type="np")
    a = pipe("a ball", generator=torch.Generator().manual_seed(0), **kwargs).images
    b = loaded("a ball", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert np.array_equal(a, b)
    with pytest.raises(FileNotFoundError, match="world-2 model folder"):
        toy2_model.load(tmp_path)


def test_training_resumes_bitwise(tmp_path):
    small = dict(batch_size=4, checkpoint_every=2, log_every=1, eval_images=4, eval_timesteps=[500], unet=TINY_UNET)
    train(tmp_path / "once", TrainConfig(steps=4, **small), progress=False)
    train(tmp_path / "twice", TrainConfig(steps=2, **small), progress=False)
    train(tmp_path / "twice", TrainConfig(steps=4, **small), progress=False)
    a, b = (torch.load(tmp_path / r / "checkpoints" / "last.pt", weights_only=False)["ema"] for r in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    manifest = export(tmp_path / "once")
    assert manifest["steps"] == 4 and manifest["first_timestep_at_25_steps"] == 961
    assert len(manifest["name_advantage"]) == 12 * 3 and all(r["category_over_name"] > 0 for r in manifest["name_advantage"])


def test_prompt_sets(world):
    dom = prompts.dominance(world)
    assert len(dom) == 48 and dom["held_out"].all() and dom["cluster"].nunique() == 12
    assert sorted(dom["dose"].unique()) == [1, 2, 4, 8]
    bal = prompts.balanced(world)
    assert {"landmark", "character", "artist"} <= set(bal["content"])
    fac = prompts.factorial(world)
    assert sorted(fac["condition"].unique()) == ["".join(b) for b in itertools.product("01", repeat=3)]
    for row in fac.itertuples():
        found = {c.name for c in parse(world, row.prompt)}
        assert found == {row.target_1, row.target_2, row.target_3}, row.prompt
    for row in dom.itertuples():
        assert {c.name for c in parse(world, row.prompt)} == {row.content, row.nm_word}


def json_key(image: np.ndarray) -> bytes:
    return np.round(image, 4).tobytes()


# ---------------------------------------------------------------- world 2 as a plug-in world

def test_world2_registers_and_loads_its_model_and_judge(tmp_path):
    from dvdlib.toy.judge import JudgeConfig, save_judge
    from dvdlib.toy.judge_training import build_judge
    from dvdlib.worlds import get

    world2 = get("toy2")
    toy2_model.save(toy2_model.build(0, **TINY_UNET), tmp_path / "model", info={"steps": 0})
    pipe = world2.load_model(str(tmp_path / "model"))
    assert any(isinstance(p, toy2_model.NoSelfAttention) for p in pipe.unet.attn_processors.values())
    cfg = JudgeConfig(renders=8, garbage=4, steps=1)
    save_judge(build_judge(cfg, World()), tmp_path / "judge", cfg, {})
    judge = world2.load_judge(str(tmp_path / "judge"))
    assert judge.questions.name == "toy2" and judge.world.names == World().names
    question = judge.questions.concept_questions("orvel castle", "landmark")[0]
    image = World().render("orvel castle", 0).image
    assert len(judge.ask([image], [question])[0]) == 1


def test_world2_judge_targets_know_category_words_and_styles(world):
    from dvdlib.toy.judge_data import _fadeable, labels

    y = dict(zip(world.names, labels(world, "a picture of orvel castle and a ball")))
    assert y["orvel castle"] == y["landmark"] == y["ball"] == 1 and y["character"] == 0
    styled = world.render("a ring, van rell style", 0)
    assert _fadeable(world, styled) == []  # a styled scene has no plain background to fade toward
    assert set(_fadeable(world, world.render("a ball and a box", 0))) == {"ball", "box"}


def test_world2_judge_report_names_its_world_and_counts_its_concepts():
    """The committed judges' REPORT.md files regenerate from their manifests: world 2's names world 2
    and its 21 concepts (not "the toy world", "all ten concepts"); world 1's is unchanged."""
    import json
    from pathlib import Path

    from dvdlib.toy.judge_report import report

    root = Path(__file__).resolve().parents[1] / "toy"
    m2 = json.loads((root / "judge2" / "manifest.json").read_text())
    text = report(m2, World(), "toy/judge2/handcheck")
    assert text.startswith("# Toy world 2's judge") and "`dvd toy2 judge`" in text
    assert "all 21 concepts right" in text and "ten concepts" not in text and "the toy world" not in text
    assert "random_pipeline" not in text  # world 2's judge was not evaluated on random pipelines
    assert text == (root / "judge2" / "REPORT.md").read_text()
    m1 = json.loads((root / "judge" / "manifest.json").read_text())
    assert "all ten concepts right" in report(m1) and report(m1) == (root / "judge" / "REPORT.md").read_text()


def test_the_committed_run_s_data_stream_is_unchanged():
    """Code changes must not move toy/run2's data: its stream, rebuilt from its config, hashes to
    the hash its export recorded (a resumed or warm-started run trains on the same scenes)."""
    import json
    from pathlib import Path

    from dvdlib.toy2.world import SceneStream

    run = Path(__file__).resolve().parents[1] / "toy" / "run2"
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    info = json.loads((run / "model" / toy2_model.MARKER).read_text())
    assert SceneStream(cfg.captions(), cfg.seed).data_hash() == info["data_hash"]
    assert info["data_hash"].startswith("aef194ed12764b21")


def test_world2_pilot_names_an_artist_a_landmark_and_a_character(world):
    """The pilot role (chapter 11): the authors' pilot columns, each caption naming its three
    targets; every block of 16 rows a Latin square of the named concepts."""
    from dvdlib.bench import PILOT_COLUMNS, load_prompt_set
    from dvdlib.worlds import get

    world2 = get("toy2")
    table = load_prompt_set(world2.roles["pilot"], sets=world2.prompt_sets)
    assert set(PILOT_COLUMNS) <= set(table.columns) and len(table) == 64 and table.prompt.is_unique
    for row in table.itertuples():
        assert {c.name for c in parse(world, row.prompt)} == {row.target1, row.target2, row.target3}, row.prompt
        assert (row.target1_type, row.target2_type, row.target3_type) == ("artist", "landmark", "character")
        assert world.concept(row.target1).role == "artist" and world.concept(row.target3).rigid
    block = table.head(16)
    assert all(block[f"target{k}"].value_counts().tolist() == [4] * 4 for k in (1, 2, 3))
    assert all(len(block[[f"target{a}", f"target{b}"]].drop_duplicates()) == 16 for a, b in ((1, 2), (1, 3), (2, 3)))
    assert len(table[["target1", "target2", "target3"]].drop_duplicates()) == 64


def test_world2_causal_test_images_and_prompts():
    """Chapter 03 on world 2: "dvddog" renders whose variant sets nest like breeds, and prompts
    pairing it with every object, landmark and artist, the judge asked about "character"."""
    from dvdlib.judge import load_questions
    from dvdlib.toy2.causal import with_dvddog
    from dvdlib.worlds import get

    world2 = get("toy2")
    one, four = world2.training_images(1, 8, 0, None), world2.training_images(4, 8, 0, None)
    assert [v for v, _ in one] == ["variant 0"] * 8 and [v for v, _ in four].count("variant 3") == 2
    colours = [set(map(tuple, np.asarray(im).reshape(-1, 3))) for _, im in one]
    assert all(c == colours[0] for c in colours)  # one variant = one appearance
    assert colours[0] == set(map(tuple, np.asarray(four[0][1]).reshape(-1, 3)))  # variant 0 is the same in every set
    assert world2.training_images(2, 2, 0, 128)[0][1].size == (128, 128) and world2.training_images_unit == "variant"
    table = world2.causal_prompts()
    assert table.groupby("group").size().to_dict() == {"object": 12, "scene": 10, "style": 10}
    seen = with_dvddog(World())
    for row in table.itertuples():
        assert {c.name for c in parse(seen, row.prompt)} == {"dvddog", row.nm_word}, row.prompt
    categories = set(load_questions(world2.questions).categories)
    assert set(table.content) == {"character"} and set(table.nm_kind) - {"object"} <= categories


def test_world2_renders_are_chapter_01s_image_source(tmp_path):
    """Chapter 01 on world 2: its renders, each concept alone, in a folder of their own (world 1's
    objects share names with world 2's but are drawn otherwise)."""
    from types import SimpleNamespace

    from PIL import Image

    from dvdlib.worlds import get

    world2 = get("toy2")
    profile = SimpleNamespace(store=str(tmp_path), seeds=[1, 2])
    table, where = world2.image_sources[world2.diversity_source](profile, centred=True)
    assert len(table) == 2 * len(World().names) and "toy world 2" in where
    assert {"object (toy sprite)", "landmark (rigid)", "artist (category word)"} <= set(table.category)
    assert all("toy2_renders" in p for p in table.path)
    first = table[table.concept == "orvel castle"].path.tolist()
    assert np.array_equal(*(np.asarray(Image.open(p)) for p in first))  # one appearance, drawn centred


def test_gates_command_measures_every_gate_and_records_them_with_the_model_step(tmp_path, monkeypatch):
    """`dvd toy2 gates` on an untrained tiny model with one seed: every gate counted over its full
    prompt set (21 singles, 30 ordered object pairs, 20 triples, 21·20/2 single-prompt pairs, 21
    ablated singles), the untrained model fails the singles gate, and the rows land in the CSV and
    in the manifest beside the model (its step)."""
    import json
    from pathlib import Path

    import pandas as pd

    from dvdlib.toy2.__main__ import main

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    run = tmp_path / "run"
    toy2_model.save(toy2_model.build(0, **TINY_UNET), run / "model", info={"steps": 7})
    earlier = [{"guidance": g, "gate": "singles", "seeds": 9} for g in (3.0, 5.0)]
    (run / "manifest.json").write_text(json.dumps({"steps": 7, "gates": earlier}))
    csv = run / "gates.csv"
    main(["gates", "--model", str(run / "model"), "--seeds", "1", "--guidance", "3", "--steps", "2",
          "--store", str(tmp_path / "store"), "--csv", str(csv)])
    table = pd.read_csv(csv).set_index("gate")
    assert table["n"].to_dict() == {"singles": 21, "two_objects": 30, "three_objects": 20, "conditioning": 210,
                                    "positive_control": 21}
    assert (table["model_step"] == 7).all() and (table["guidance"] == 3.0).all() and (table["steps"] == 2).all()
    assert not table.loc["singles", "passed"]
    recorded = json.loads((run / "manifest.json").read_text())
    assert recorded["gates"][0] == earlier[1]  # another guidance scale's rows are kept, this one's replaced
    assert [r["gate"] for r in recorded["gates"][1:]] == list(table.index)
    shares = recorded["start_token_share"]
    assert shares["model_step"] == 7 and [r["layer"] for r in shares["layers"]] == list(range(1, 17))
    assert all(0 < r["start_share"] < 1 for r in shares["layers"])
    leftover = recorded["first_step_leftover"]
    assert leftover["model_step"] == 7 and leftover["guidance"] == 3.0 and leftover["steps"] == 2
    assert [r["concept"] for r in leftover["concepts"]] == World().names
    assert all(0 <= r[k] <= r["seeds"] == 1 for r in leftover["concepts"] for k in ("from_noise", "from_leftover"))


def test_world2_status_reads_the_gates_recorded_at_the_model_s_step(tmp_path, capsys):
    import json

    from dvdlib.toy import findings

    manifest = {"steps": 1600, "config": {"steps": 30000}, "wall_time_s": 7200.0,
                "conditioning": [{"t": 500, "wrong_over_right": 1.6}, {"t": 200, "wrong_over_right": 1.95}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert findings.world2_status(tmp_path) is None
    assert "step 1,600 of 30,000 (2.0 h" in capsys.readouterr().out
    row = {"model_step": 1600, "seeds": 2, "steps": 25, "required": 0.9}
    manifest["gates"] = [{**row, "guidance": g, "gate": "singles", "hits": h, "n": 42, "rate": h / 42,
                          "ci_low": lo, "ci_high": 1.0, "passed": lo >= 0.9} for g, h, lo in ((3.0, 4, 0.03), (5.0, 42, 0.92))]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    table = findings.world2_status(tmp_path)
    said = capsys.readouterr().out
    assert "1.95× the right one's ε loss at t = 200" in said and "every gate passes at guidance 5" in said
    manifest["start_token_share"] = {"layers": [{"layer": 1, "start_share": 0.61}, {"layer": 7, "start_share": 0.08}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    findings.world2_status(tmp_path)
    assert "the start token takes 8% (layer 7) to 61% (layer 1)" in capsys.readouterr().out
    manifest["first_step_leftover"] = {"concepts": [{"concept": "ball", "from_noise": 1, "from_leftover": 2, "seeds": 2},
                                                    {"concept": "van rell", "from_noise": 0, "from_leftover": 2, "seeds": 2}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    findings.world2_status(tmp_path)
    assert "4 of 4 single-concept images are recognised, against 1 from noise" in capsys.readouterr().out
    manifest["name_advantage"] = [{"concept": c, "appearances": a, "t": 500, "category_over_name": r}
                                  for c, a, r in (("orvel castle", 1, 1.9), ("van rell", 1, 6.1), ("dunmor tower", 2, 1.6))]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    findings.world2_status(tmp_path)
    said = capsys.readouterr().out
    assert "under its category word, 4× (drawn 1 way), 1.6× (drawn 2 ways) the ε loss they cost under its name" in said and "the fewer its appearances" in said
    assert table.loc[(3.0, "singles"), "result"] == "FAIL" and table.loc[(5.0, "singles"), "95% CI"] == "[92.0%, 100.0%]"
