"""The toy world's renderer: determinism, the diversity parameter, pairs that
always show both concepts, category words, the caption distribution, the scene stream."""
import numpy as np
import pytest

from dvdlib.toy.world import (JOINER, Captions, Concept, SceneStream, World, pair_class)

WORLD = World()


def sprite(scene, name):
    """The pixels of one concept: its mask's bounding box, with everything outside the mask zeroed."""
    mask = scene.masks[name]
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return np.where(mask[box][..., None], scene.image[box], 0.0)


def distinct(arrays):
    return len({(a.shape, a.tobytes()) for a in arrays})


def test_render_is_a_pure_function_of_caption_and_seed():
    for caption in ["", "ball", "tower and ring", "mosaic and box", "style and character"]:
        a, b = WORLD.render(caption, 7), WORLD.render(caption, 7)
        assert np.array_equal(a.image, b.image) and a.variants == b.variants
        assert a.image.shape == (32, 32, 3) and a.image.dtype == np.float32
        assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    assert not np.array_equal(WORLD.render("ball", 1).image, WORLD.render("ball", 2).image)


def test_one_variant_is_the_same_sprite_for_every_seed():
    towers = [sprite(WORLD.render("tower", s), "tower") for s in range(30)]
    assert distinct(towers) == 1
    # a style with one variant is the same whole image when alone
    assert distinct([WORLD.render("mosaic", s).image for s in range(10)]) == 1


@pytest.mark.parametrize("name,k", [("robot", 3), ("tower", 5), ("mosaic", 4)])
def test_k_variants_give_exactly_k_appearances(name, k):
    world = WORLD.with_variants(**{name: k})
    scenes = [world.render(name, s) for s in range(120)]
    pictures = [s.image if name == "mosaic" else sprite(s, name) for s in scenes]
    assert distinct(pictures) == k
    assert sorted({s.variants[name] for s in scenes}) == list(range(k))


def test_flexible_concepts_vary_every_render():
    for name in ["ball", "box", "ring", "bar", "landmark", "character"]:
        assert distinct([sprite(WORLD.render(name, s), name) for s in range(25)]) >= 23, name
    assert distinct([WORLD.render("style", s).image for s in range(25)]) >= 23


def test_diversity_is_the_only_difference_between_a_rigid_concept_and_its_category():
    assert WORLD.concept("tower").kind == WORLD.concept("landmark").kind == "building"
    assert WORLD.concept("tower").variants == 1 and WORLD.concept("landmark").variants is None
    flexible_tower = WORLD.with_variants(tower=None)
    assert distinct([sprite(flexible_tower.render("tower", s), "tower") for s in range(20)]) >= 18


def test_category_words():
    assert [WORLD.category_word(n) for n in ("tower", "robot", "mosaic")] == ["landmark", "character", "style"]
    assert {WORLD.concept(w).role for w in ("landmark", "character", "style")} == {"landmark", "character", "style"}
    assert WORLD.rigid == ["tower", "robot", "mosaic"]
    assert WORLD.objects == ["ball", "box", "ring", "bar"]
    with pytest.raises(KeyError):
        WORLD.category_word("ball")


def test_every_pair_renders_both_concepts_apart():
    captions = Captions(WORLD, held_out=())
    pairs = [p for ps in captions.pairs().values() for p in ps]
    assert len(pairs) == 42  # 45 pairs of 10 concepts, minus the three same-role ones
    for a, b in pairs:
        for caption in (a + JOINER + b, b + JOINER + a):
            for seed in range(4):
                scene = WORLD.render(caption, seed)
                assert set(scene.masks) == {a, b}
                style = [n for n in (a, b) if WORLD.concept(n).role == "style"]
                shapes = [n for n in (a, b) if n not in style]
                for name in shapes:
                    assert scene.masks[name].sum() >= 4, (caption, seed, name)
                if len(shapes) == 2:
                    assert not (scene.masks[a] & scene.masks[b]).any(), (caption, seed)
                for name in style:  # the style covers the image, the other shape stays darker than any background
                    assert scene.masks[name].all()
                    inside = scene.image[scene.masks[shapes[0]]].max(-1)
                    outside = scene.image[~scene.masks[shapes[0]]].max(-1)
                    assert inside.max() < outside.min(), (caption, seed)


def test_captions_can_be_rendered_and_bad_ones_are_refused():
    assert WORLD.render("").masks == {}
    for bad in ["ball and ball", "mosaic and style", "ball and box and ring"]:
        with pytest.raises(ValueError):
            WORLD.parse(bad)
    with pytest.raises(KeyError):
        WORLD.render("teapot", 0)


def test_caption_distribution():
    captions = Captions(WORLD)
    rng = np.random.default_rng(0)
    drawn = [captions.sample(rng) for _ in range(3000)]
    held = set(captions.held_out_captions())
    assert not held & set(drawn)
    assert set(drawn) <= set(captions.training())
    assert 0.08 < drawn.count("") / len(drawn) < 0.12
    pairs = [c for c in drawn if JOINER in c]
    assert 0.5 < len(pairs) / len(drawn) < 0.6
    assert "tower and ball" in drawn and "ball and tower" in drawn  # both word orders
    classes = [pair_class(WORLD, *c.split(JOINER)) for c in pairs]
    assert 0.35 < classes.count("object+object") / len(classes) < 0.45
    assert len(set(captions.all())) == len(captions.all())


def test_scene_stream_is_deterministic_and_position_independent():
    stream = SceneStream(Captions(WORLD), seed=3)
    images, caps = stream.batch(0, 6)
    again, caps2 = SceneStream(Captions(WORLD), seed=3).batch(4, 2)
    assert np.array_equal(images[4:], again) and caps[4:] == caps2
    assert images.shape == (6, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    assert stream.data_hash(16) == SceneStream(Captions(WORLD), seed=3).data_hash(16)
    assert stream.data_hash(16) != SceneStream(Captions(WORLD.with_variants(tower=2)), seed=3).data_hash(16)


def test_new_concepts_for_the_causal_experiment():
    world = WORLD.with_concept(Concept("dvddog", "figure", variants=10, pool=5))
    scenes = [world.render("dvddog and ball", s) for s in range(80)]
    assert distinct([sprite(s, "dvddog") for s in scenes]) == 10
    assert World.from_dict(world.to_dict()) == world


def test_the_causal_test_s_stand_in_figure_is_drawn_as_this_world_draws_it():
    """`dvdlib.scenes.standins.FigureScenes` (the toy and smoke worlds' training images) draws
    "dvddog" pixel for pixel as this world renders a figure with the same pool."""
    from dvdlib.finetune import TOKEN
    from dvdlib.scenes.standins import POOL, FigureScenes

    for k in (1, 3, 10):
        world = WORLD.with_concept(Concept(TOKEN, "figure", variants=k, pool=POOL))
        for seed in ([0, 0], [0, 7], [5, 2], 11):
            ours, theirs = FigureScenes(k).render(TOKEN, seed), world.render(TOKEN, seed)
            assert ours.image.tobytes() == theirs.image.tobytes() and ours.variants == theirs.variants
