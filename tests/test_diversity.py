"""dvdlib.diversity: CLIP or judge-feature embeddings, mean pairwise cosine distance, per-category
medians, the check against a world's built diversity and the closing paragraph (paper §3.1)."""

import math

import numpy as np
import pandas as pd
import pytest
import reference
from PIL import Image

from dvdlib import clip
from dvdlib import diversity as d


def test_mean_pairwise_cosine_distance_by_hand():
    # e1 = (1, 0), e2 = (0, 1), e3 = (1, 1): cos = 0, 1/√2, 1/√2 → distances 1, 1 − 1/√2, 1 − 1/√2
    e = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])  # lengths do not matter
    expected = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert d.mean_pairwise_cosine_distance(e) == pytest.approx(expected)
    assert d.mean_pairwise_cosine_distance([[1, 2], [2, 4]]) == pytest.approx(0.0)  # same direction
    assert d.mean_pairwise_cosine_distance([[1, 0], [-1, 0]]) == pytest.approx(2.0)  # opposite
    with pytest.raises(ValueError, match="at least two"):
        d.mean_pairwise_cosine_distance([[1.0, 0.0]])
    with pytest.raises(ValueError, match="all zeros"):
        d.mean_pairwise_cosine_distance([[1.0, 0.0], [0.0, 0.0]])


def test_concept_diversity_and_category_medians_by_hand():
    table = pd.DataFrame({"concept": ["a", "a", "b", "b", "b", "c", "c"],
                          "category": ["landmark", "landmark", "landmark", "landmark", "landmark", "object", "object"]})
    e = np.array([[1, 0], [1, 0],            # a: identical → 0
                  [1, 0], [0, 1], [1, 1],    # b: as in the test above
                  [1, 0], [0, 1]], float)    # c: orthogonal → 1
    per = d.concept_diversity(e, table).set_index("concept")
    b = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert per.diversity.to_dict() == pytest.approx({"a": 0.0, "b": b, "c": 1.0})
    assert per.images.to_dict() == {"a": 2, "b": 3, "c": 2}
    medians = d.category_medians(per.reset_index())
    assert medians.to_dict() == pytest.approx({"landmark": b / 2, "object": 1.0})  # median of {0, b}
    with pytest.raises(ValueError, match="row-aligned"):
        d.concept_diversity(e[:3], table)
    with pytest.raises(ValueError, match="'z'.*at least two"):
        d.concept_diversity(np.ones((1, 2)), pd.DataFrame({"concept": ["z"], "category": ["object"]}))


def _write_images(folder, n, colour):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(colour)
    for i in range(n):
        pixels = (np.clip(np.array(colour) / 255 + rng.normal(0, 0.3, (24, 24, 3)), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def test_sources_folders_and_tables(tmp_path):
    _write_images(tmp_path / "two" / "landmark" / "tower", 2, (200, 10, 10))
    _write_images(tmp_path / "two" / "object" / "mug", 3, (10, 200, 10))
    (tmp_path / "two" / "object" / "mug" / "notes.txt").write_text("not an image")
    table = d.from_folders(tmp_path / "two")
    assert table.groupby(["category", "concept"]).size().to_dict() == {("landmark", "tower"): 2, ("object", "mug"): 3}
    _write_images(tmp_path / "one" / "tower", 2, (200, 10, 10))
    with pytest.raises(ValueError, match="no category for concept folder 'tower'"):
        d.from_folders(tmp_path / "one")
    assert set(d.from_folders(tmp_path / "one", {"tower": "landmark"}).category) == {"landmark"}
    with pytest.raises(FileNotFoundError, match="image_source"):
        d.from_folders(tmp_path / "nowhere")
    # a CSV of relative paths, like a downloaded LAION shard's index
    csv = tmp_path / "two" / "index.csv"
    table.assign(path=[str(p).replace(str(tmp_path / "two") + "/", "") for p in table.path]).to_csv(csv, index=False)
    assert d.from_table(csv).path.tolist() == table.path.tolist()
    pd.DataFrame({"path": ["x.png"], "concept": ["a"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['category'\]"):
        d.from_table(tmp_path / "bad.csv")
    pd.DataFrame({"path": ["x.png"], "concept": ["a"], "category": ["b"]}).to_csv(tmp_path / "gone.csv", index=False)
    with pytest.raises(FileNotFoundError, match="do not exist"):
        d.from_table(tmp_path / "gone.csv")


def test_tiny_clip_embeds_and_caches(tmp_path):
    _write_images(tmp_path / "imgs" / "landmark" / "tower", 3, (200, 10, 10))
    _write_images(tmp_path / "imgs" / "object" / "mug", 3, (10, 200, 10))
    table = d.from_folders(tmp_path / "imgs")
    model, processor = clip.load_clip(clip.TINY_CLIP)
    e = d.embed_table(table, model, processor, cache=tmp_path / "cache", key="tiny", batch_size=2)
    assert e.shape == (6, model.config.projection_dim) and np.isfinite(e).all()
    # the same images give the same embeddings, in any batch, and from the cache
    assert np.allclose(clip.embed(table.path[:2], model, processor), e[:2], atol=1e-5)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2
    assert np.array_equal(d.embed_table(table, model, processor, cache=tmp_path / "cache", key="tiny"), e)
    same = Image.open(table.path[0])
    assert d.mean_pairwise_cosine_distance(clip.embed([same, same.copy()], model, processor)) == pytest.approx(0, abs=1e-6)


def test_clip_unavailable_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(clip.ClipUnavailable, match="clip_model"):
        clip.load_clip(str(tmp_path / "empty"))


def test_toy_renders_rigid_concepts_are_less_diverse(tmp_path):
    """The sanity check of chapter 01 under toy: a concept with few fixed appearances comes out
    less diverse than its category word (a fresh appearance per image), even with random features."""
    from dvdlib.generate import PAPER_SEEDS
    from dvdlib.toy.renders import toy_render, toy_renders
    from dvdlib.toy.world import World

    names = ["tower", "landmark", "robot", "character", "mosaic", "style"]
    table = toy_renders(tmp_path / "toy", PAPER_SEEDS, names=names)
    assert (tmp_path / "toy" / "centred" / "tower" / "1825.png").exists()
    cats = dict(zip(table.concept, table.category))
    assert cats["tower"] == "landmark (rigid)" and cats["landmark"] == "landmark (category word)"
    model, processor = clip.load_clip(clip.TINY_CLIP)
    per = d.concept_diversity(d.embed_table(table, model, processor), table).set_index("concept").diversity
    # one appearance (tower, mosaic): the same image every time
    assert per["tower"] == pytest.approx(0.0, abs=1e-6) and per["mosaic"] == pytest.approx(0.0, abs=1e-6)
    assert per["robot"] < per["character"] and per["tower"] < per["landmark"] and per["mosaic"] < per["style"]
    # placed renders are the world's own (random position), centred ones keep the sprite's pixels
    world = World()
    assert np.array_equal(toy_render(world, "ball", 7, centred=False),
                          (world.render("ball", 7).image * 255).round().astype(np.uint8))
    centred, placed = toy_render(world, "ball", 7), toy_render(world, "ball", 7, centred=False)
    background = centred[0, 0]
    drawn = lambda img: np.argwhere((img != background).any(-1))  # noqa: E731
    assert len(drawn(centred)) == len(drawn(placed)) > 0  # the same ball (same seed → same appearance) ...
    middle = (drawn(centred).min(0) + drawn(centred).max(0)) / 2
    assert np.abs(middle - 15.5).max() <= 1  # ... in the middle


def test_benchmark_concepts_and_defaults():
    bench = pd.DataFrame({"content_type": ["artist", "artist", "landmark"], "content": ["Van Gogh", "Monet", "Colosseum"],
                          "nm_word": ["mug", "pouch", "mug"]})
    concepts = d.benchmark_concepts(bench, per_category=1)
    assert list(zip(concepts.concept, concepts.category)) == [("Van Gogh", "artist"), ("Colosseum", "landmark"), ("mug", "object")]
    from dvdlib.worlds import get

    assert get("smoke").clip == clip.TINY_CLIP  # the worlds' encoder when a chapter names none
    assert get("toy").clip == get("toy2").clip == clip.JUDGE_FEATURES == "judge:features"  # a judge that knows the world
    assert get("sd").clip == clip.PAPER_CLIP == "openai/clip-vit-large-patch14"
    assert get("toy").diversity_source == "toy" and get("sd").diversity_source == get("smoke").diversity_source == "generated"


def _run_chapter(tmp_path, profile):
    import json

    from dvdlib import scheduler
    from test_book import REPO, copy_book

    root = copy_book(tmp_path)
    (root / "toy").symlink_to(REPO / "toy")  # the committed toy world: its judge is chapter 01's encoder under toy
    (outcome,) = scheduler.run_chapters(profile, only="01_training_diversity", cwd=root, verbose=False)
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    figures = root / "book" / "figures" / "01_training_diversity"
    assert {p.name for p in figures.glob("*.png")} == {"diversity_by_category.png"}
    results = json.loads((root / "book" / "results" / "01_training_diversity.json").read_text())
    assert results["profile"]["name"] == profile
    if profile == "smoke":
        reference.check("01", root / "book" / "results" / "01_training_diversity.json")  # the numbers as before
    return {r["key"]: r for r in results["results"]}


def test_training_diversity_chapter_runs_on_smoke(tmp_path):
    """Chapter 01 through papermill with profile smoke: generated images, the tiny random CLIP."""
    rows = _run_chapter(tmp_path, "smoke")
    assert {k: rows[f"div_median_{k}"]["paper"] for k in ("landmark", "character", "artist", "object")} == \
        {"landmark": "0.3079", "character": "0.4417", "artist": "0.466", "object": "0.4672"}
    # two concepts per category, each with the profile's two seeds: every paper category has a number
    assert all(float(rows[f"div_median_{k}"]["this run"]) >= 0 for k in ("landmark", "character", "artist", "object"))
    assert rows["div_images"]["this run"] == "16 (8)" and rows["div_rigid_below_word"]["this run"].startswith("—")


def test_training_diversity_chapter_runs_on_toy_renders(tmp_path):
    """Under toy the chapter needs no trained model: the toy world's renders, embedded with its
    judge's features, set beside the paper's categories by their counterparts (tower, robot,
    mosaic, the objects) and checked against the variants the world built them with."""
    rows = _run_chapter(tmp_path, "toy")
    assert rows["div_median_landmark"]["this run"].endswith("(tower)")
    assert rows["div_median_artist"]["this run"].endswith("(mosaic)") and rows["div_median_artist"]["paper"] == "0.466"
    assert rows["div_order"]["this run"].startswith("landmark = artist < character")  # as built: 1, 1, 3 variants
    assert rows["div_variants"]["n"] == 10 and rows["div_variants"]["value"] > 0
    assert rows["div_variants"]["this run"].endswith("rises with the built diversity")  # the book's rule, as built
    check = rows["div_rigid_below_word"]["this run"]
    assert check.count(" < ") == 3 and "≥" not in check, check
    assert not [r for r in rows.values() if "no such category" in r["this run"]]


# ----------------------------------------------------------------------------- a world's encoder and built diversity


def _renders(tmp_path, names, seeds=(1, 2, 3)):
    from dvdlib.toy.renders import toy_renders
    from dvdlib.toy.world import World

    return d.with_built(toy_renders(tmp_path / "toy", seeds, names=names), World(), {"style": "artist"})


def test_judge_features_embed_toy_renders(tmp_path):
    """The toy judge's penultimate features as the encoder: one 128-value row per image, the same
    image twice at distance 0, and the cache keyed by the judge's weights."""
    from dvdlib.toy.judge import load_toy_judge

    encoder = clip.JudgeFeatures(load_toy_judge("toy/judge"))
    table = _renders(tmp_path, ["tower", "ball"])
    e = d.embed_table(table, encoder, None, cache=tmp_path / "cache", key=["judge", "weights"], batch_size=2)
    assert e.shape == (6, encoder.dim) == (6, 2 * 64) and np.isfinite(e).all() and (e >= 0).all()  # ReLU features
    assert np.array_equal(d.embed_table(table, encoder, None, cache=tmp_path / "cache", key=["judge", "weights"]), e)
    same = Image.open(table.path[3])
    assert d.mean_pairwise_cosine_distance(clip.embed([same, same.copy()], encoder, None)) == pytest.approx(0, abs=1e-9)
    per = d.concept_diversity(e, table).set_index("concept")
    assert per.diversity["tower"] == pytest.approx(0, abs=1e-9) and per.diversity["ball"] > 1e-4  # one variant: one image
    with pytest.raises(clip.ClipUnavailable, match="clip_model"):
        clip.JudgeFeatures(object())  # a judge without a network read-out


def test_load_encoder_names_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from dvdlib.toy.judge import load_toy_judge
    from dvdlib.worlds import get

    run = SimpleNamespace(world=get("toy"), profile=SimpleNamespace(judge="toy/judge", device="cpu"),
                          judge=load_toy_judge("toy/judge"))
    enc = d.load_encoder(run)  # the world's: the judge's features
    assert enc.judge and not enc.random and enc.processor is None and "`toy/judge`" in enc.note and "128" in enc.note
    assert enc.key[:2] == ["judge:features", "toy/judge"] and len(enc.key[2]) == 1  # the weights' digest
    tiny = d.load_encoder(run, clip.TINY_CLIP)
    assert tiny.random and not tiny.judge and tiny.key == clip.TINY_CLIP and "random weights" in tiny.note


def test_with_built_reads_the_world(tmp_path):
    per = _renders(tmp_path, ["tower", "robot", "mosaic", "ball", "landmark"]).drop_duplicates("concept").set_index("concept")
    assert per.role.to_dict() == {"tower": "landmark", "robot": "character", "mosaic": "artist", "ball": "object",
                                  "landmark": "landmark"}
    assert per.rigid.to_dict() == {"tower": True, "robot": True, "mosaic": True, "ball": False, "landmark": False}
    assert per.variants["robot"] == 3 and per.variants["tower"] == 1 and math.isinf(per.variants["ball"])


def _made_up(diversity, variants, rigid=None, roles=None):
    n = len(diversity)
    return pd.DataFrame({"concept": [f"c{i}" for i in range(n)], "category": ["x"] * n, "images": 10,
                         "diversity": diversity, "role": roles or ["object"] * n,
                         "rigid": rigid or [math.isfinite(v) for v in variants], "variants": variants})


def test_variants_check_on_hand_made_tables():
    from scipy.stats import spearmanr

    inf = math.inf
    variants = [1, 1, 2, 4, 8, inf, inf, inf, inf, inf, inf, inf]
    rising = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11]
    check = d.variants_check(_made_up(rising, variants))
    expected = spearmanr([1, 1, 2, 4, 8, 9, 9, 9, 9, 9, 9, 9], rising).statistic  # fresh ranks above every count
    assert check["value"] == pytest.approx(expected) and check["n"] == 12 and check["levels"] == 5
    assert check["verdict"] == "reproduced" and d.variants_text(check).endswith("rises with the built diversity")
    falling = d.variants_check(_made_up(rising[::-1], variants))
    assert falling["value"] == pytest.approx(-expected) and falling["verdict"] == "not reproduced"
    assert d.variants_text(falling).endswith("falls as the built diversity rises")
    few = d.variants_check(_made_up([0.0, 0.1, 0.2, 0.3], [1, 2, 4, inf]))
    assert few["verdict"] == "underpowered (4 concepts)"  # a correlation over four concepts is no verdict
    ten = d.variants_check(_made_up([0.0, 0.0, 0.01, 0.015, 0.016, 0.017, 0.02, 0.03, 0.04, 0.05], [1, 1, 3] + [inf] * 7))
    assert ten["verdict"] == "reproduced"  # world 1's shape, ρ ≈ 0.81: read by the book's one rule, as every claim is
    assert d.variants_text(ten) == "ρ = +0.81 [+0.27, +0.96] over 10 concepts; rises with the built diversity"


def test_order_text_and_counterparts():
    assert d.order_text(pd.Series({"object": 0.3, "landmark": 0.1, "artist": 0.1000001, "character": 0.2})) == \
        "landmark = artist < character < object"
    per = _made_up([0.0, 0.2, 0.01, 0.3, 0.02, 0.03], [1, math.inf, 3, math.inf, math.inf, math.inf],
                   roles=["landmark", "landmark", "character", "character", "object", "object"])
    table = d.counterparts(per)
    assert list(table.index) == ["landmark", "character", "object"]  # the rigid ones and the objects, not the words
    assert table.loc["object", "median"] == pytest.approx(0.025) and table.loc["landmark", "concepts"] == ["c0"]


def test_paragraph_reads_right_for_made_up_results():
    from types import SimpleNamespace

    inf = math.inf
    judge = SimpleNamespace(label="the judge's features", random=False)
    per = _made_up([0.0, 0.01, 0.0, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08], [1, 3, 1] + [inf] * 7,
                   roles=["landmark", "character", "artist", "object", "object", "object", "object", "landmark",
                          "character", "artist"])
    text = d.paragraph(per, judge)
    assert "every rigid concept comes out less diverse than every flexible one" in text
    assert "c0 0.0000 (1 variant)" in text and "c1 0.0100 (3 variants)" in text
    assert "by the book's rule: measured diversity rises with the built diversity" in text
    assert "rank landmark = artist < character < object, which follows" in text
    assert "landmark 0.3079" in text  # the paper's numbers as the paper's, the toy ones as the world's
    assert "random" not in text and "model's own generations" not in text
    # a rigid concept above a flexible one, and an order against the build
    per.loc[1, "diversity"] = 0.035
    text = d.paragraph(per, judge)
    assert "though not every rigid concept does" in text and "which does not follow" in text
    # images without a built diversity (a LAION shard, generated images): categories and what is missing
    plain = pd.DataFrame({"concept": list("abcdef"), "category": ["landmark", "landmark", "object", "object", "x", "x"],
                          "diversity": [0.1, 0.2, 0.4, 0.5, 0.3, 0.3]})
    text = d.paragraph(plain, SimpleNamespace(label="a tiny CLIP with random weights", random=True), generated=True)
    assert "rank by their categories' medians landmark < x < object" in text
    assert "These images have the categories landmark, object, x; the paper's character, artist have no counterpart" in text
    assert "model's own generations" in text and "weights are random" in text
    full = plain.assign(category=["landmark", "character", "artist", "object", "object", "object"],
                        diversity=[0.1, 0.2, 0.4, 0.5, 0.45, 0.6])
    assert "this run's order is the paper's" in d.paragraph(full, judge)
    for t in (d.paragraph(per, judge), text, d.paragraph(full, judge)):
        assert "—" not in t and "nan" not in t.lower().split() and "None" not in t and "no such category" not in t


def test_built_figure_draws_both_panels(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    inf = math.inf
    per = _made_up([0.0, 0.01, 0.0, 0.02, 0.03], [1, 3, 1, inf, inf], roles=["landmark", "character", "artist", "object",
                                                                        "landmark"])
    fig = d.figure(per, {"landmark": 0.3079, "object": 0.4672})
    left, right = fig.axes
    assert [t.get_text() for t in left.get_xticklabels()] == ["1 variant", "3 variants", "fresh\nin every image"]
    assert {t.get_text() for t in left.texts} == {"c0", "c1", "c2", "c4"}  # all but the objects named
    assert [t.get_text() for t in right.get_xticklabels()] == ["landmark", "object"]
    assert fig.get_size_inches()[0] <= 8  # legible at book width
