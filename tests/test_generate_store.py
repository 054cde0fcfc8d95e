"""Deterministic, batched, resumable generation and the run store:
dvdlib.generate, dvdlib.store. The smoke model, 128 px, a few DDIM steps."""
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dvdlib import models
from dvdlib.generate import Sample, generate, initial_latents, recording_spec
from dvdlib.store import Store, atomic_write, digest, plain

STEPS = 3
RES = 128
SETTINGS = {"resolution": RES, "steps": STEPS, "guidance": 7.5, "eta": 0.0, "sampler": "DDIM"}
ATTENTION = {"layers": [1, 7, 9], "steps": [1, 2], "heads": "each", "maps": True}


@pytest.fixture(scope="module")
def pipe():
    return models.load("smoke")


def gen(pipe, store, prompts, seeds, **kwargs):
    kwargs = {"batch_size": 4, "progress": False, **kwargs}
    return generate(pipe, prompts, seeds, store=store, **kwargs)


@contextmanager
def counting(pipe, fail_on: int | None = None):
    """Count pipeline calls (the prompts of each); raise on call number ``fail_on``.

    ``pipe(...)`` looks ``__call__`` up on the class, so the instance gets a subclass for a while.
    """
    calls = []
    base = type(pipe)

    class Counting(base):
        def __call__(self, *args, **kwargs):
            calls.append(list(kwargs["prompt"]))
            if fail_on is not None and len(calls) == fail_on:
                raise RuntimeError(f"interrupted at batch {fail_on}")
            return base.__call__(self, *args, **kwargs)

    pipe.__class__ = Counting
    try:
        yield calls
    finally:
        pipe.__class__ = base


@contextmanager
def unet_calls(pipe):
    count = []
    hook = pipe.unet.register_forward_hook(lambda *_: count.append(1))
    try:
        yield count
    finally:
        hook.remove()


def pixels(path) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def files(store: Store) -> dict[str, int]:
    """Every file under the store with its modification time (ns)."""
    return {str(p.relative_to(store.path)): p.stat().st_mtime_ns for p in store.path.rglob("*") if p.is_file()}


def hidden(store: Store) -> list[Path]:
    """Temporary files left behind (a record's lock, ``.<seed>.lock``, stays by design)."""
    return [p for p in store.path.rglob(".*") if p.suffix != ".lock"]


# initial latents ------------------------------------------------------------------------------------

def test_initial_latents_depend_only_on_the_seed(pipe):
    a = initial_latents(pipe, [5, 7, 9], RES)
    b = initial_latents(pipe, [9, 5], RES)
    c = initial_latents(pipe, [7], RES)
    assert a.shape == (3, 4, 16, 16) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a[0], b[1]) and torch.equal(a[2], b[0]) and torch.equal(a[1], c[0])
    # exactly the noise of a fresh CPU generator seeded with that seed
    expected = torch.randn((1, 4, 16, 16), generator=torch.Generator("cpu").manual_seed(7))
    assert torch.equal(c, expected)
    assert not torch.equal(a[0], a[1])
    assert initial_latents(pipe, [7], 64).shape == (1, 4, 8, 8)  # side = resolution / 8


# batching ---------------------------------------------------------------------------------------------

def test_batched_equals_one_at_a_time(pipe, tmp_path):
    prompts = ["a photo of a cat", "Van Gogh's Starry Night Notebook", "Café in the Alps"]
    seeds = [1825, 410]
    batched = gen(pipe, Store(tmp_path / "b4", "smoke", SETTINGS), prompts, seeds, batch_size=4,
                  attention=ATTENTION)
    single = gen(pipe, Store(tmp_path / "b1", "smoke", SETTINGS), prompts, seeds, batch_size=1,
                 attention=ATTENTION)
    assert [(s.prompt, s.seed) for s in batched] == [(p, s) for p in prompts for s in seeds]
    assert [(s.prompt, s.seed) for s in single] == [(s.prompt, s.seed) for s in batched]
    for b, s in zip(batched, single):
        assert b.image.exists() and s.image.exists() and b.image != s.image
        assert pixels(b.image).shape == (RES, RES, 3)
        assert np.abs(pixels(b.image) - pixels(s.image)).max() <= 2  # 8-bit PNGs, ≤ 2 levels
        assert sorted(b.attention) == sorted(s.attention) == sorted(
            [f"share/L{l}/S{t}" for l in (1, 7, 9) for t in (1, 2)]
            + [f"map/L{l}/S{t}" for l in (1, 7, 9) for t in (1, 2)])
        for key in b.attention:
            np.testing.assert_allclose(b.attention[key], s.attention[key], atol=1e-5, rtol=0)
        assert b.share(9, 1).shape == (2, 77) and b.map(1, 2).shape == (16, 16, 77)
    # each image got its own recording (the batch was split correctly), and its own image
    assert np.abs(batched[0].share(1, 1) - batched[1].share(1, 1)).max() > 1e-5
    assert np.abs(batched[0].share(1, 1) - batched[2].share(1, 1)).max() > 1e-5
    assert np.abs(pixels(batched[0].image) - pixels(batched[1].image)).max() > 10


# resumability ---------------------------------------------------------------------------------------

def test_second_call_recomputes_nothing(pipe, tmp_path):
    store = Store(tmp_path, "smoke", SETTINGS)
    prompts, seeds = ["a photo of a cat", "a red mug"], [1825, 410]
    with counting(pipe) as calls:
        first = gen(pipe, store, prompts, seeds, batch_size=3, attention=ATTENTION)
    assert calls == [["a photo of a cat", "a photo of a cat", "a red mug"], ["a red mug"]]
    stored = files(store)
    with counting(pipe) as calls:
        again = gen(pipe, store, prompts, seeds, batch_size=3, attention=ATTENTION)
    assert calls == []
    assert files(store) == stored  # nothing rewritten
    assert [(s.prompt, s.seed, s.image) for s in again] == [(s.prompt, s.seed, s.image) for s in first]
    for a, b in zip(first, again):
        assert a.attention.keys() == b.attention.keys()
        assert all(np.array_equal(a.attention[k], b.attention[k]) for k in a.attention)
    # asking for a different recording recomputes (the images are stored, the attention isn't)
    with counting(pipe) as calls:
        gen(pipe, store, prompts, seeds[:1], batch_size=3, attention={"layers": [2], "steps": [1]})
    assert calls == [["a photo of a cat", "a red mug"]]


def test_interrupted_run_resumes_where_it_stopped(pipe, tmp_path):
    store = Store(tmp_path, "smoke", SETTINGS)
    prompts = [f"a photo of a {thing}" for thing in ("cat", "dog", "mug", "pouch", "hoodie")]
    with counting(pipe, fail_on=2) as calls, pytest.raises(RuntimeError, match="interrupted at batch 2"):
        gen(pipe, store, prompts, [1825], batch_size=2, attention=ATTENTION)
    assert calls == [prompts[0:2], prompts[2:4]]
    spec = recording_spec(store, ATTENTION)
    for prompt in prompts[:2]:  # the first batch is stored ...
        assert store.has(prompt, 1825, attention=spec)
        assert (store._base(prompt, 1825).with_suffix(".json")).exists()
    for prompt in prompts[2:]:  # ... nothing of the rest
        assert not store.image_path(prompt, 1825).exists()
        assert not store.has(prompt, 1825, image=False, attention=spec)
    assert hidden(store) == []  # no temporary file left behind
    kept = files(store)
    with counting(pipe) as calls:
        samples = gen(pipe, store, prompts, [1825], batch_size=2, attention=ATTENTION)
    assert calls == [prompts[2:4], prompts[4:5]]  # only the rest is generated
    after = files(store)
    assert {k: after[k] for k in kept} == kept  # the first batch's files untouched
    assert all(s.image.exists() for s in samples) and len(samples) == 5
    assert len(store.records()) == 5


def test_until_step_stores_attention_but_no_image(pipe, tmp_path):
    store = Store(tmp_path, "smoke", {**SETTINGS, "steps": 5})
    attention = {"layers": "all", "steps": [1]}
    with unet_calls(pipe) as forward, counting(pipe) as calls:
        early = gen(pipe, store, ["a photo of a cat", "a red mug"], [1825], until_step=1,
                    attention=attention)
    assert len(calls) == 1 and len(forward) == 1  # one batch, the UNet ran one step of five
    for sample in early:
        assert sample.image is None
        assert not store.image_path(sample.prompt, sample.seed).exists()
        assert store.attention_path(sample.prompt, sample.seed, recording_spec(store, attention, 1)).exists()
        assert sorted(sample.attention) == sorted(f"share/L{l}/S1" for l in range(1, 17))
        np.testing.assert_allclose(sample.share(9, 1).sum(), 1.0, atol=1e-5)
    assert set(store.records()["prompt"]) == {"a photo of a cat", "a red mug"}
    # rerun: stored, nothing to do
    with counting(pipe) as calls:
        gen(pipe, store, ["a photo of a cat", "a red mug"], [1825], until_step=1, attention=attention)
    assert calls == []
    # a full run needs the images, so it generates; its step-1 attention is the same
    with unet_calls(pipe) as forward:
        full = gen(pipe, store, ["a photo of a cat", "a red mug"], [1825], attention=attention)
    assert len(forward) == 5
    assert all(s.image.exists() for s in full)
    for e, f in zip(early, full):
        for key in e.attention:
            np.testing.assert_allclose(e.attention[key], f.attention[key], atol=1e-6)


def test_until_step_is_part_of_the_attention_key(pipe, tmp_path):
    store = Store(tmp_path, "smoke", SETTINGS)
    attention = {"layers": [1], "steps": "all"}
    gen(pipe, store, ["a photo of a cat"], [1825], until_step=1, attention=attention)
    (sample,) = gen(pipe, store, ["a photo of a cat"], [1825], until_step=2, attention=attention)
    assert sorted(sample.attention) == ["share/L1/S1", "share/L1/S2"]


# the store ---------------------------------------------------------------------------------------------

def test_plain_turns_numpy_and_pandas_values_into_json():
    value = {"layers": range(7, 9), 3: (np.int64(2), np.float32(0.5)), "on": np.bool_(True),
             "gap": float("nan"), "s": pd.Series([1, 2]), "a": np.array([[1], [2]]), "name": "tower"}
    assert plain(value) == {"layers": [7, 8], "3": [2, 0.5], "on": True, "gap": None, "s": [1, 2],
                            "a": [[1], [2]], "name": "tower"}
    assert json.dumps(plain(value))  # no numpy type is left


@pytest.mark.parametrize("attention, until_step, key", [
    ({"layers": "all", "steps": [1]}, 1, "57ca80152b0d"),
    ({"layers": [np.int64(8), np.int64(9)], "steps": range(1, 4), "maps": True}, None, "6c7eb16807bf"),
    ({"layers": (7, 8, 9, 10), "steps": [1], "heads": np.array([0, 3])}, 1, "c447b42f0de9"),
])
def test_recording_keys_do_not_change_between_versions(attention, until_step, key):
    # the keys that stores written by earlier versions hold: a change here orphans their recordings
    store = type("S", (), {"settings": {"resolution": 512}})()
    assert digest(recording_spec(store, attention, until_step)) == key


def test_store_folder_is_keyed_by_model_and_settings(tmp_path):
    a = Store(tmp_path, "smoke", SETTINGS)
    assert a.path == Store(tmp_path, "smoke", dict(reversed(list(SETTINGS.items())))).path  # key order
    assert a.path != Store(tmp_path, "smoke", {**SETTINGS, "steps": 50}).path
    assert a.path != Store(tmp_path, "smoke", {**SETTINGS, "guidance": 1.0}).path
    assert a.path != Store(tmp_path, "random:sd1.4", SETTINGS).path
    assert a.path.parent == tmp_path / "smoke" and a.root == tmp_path  # the root every store of a run shares
    assert a.path.name == digest({"model": "smoke", **SETTINGS})
    sd = Store(tmp_path, "CompVis/stable-diffusion-v1-4", SETTINGS)
    assert sd.path.parent == tmp_path / "CompVis_stable-diffusion-v1-4"
    assert json.loads((a.path / "settings.json").read_text()) == {"model": "smoke", **SETTINGS}


def test_different_steps_generate_again(pipe, tmp_path):
    prompts, seeds = ["a photo of a cat"], [1825]
    with counting(pipe) as calls:
        three = gen(pipe, Store(tmp_path, "smoke", SETTINGS), prompts, seeds)
        two = gen(pipe, Store(tmp_path, "smoke", {**SETTINGS, "steps": 2}), prompts, seeds)
    assert len(calls) == 2
    assert three[0].image.parent.parent != two[0].image.parent.parent
    assert np.abs(pixels(three[0].image) - pixels(two[0].image)).max() > 0


def test_atomic_write(tmp_path):
    target = tmp_path / "sub" / "record.json"
    atomic_write(target, lambda p: p.write_text("first"))
    assert target.read_text() == "first"

    def half_then_fail(p):
        p.write_text("half-writ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "first"  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]  # no temporary left
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.png", half_then_fail)
    assert not (tmp_path / "new.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_save_and_records(tmp_path):
    from PIL import Image
    store = Store(tmp_path, "smoke", SETTINGS)
    image = Image.fromarray(np.arange(12 * 12 * 3, dtype=np.uint8).reshape(12, 12, 3))
    spec = {"layers": [1], "steps": [1], "resolution": RES}
    prompt = "Hokusai \"Great Wave\" Café tote bag — 富士山"
    store.save(prompt, 1825, image=image, recordings=[(spec, {"share/L1/S1": np.full(77, 1 / 77)})],
               seconds=0.5, batch_size=2)
    store.save(prompt, 1825, judged=True)  # a later record is merged into the first
    store.save("a red mug", 410, seconds=0.25, batch_size=1)
    assert store.has(prompt, 1825, attention=spec)
    assert not store.has(prompt, 1825, attention={**spec, "steps": [2]})
    assert not store.has("a red mug", 410) and store.has("a red mug", 410, image=False)
    np.testing.assert_array_equal(np.asarray(store.image(prompt, 1825)), np.asarray(image))
    np.testing.assert_array_equal(store.attention(prompt, 1825, spec)["share/L1/S1"], np.full(77, 1 / 77))
    table = store.records()
    assert isinstance(table, pd.DataFrame) and len(table) == 2  # settings.json is not a record
    rows = {(r.prompt, r.seed): r for r in table.itertuples()}
    assert set(rows) == {(prompt, 1825), ("a red mug", 410)}
    assert rows[prompt, 1825].seconds == 0.5 and rows[prompt, 1825].batch_size == 2
    assert rows[prompt, 1825].judged is True
    assert rows["a red mug", 410].seconds == 0.25
    assert hidden(store) == []


def test_generate_records_table(pipe, tmp_path):
    store = Store(tmp_path, "smoke", SETTINGS)
    gen(pipe, store, ["a photo of a cat", "a red mug"], [1825, 410, 4507], batch_size=4)
    table = store.records()
    assert len(table) == 6
    assert {"prompt", "seed", "seconds", "batch_size"} <= set(table.columns)
    assert sorted(zip(table.prompt, table.seed)) == sorted(
        (p, s) for p in ["a photo of a cat", "a red mug"] for s in [1825, 410, 4507])
    assert sorted(table.batch_size) == [2, 2, 4, 4, 4, 4]
    assert (table.seconds > 0).all()


def test_sample_accessors():
    sample = Sample("p", 1, None, {"share/L9/S1": np.ones(3), "map/L7/S2": np.zeros((2, 2, 3))})
    assert sample.share(9).shape == (3,) and sample.map(7, 2).shape == (2, 2, 3)
    with pytest.raises(KeyError):
        sample.share(9, 2)


def test_atomic_write_gives_a_new_file_the_usual_mode_without_touching_the_umask(tmp_path, monkeypatch):
    """Files written through the store are readable by others as any new file is (not mkstemp's
    0600), and writing never sets the umask (another thread's new file would get mode 0666)."""
    import os

    from dvdlib import store

    def no_umask(mask):
        raise AssertionError("atomic_write set the umask")

    monkeypatch.setattr(os, "umask", no_umask)
    path = store.atomic_write(tmp_path / "a.json", lambda p: p.write_text("{}"))
    assert path.stat().st_mode & 0o777 == 0o666 & ~store._UMASK


def test_a_whole_run_keeps_what_other_chapters_read(pipe, tmp_path):
    """Chapters share work through the store: a whole run recording attention keeps its image and
    its noise-prediction norms, so a plain request and a norms request compute nothing, and read
    the norms a norms-only run of their own would have made."""
    from dvdlib.memorization import noise_norms

    prompts, seeds = ["Colosseum Mug", "a red mug"], [1825, 410]
    store = Store(tmp_path / "shared", "smoke", SETTINGS)
    gen(pipe, store, prompts, seeds, attention=ATTENTION)
    with counting(pipe) as calls:
        plain = gen(pipe, store, prompts, seeds)
        shared = noise_norms(pipe, prompts, seeds, store=store, batch_size=4, progress=False)
    assert calls == [] and all(s.image.exists() for s in plain)
    alone = noise_norms(pipe, prompts, seeds, store=Store(tmp_path / "alone", "smoke", SETTINGS), batch_size=4,
                        progress=False)
    assert len(shared) == len(prompts) * len(seeds) * STEPS
    np.testing.assert_allclose(shared.norm, alone.norm, rtol=1e-4)
    # what stops early keeps neither, and the norms' key names the whole schedule
    assert recording_spec(store, None, None, noise_norms=True)["until_step"] is None
    first = Store(tmp_path / "first", "smoke", SETTINGS)
    gen(pipe, first, prompts[:1], seeds[:1], attention=ATTENTION, until_step=1)
    assert not first.has(prompts[0], seeds[0]) and not first.has(
        prompts[0], seeds[0], image=False, attention=recording_spec(first, None, None, noise_norms=True))


def test_a_later_run_never_replaces_a_stored_image(pipe, tmp_path):
    """The image a chapter judged stays the image on disk when another chapter reruns the prompt
    to record attention (a new batch may round a pixel differently)."""
    store = Store(tmp_path, "smoke", SETTINGS)
    (sample,) = gen(pipe, store, ["Colosseum Mug"], [1825])
    marked = np.asarray(store.image("Colosseum Mug", 1825)).copy()
    marked[0, 0] = 255 - marked[0, 0]
    from PIL import Image
    Image.fromarray(marked).save(sample.image)
    gen(pipe, store, ["Colosseum Mug"], [1825], attention=ATTENTION)
    np.testing.assert_array_equal(np.asarray(store.image("Colosseum Mug", 1825)), marked)


def test_until_step_at_the_schedules_end_is_the_whole_run(pipe, tmp_path):
    store = Store(tmp_path, "smoke", SETTINGS)
    (sample,) = gen(pipe, store, ["a red mug"], [410], attention=ATTENTION, until_step=STEPS)
    assert sample.image is not None and sample.image.exists()
    assert store.has("a red mug", 410, attention=recording_spec(store, ATTENTION))
