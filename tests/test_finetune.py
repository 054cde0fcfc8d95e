"""DreamBooth fine-tuning (dvdlib.finetune) and the causal diversity test (dvdlib.causal, chapter 03; paper §3.3)."""

from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import reference
import torch
from PIL import Image

from dvdlib import bench, causal
from dvdlib import finetune as ft
from dvdlib.models import build_smoke
from dvdlib.scenes.standins import figure_images
from dvdlib.toy.dreambooth import toy_prompts
from dvdlib.profiles import load_profile
from dvdlib.tokens import clip_tokenizer, concept_span
from dvdlib.findings import unwritten_claims

FAST = ft.Recipe(steps=4, lr=1e-3, checkpoint_every=1)


@pytest.fixture(scope="module")
def pipe():
    return build_smoke()


@pytest.fixture(scope="module")
def images():
    return [im for _, im in figure_images(2, 4, size=128)]


def trainer(pipe, images, recipe=FAST, **kw):
    """A DreamBooth run on a fresh copy of the smoke UNet (the module's pipeline stays as built)."""
    return ft.DreamBooth(pipe, images, recipe, unet=copy.deepcopy(pipe.unet), **kw)


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_one_step_changes_the_unet_and_lowers_the_loss_on_its_batch(pipe, images):
    run = trainer(pipe, images)
    before, batch = weights(run.unet), run.batch(0)
    with torch.no_grad():
        loss_before = run.loss(batch).item()
    reported = run.train_step()
    with torch.no_grad():
        loss_after = run.loss(batch).item()
    assert reported == pytest.approx(loss_before, rel=1e-5)  # train_step reports the loss it stepped on
    assert loss_after < loss_before
    changed = [k for k, v in run.unet.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) > 0.9 * len(before)


def test_batches_are_a_pure_function_of_seed_and_step(pipe, images):
    run = trainer(pipe, images)
    a, b, c = run.batch(3), run.batch(3), run.batch(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], c["noise"])
    assert a["states"].shape[0] == FAST.batch_size


def test_resume_after_k_steps_is_bitwise_the_uninterrupted_run(pipe, images, tmp_path):
    whole = trainer(pipe, images)
    whole.train(tmp_path / "whole", progress=False)
    first = trainer(pipe, images)
    first.train(tmp_path / "resumed", progress=False, stop_after=2)
    assert first.step == 2 and not ft.is_finished(tmp_path / "resumed")
    second = trainer(pipe, images)  # a new process would start from the base weights again
    second.train(tmp_path / "resumed", progress=False)
    assert second.step == FAST.steps and second.losses == whole.losses
    for k, v in whole.unet.state_dict().items():
        assert torch.equal(v, second.unet.state_dict()[k]), k
    assert ft.is_finished(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "checkpoints" / "last.pt").exists()  # done: the checkpoint is freed
    info = json.loads((tmp_path / "resumed" / "finetune.json").read_text())
    assert info["recipe"]["steps"] == FAST.steps and info["instance_images"] == len(images)
    assert len((tmp_path / "resumed" / "loss.csv").read_text().splitlines()) == FAST.steps + 1


def test_a_checkpoint_of_another_recipe_is_refused(pipe, images, tmp_path):
    trainer(pipe, images).train(tmp_path, progress=False, stop_after=1)
    with pytest.raises(ValueError, match="another recipe"):
        trainer(pipe, images, ft.Recipe(steps=4, lr=2e-3)).train(tmp_path, progress=False)


def test_text_encoder_vae_and_base_unet_are_untouched(pipe, images, tmp_path):
    text, vae, unet = weights(pipe.text_encoder), weights(pipe.vae), weights(pipe.unet)
    out = ft.finetune(pipe, images, ft.Recipe(steps=2, lr=1e-3), tmp_path / "ft", progress=False)
    for module, kept in ((pipe.text_encoder, text), (pipe.vae, vae), (pipe.unet, unet)):
        assert all(torch.equal(v, kept[k]) for k, v in module.state_dict().items())
    assert not any(p.requires_grad for p in pipe.text_encoder.parameters())
    assert not any(p.requires_grad for p in pipe.vae.parameters())
    tuned = ft.load_finetuned("smoke", out)  # the base pipeline with the fine-tuned UNet
    assert any(not torch.equal(v, unet[k]) for k, v in tuned.unet.state_dict().items())
    assert all(torch.equal(v, text[k]) for k, v in tuned.text_encoder.state_dict().items())


def test_load_finetuned_refuses_an_unfinished_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no finished fine-tune"):
        ft.load_finetuned("smoke", tmp_path)


def test_prior_preservation_adds_class_images_to_each_batch(pipe, images):
    with pytest.raises(ValueError, match="class images"):
        ft.DreamBooth(pipe, images, ft.Recipe(prior_preservation=True))
    klass = [Image.new("RGB", (128, 128), (200, 30, 30))]
    run = trainer(pipe, images, ft.Recipe(prior_preservation=True, prior_weight=0.5), class_images=klass)
    batch = run.batch(0)
    assert batch["latents"].shape[0] == 2
    # by hand: the step's generator draws instance index, instance noise, class index, class noise
    g = ft.step_generator(run.recipe.seed, 0)
    (mean_i, std_i), _ = run.instance
    (mean_c, std_c), _ = run.prior
    i = torch.randint(len(mean_i), (1,), generator=g)
    inst = mean_i[i] + std_i[i] * torch.randn(mean_i[i].shape, generator=g)
    c = torch.randint(1, (1,), generator=g)
    klass_latent = mean_c[c] + std_c[c] * torch.randn(mean_c[c].shape, generator=g)
    assert torch.equal(batch["latents"][:1], inst) and torch.equal(batch["latents"][1:], klass_latent)
    with torch.no_grad():  # the prior term enters the loss with its weight
        assert run.loss(batch).item() != pytest.approx(trainer(pipe, images).loss(batch).item())
    assert not torch.equal(batch["states"][0], batch["states"][1])  # instance vs class prompt


def test_the_new_token_tokenizes_as_expected():
    clip = clip_tokenizer()
    prompt = ft.Recipe().instance_prompt
    assert prompt == "a photo of dvddog dog"
    pieces = clip.convert_ids_to_tokens(clip(prompt).input_ids)
    # "dvddog" is no CLIP word: BPE splits it into known pieces ending in "dog", then the class word
    assert pieces == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "dv", "d", "dog</w>", "dog</w>",
                      "<|endoftext|>"]
    assert concept_span(clip, prompt, "dog") == [7]  # the class word, not the end of "dvddog"
    assert concept_span(clip, prompt, "dvddog") == [4, 5, 6]


def test_the_new_token_in_the_toy_text_encoder():
    from dvdlib.toy.model import MAX_TOKENS, tokenizer

    tok = tokenizer()
    for prompt in toy_prompts().prompt:
        ids = tok(prompt).input_ids
        assert len(ids) <= MAX_TOKENS, prompt  # no prompt of the toy test is truncated
    pieces = tok.convert_ids_to_tokens(tok("dvddog and ball").input_ids)
    assert pieces == ["[CLS]", "dvd", "##dog", "and", "ball", "[SEP]"]  # WordPiece: two pieces, encoder frozen


def test_the_fifty_prompts():
    df = bench.load_dreambooth_prompts(clip_tokenizer())
    assert len(df) == 50 and df.prompt.is_unique
    assert df.group.value_counts().to_dict() == {"object": 18, "scene": 16, "style": 16}
    assert (df.content == "dog").all() and df.unresolved.isna().all()
    assert all("dvddog dog" in p for p in df.prompt)
    picked = bench.load_dreambooth_prompts(n=3)
    assert picked.group.tolist() == ["object", "scene", "style"]


def test_a_prompt_file_without_the_token_is_refused(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("group,prompt,other\nobject,a dog next to a mug,mug\n")
    with pytest.raises(ValueError, match="lacking the token"):
        bench.load_dreambooth_prompts(path=path)


def _breed_folder(root: Path, sizes: dict[str, int]) -> Path:
    for b, n in sizes.items():
        (root / b).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / b / f"{i}.png")
    return root


def test_breed_variants_split_the_images_evenly_and_nest(tmp_path):
    folder = _breed_folder(tmp_path / "dogs", {f"breed{i}": 12 for i in range(4)})
    breeds = causal.breed_folders(folder)
    one, two, four = (causal.pick_breeds(breeds, k, 12, seed=1) for k in (1, 2, 4))
    assert [len(v) for v in (one, two, four)] == [12, 12, 12]
    assert pd.Series([b for b, _ in four]).value_counts().tolist() == [3, 3, 3, 3]
    assert {one[0][0]} < {b for b, _ in two} < {b for b, _ in four}  # more diverse sets contain the less diverse breeds
    with pytest.raises(ValueError, match="evenly"):
        causal.pick_breeds(breeds, 5, 12)
    with pytest.raises(ValueError, match="needs 24 per breed"):
        causal.pick_breeds(breeds, 1, 24)
    with pytest.raises(FileNotFoundError, match="one sub-folder"):
        causal.breed_folders(tmp_path / "missing")


def test_toy_variants_are_the_breeds():
    one, ten = figure_images(1, 20), figure_images(10, 20)
    assert {b for b, _ in one} == {"variant 0"}
    assert pd.Series([b for b, _ in ten]).value_counts().tolist() == [2] * 10
    assert one[0][1].size == (32, 32) and figure_images(2, 2, size=128)[0][1].size == (128, 128)
    # one variant = one appearance: the figure's colours are the same in every render
    colours = [set(map(tuple, np.asarray(im).reshape(-1, 3))) for _, im in one]
    assert all(c == colours[0] for c in colours)


def test_finetune_folder_is_keyed_by_recipe_and_images_not_checkpointing(tmp_path):
    a = ft.finetune_dir(tmp_path, "smoke", ft.Recipe(), "abc")
    assert a == ft.finetune_dir(tmp_path, "smoke", ft.Recipe(checkpoint_every=7), "abc")
    assert a != ft.finetune_dir(tmp_path, "smoke", ft.Recipe(lr=1e-5), "abc")
    assert a != ft.finetune_dir(tmp_path, "smoke", ft.Recipe(), "abd")
    ims = [Image.new("RGB", (4, 4), (1, 2, 3))]
    assert ft.images_digest(ims) != ft.images_digest([Image.new("RGB", (4, 4), (1, 2, 4))])


def test_spec_defaults_of_the_open_choices():
    r = ft.Recipe()
    assert (r.lr, r.batch_size, r.prior_preservation) == (5e-6, 1, False) and 400 <= r.steps <= 800
    paper = causal.scale(load_profile("paper"))
    assert paper["n_images"] == 120 and min(paper["breeds"]) == 1 and max(paper["breeds"]) == 10
    assert all(120 % k == 0 for k in paper["breeds"]) and paper["recipe"] == r and not paper["slice"]


def test_a_profile_narrows_the_experiment(tmp_path):
    smoke = causal.scale(load_profile("smoke"))
    assert smoke["slice"] and smoke["recipe"].steps < 400 and smoke["recipe"].lr == 5e-6  # only what it names
    path = tmp_path / "mine.yaml"
    path.write_text((files("dvdlib.profiles") / "paper.yaml").read_text()
                    + "scales: {causal: {breeds: [1, 10], recipe: {lr: 1.0e-5}}}\n")
    mine = causal.scale(load_profile(str(path)))
    assert mine["breeds"] == [1, 10] and mine["n_images"] == 120 and mine["recipe"].lr == 1e-5
    assert mine["seeds"] == load_profile("paper").seeds  # every seed unless narrowed
    toy = load_profile("toy")
    assert causal.scale(toy)["seeds"] == toy.seeds[:5] and causal.scale(toy, seeds_given=True)["seeds"] == toy.seeds
    path.write_text(path.read_text().replace("breeds:", "breedz:"))
    with pytest.raises(ValueError, match="breedz"):
        causal.scale(load_profile(str(path)))


def test_the_recipe_this_run_used_stands_beside_the_papers():
    """Chapter 03 states the recipe and scale it ran (the toy's own) beside the paper's (§3.3: 120
    images, 1 … 10 breeds, 50 prompts, 10 seeds; DreamBooth settings not given, the paper profile's)."""
    toy = causal.scale(load_profile("toy"))
    table = causal.recipe_table(toy["recipe"], toy, 120, [1, 3, 10], 8, "variant")
    assert table.loc["learning rate"].tolist() == ["not given (paper profile: 5e-6)", "2e-4"]
    assert table.loc["training steps", "this run"] == "200" and table.loc["batch size", "this run"] == "4"
    assert table.loc["test prompts"].tolist() == ["50", "8"] and table.loc["seeds per prompt"].tolist() == ["10", "5"]
    assert table.loc["variants (variants × images per variant)", "this run"] == "1 × 120, 3 × 40, 10 × 12"
    assert "None" not in table.to_string()
    text = causal.recipe_text("toy", toy["recipe"], toy, 120, [1, 3, 10], 8, "variant")
    assert text == ("This run (profile `toy`) fine-tunes the base model 3 times on each of 3 variants of 120 images "
                    "(1 × 120, 3 × 40, 10 × 12: variants × images per variant) with learning rate 2e-4, batch 4 and "
                    "200 steps, instance prompt \"dvddog\", prior preservation off, then asks 8 test prompts with 5 "
                    "seeds each.")
    scores = pd.DataFrame({"breeds": [0, 1, 10], "group": "object", "dvd": [0.0, 60.0, 10.0]})
    assert list(causal.crossing_table(scores, [48], "variant").index) == ["base", "1 variant", "10 variants"]
    assert list(causal.group_means(scores, "breed").index) == ["base", "1 breed", "10 breeds"]


def test_training_images_need_a_folder_for_real_models():
    from dvdlib.run import setup

    smoke, paper_run = setup("smoke", "03"), setup("paper", "03")
    assert "not dog photos" in causal.images_note(smoke, None)  # smoke trains on toy renders
    assert causal.images_note(paper_run, "/data/dogs").startswith("dog photos from `/data/dogs`")
    assert [len(v) for v in causal.variant_images(smoke, None, [1, 2], 4).values()] == [4, 4]
    with pytest.raises(ValueError, match="-p images"):
        causal.variant_images(paper_run, None, [1], 4)
    # the figures name what a variant's images are spread over: dog breeds, or a toy world's variants
    assert causal.unit_word(paper_run, "/data/dogs") == "breed" and causal.unit_word(smoke, None) == "variant"
    assert causal.unit_word(smoke, "/data/dogs") == "breed"
    assert [causal.variant_name(k, "variant") for k in (0, 1, 3)] == ["base", "1 variant", "3 variants"]
    assert causal.training_grid({3: [("variant 0", im) for im in range(3)]}, 12, 2, "variant")[0][0] == "3 variants × 4 images"
    assert causal.named(pd.Series([1.0, 2.0], index=[0, 10]), "variant").index.tolist() == ["base", "10 variants"]


def test_trend_uses_the_fine_tune_as_its_unit():
    # three fine-tunes of each of two variants, two prompts each; the base model is not in the trend
    means = {("1 breed #0", 1): 60, ("1 breed #1", 1): 50, ("1 breed #2", 1): 70,
             ("10 breeds #0", 10): 20, ("10 breeds #1", 10): 10, ("10 breeds #2", 10): 30}
    rows = [{"breeds": k, "finetune": f, "prompt": p, "dvd": m + d} for (f, k), m in means.items()
            for p, d in (("a", -5), ("b", 5))]
    scores = pd.DataFrame(rows + [{"breeds": 0, "finetune": "base", "prompt": p, "dvd": 5} for p in "ab"])
    t = causal.trend(scores, tau=48)
    assert t["n_finetunes"] == 6  # the unit: six fine-tunes, not twelve (variant, prompt) pairs
    # Spearman over the fine-tunes' means: breed ranks (2,2,2,5,5,5), mean ranks (5,4,6,2,1,3)
    assert t["spearman_rho"] == pytest.approx(-13.5 / np.sqrt(13.5 * 17.5))
    paired = t["paired"]
    assert paired["value"] == pytest.approx(40.0) and paired["n"] == [2, 2] and paired["n_clusters"] == [3, 3]
    # Welch's t over the fine-tunes' means (60, 50, 70 vs 20, 10, 30): 40 ± t(4) · √(100/3 + 100/3)
    assert paired["ci"] == pytest.approx([40 - 2.776445 * np.sqrt(200 / 3), 40 + 2.776445 * np.sqrt(200 / 3)], abs=1e-4)
    assert t["spearman_ci"][1] < 0 and t["spearman"]["method"] == "Fisher z (Bonett–Wright)"
    assert t["per_variant"]["crossing"].to_dict() == {0: 0.0, 1: 1.0, 10: 0.0}
    flat = causal.trend(scores.assign(dvd=0.0))  # no variation: no trend, no warning
    assert np.isnan(flat["spearman_rho"]) and flat["spearman_p"] == 1.0 and flat["wilcoxon_p"] == 1.0
    with pytest.raises(ValueError, match="two fine-tuned"):
        causal.trend(scores[scores.breeds <= 1])


def test_a_profile_cannot_narrow_the_replicates(tmp_path):
    assert causal.scale(load_profile("smoke"))["replicates"] >= causal.MIN_REPLICATES
    path = tmp_path / "few.yaml"
    path.write_text((files("dvdlib.profiles") / "paper.yaml").read_text() + "scales: {causal: {replicates: 1}}\n")
    with pytest.raises(ValueError, match="at least 3 fine-tunes per variant"):
        causal.scale(load_profile(str(path)))


def test_causal_chapter_runs_on_smoke(tmp_path):
    """The causal chapter through papermill with profile smoke: figures, results, the paper's numbers."""
    from test_book import copy_book

    from dvdlib import paper, scheduler

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="03_diversity_causal", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "03_diversity_causal"
    assert {p.name for p in figures.glob("*.png")} == {"training_images.png", "dvd_by_variant.png"}
    results = json.loads((root / "book" / "results" / "03_diversity_causal.json").read_text())
    reference.check("03", root / "book" / "results" / "03_diversity_causal.json")  # the numbers as before
    # every key a toy-findings claim reads from this chapter is written by it
    assert unwritten_claims("03_diversity_causal", [r["key"] for r in results["results"]]) == []
    rows = {r["key"]: r for r in results["results"]}
    assert set(rows) == {"n_images", "variants", "n_prompts", "n_seeds", "replicates", "dvd_by_variant", "spearman",
                         "paired", "low_crossing", "high_crossing"}
    assert rows["paired"]["n_clusters"] == [3, 3] and rows["spearman"]["n"] == 6  # three fine-tunes per variant
    assert rows["n_images"]["paper"] == "120" and rows["n_prompts"]["paper"] == "50"
    assert rows["spearman"]["paper"] == paper.CAUSAL["trend"]
    assert rows["dvd_by_variant"]["this run"].startswith("base: ")  # base model, then each variant
    assert results["profile"]["name"] == "smoke" and results["profile"]["judge"] == "tiny:qwen2-vl"
    # the fine-tunes went to the run store, three per variant (1 and 2 breeds under smoke)
    assert len(list((root / "store" / "finetune" / "smoke").glob("*/unet"))) == 6
