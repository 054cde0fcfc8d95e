"""dvdlib.diversity: CLIP embeddings, mean pairwise cosine distance, per-category medians (paper §3.1)."""

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

    assert get("smoke").clip == get("toy").clip == clip.TINY_CLIP  # the worlds' CLIP when a chapter names none
    assert get("sd").clip == clip.PAPER_CLIP == "openai/clip-vit-large-patch14"
    assert get("toy").diversity_source == "toy" and get("sd").diversity_source == get("smoke").diversity_source == "generated"


def _run_chapter(tmp_path, profile):
    import json

    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
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
    """Under toy the chapter needs no trained model: the renderer's rigid concepts come out below
    their category words, and no toy category is set beside a LAION median by name."""
    rows = _run_chapter(tmp_path, "toy")
    assert rows["div_median_landmark"]["this run"].startswith("—")
    check = rows["div_rigid_below_word"]["this run"]
    assert check.count(" < ") == 3 and "≥" not in check, check
