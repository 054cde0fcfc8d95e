"""A store `dvd prefetch` filled holds everything its chapter reads: the chapter then runs with
``store_mode`` frozen (a read that misses raises, nothing is written) and reads every work item of
the plan (the plan describes exactly what the chapter does), on the smoke profile and on tiny SDXL,
SD3 and FLUX models."""

import pytest

from dvdlib import plan as planning
from dvdlib import prefetch as pf
from dvdlib.scheduler import run_chapter
from dvdlib.store import READ_LOG, Store, StoreMiss, digest
import reference
from test_plan import ROOT, stored

#: every chapter that computes, on the smoke model (01 on images the model generates; 03 with its fine-tunes
#: counted, prefetched, then read, their folders logged as keys); chapter 06 also with every row collapsed
#: before ablation (τ 0: at 48 the random judge collapses none), so that rows are ablated and pairs of
#: heads made, and chapter 12 so (its rigid twins ablated in layer 1 and the placebo layer 9); every chapter that takes a ``model`` (04–08, 11) on each other family, its SD 1.4 layer
#: numbers read there (06: SD 1.4's 16 → tiny SDXL's 16–17, its layer 3 with 4 heads: 6 pairs; the
#: smoke scale's 1, 3, 6 → tiny SD3's 1–2). Chapters 02 and 10 compare the profile's ``models``.
CASES = {"01": ("01_training_diversity", {"image_source": "generated"}), "02": ("02_dvd_benchmark", {}),
         "03": ("03_diversity_causal", {}), "12": ("12_twin_finetunes", {"tau": 0.0, "sweep_layers": [1, 9]}), "04": ("04_focus_score", {}), "05": ("05_temporal_dynamics", {}),
         "06": ("06_head_ablation", {}), "06-collapsed": ("06_head_ablation", {"tau": 0.0, "similarity_threshold": 0.0}),
         "07": ("07_memorization", {}), "08": ("08_detection_replacement", {}), "10": ("10_unselected_prompts", {}),
         "11": ("11_three_concepts", {}), "04-sdxl": ("04_focus_score", {"model": "tiny:sdxl"}),
         "05-flux": ("05_temporal_dynamics", {"model": "tiny:flux"}),
         "06-sdxl": ("06_head_ablation", {"model": "tiny:sdxl", "tau": 0.0, "sweep_layers": [3, 16], "pair_layer": 3}),
         "06-sd3": ("06_head_ablation", {"model": "tiny:sd3", "tau": 0.0}),
         "06-flux": ("06_head_ablation", {"model": "tiny:flux", "tau": 0.0}),
         **{f"{n}-{family}": (chapter, {"model": f"tiny:{family}"})
            for n, chapter in (("04", "04_focus_score"), ("05", "05_temporal_dynamics"), ("07", "07_memorization"),
                               ("08", "08_detection_replacement"), ("11", "11_three_concepts"))
            for family in ("sdxl", "sd3", "flux") if (n, family) not in (("04", "sdxl"), ("05", "flux"))
            and not (n == "07" and family != "sdxl")}}  # the noise-prediction norm needs a UNet (SD, SDXL)


@pytest.mark.parametrize("case", CASES)
def test_a_prefetched_chapter_runs_frozen_and_reads_all_its_plan(case, tmp_path, monkeypatch):
    chapter, extra = CASES[case]
    monkeypatch.chdir(ROOT)
    store = tmp_path / "store"
    params = {"store": str(store), **extra}
    pf.prefetch([chapter], "smoke", params, shard="0/1", log=lambda *_: None)
    planned = planning.plan(chapter, "smoke", params)
    assert planned.items and planned.todo() == []
    assert not [w for w in planned.items if w.provisional]  # the store now tells which rows are ablated
    if "pair_layer" in extra:  # pairs of the layer's heads that did not mitigate, beyond the all-heads ablation
        assert {w.intervention for w in planned.items if '"heads": [[3, ' in w.intervention and w.intervention.count("[3,") == 2}
    before = stored(store)
    monkeypatch.setenv(READ_LOG, str(tmp_path / "reads.log"))
    out = run_chapter(ROOT / f"chapters/{chapter}.ipynb", tmp_path / "out.ipynb", "smoke", cwd=ROOT,
                      parameters={**params, "store_mode": "frozen", "out_dir": str(tmp_path / "book")})
    assert out.ok, out.error  # no read missed: a miss raises StoreMiss in the chapter
    assert stored(store) == before
    reads = set((tmp_path / "reads.log").read_text().splitlines())
    unread = sorted({w.key for w in planned.items} - reads)
    assert not unread, f"{len(unread)} of {len(planned.items)} planned items never read, e.g. {unread[:3]}"
    reference.check(case, tmp_path / "book" / "results" / f"{chapter}.json")  # the same numbers as before


def test_chapter_03_counts_its_fine_tunes_before_training_them(tmp_path, monkeypatch):
    """Paper §3.3's fine-tunes are work: each variant's replicates (keyed by recipe and images before
    any training), then every prompt × seed of each fine-tune and of the base model, judged."""
    monkeypatch.chdir(ROOT)
    p = planning.plan("03", "smoke", {"store": str(tmp_path)})
    tunes = [w for w in p.items if w.kind == planning.FINETUNE]
    S = p.run.profile.scales["causal"]
    assert len(tunes) == len(S["breeds"]) * 3 and len({w.key for w in tunes}) == len(tunes)
    assert all(w.key.startswith("finetune/") and not w.done(tmp_path) for w in tunes)
    assert p.counts()["finetunes"] == len(tunes) and p.counts()["train_steps"] == sum(w.unet_evals for w in tunes)
    models = {w.model for w in p.items if w.kind == planning.GENERATE}
    assert len(models) == len(tunes) + 1  # every fine-tune and the base model generate
    assert set(p.trainings) == {w.key for w in tunes}
    assert not list(tmp_path.iterdir())  # counting trains nothing, writes nothing


def test_a_frozen_store_names_what_it_lacks_and_writes_nothing(tmp_path):
    settings = {"resolution": 128, "steps": 10}
    frozen = Store(tmp_path, "m", settings, mode="frozen")
    assert not tmp_path.joinpath("m").exists()
    with pytest.raises(StoreMiss, match=r"2 first steps \(recording .*\) missing \('a' seed 1; 'a' seed 2\)"):
        frozen.todo([("a", 1), ("a", 2)], image=False, attention={"layers": "all"}, what="first steps")
    with pytest.raises(StoreMiss, match="judge answers 'dvd:x' missing"):
        frozen.answers("dvd:x", "a", [1])
    with pytest.raises(StoreMiss, match="image missing"):
        frozen.image("a", 1)
    with pytest.raises(StoreMiss, match="record fields"):
        frozen.save("a", 1, seconds=1.0)
    Store(tmp_path, "m", settings).save("a", 1, **{"dvd:x": {"c": 1}})
    assert frozen.answers("dvd:x", "a", [1]) == {1: {"c": 1}}
    assert frozen.reads == {f"m/{digest({'model': 'm', **settings})}/{digest('a')}/1.json#dvd:x"}  # a plan's key
    with pytest.raises(ValueError, match="store mode"):
        Store(tmp_path, "m", settings, mode="read")


@pytest.mark.parametrize("family", ["sd3", "flux"])
def test_the_noise_norm_chapter_on_a_transformer_family_says_what_it_needs(family, tmp_path, monkeypatch):
    """Paper §3.7's norm is read from a UNet's guidance batch: on SD3 or Flux chapter 07 stops before any
    compute (plan and run alike) with the reason, not an AttributeError."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(NotImplementedError, match="has no UNet"):
        planning.plan("07", "smoke", {"model": f"tiny:{family}", "store": str(tmp_path)})
