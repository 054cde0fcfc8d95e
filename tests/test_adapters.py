"""Model adapters (dvdlib.adapters): SDXL's 70 cross-attention layers, SD3's joint blocks and FLUX's
double- and single-stream blocks, with tiny random-weight pipelines built offline
(`dvdlib.load("tiny:sdxl")`, `"tiny:sd3"`, `"tiny:flux"`)."""
import numpy as np
import pytest
import torch
from accelerate import init_empty_weights

import dvdlib
from dvdlib import adapters, models
from dvdlib.adapters.flux import T5_LENGTH, flux_attention
from dvdlib.adapters.joint import attend, text_shares
from dvdlib.adapters import relative_depth
from dvdlib.adapters.sd3 import sd3_attention
from dvdlib.attention import intervene_each
from dvdlib.generate import initial_latents
from dvdlib.layers import cross_attention_layers, registry
from dvdlib.tokens import JointSequence, concept_span, content_positions, sequence_tokenizer, tiny_t5_tokenizer

PROMPTS = ["Neuschwanstein Castle Coaster", "van gogh starry night notebook"]


@pytest.fixture(scope="module")
def sdxl():
    return models.load("tiny:sdxl")


@pytest.fixture(scope="module")
def sd3():
    return models.load("tiny:sd3")


@pytest.fixture(scope="module")
def flux():
    return models.load("tiny:flux")


def run(pipe, steps=2, **kwargs):
    latents = initial_latents(pipe, [1825, 410], 128)
    return pipe(PROMPTS, latents=latents, num_inference_steps=steps, guidance_scale=5.0, height=128, width=128,
                output_type="np", **kwargs).images


# --- registry counts against the real configs -----------------------------------------------------

def test_sdxl_base_has_70_cross_attention_layers():
    from diffusers import UNet2DConditionModel

    with init_empty_weights():
        unet = UNet2DConditionModel(**models.unet_config("sdxl"))
    layers = cross_attention_layers(unet, 1024)
    assert len(layers) == 70
    # down 1: 2 × 2 at 64², down 2: 2 × 10 at 32², mid: 10 at 32², up 0: 3 × 10 at 32², up 1: 3 × 2 at 64²
    assert [layer.block for layer in layers] == ["down"] * 24 + ["mid"] * 10 + ["up"] * 36
    assert [layer.size for layer in layers[:4]] == [64] * 4 and layers[4].size == 32 and layers[-1].size == 64
    assert adapters.by_family("sdxl").semantic_layers(layers) == tuple(range(35, 65))


def test_sd3_medium_has_24_joint_blocks():
    from diffusers import SD3Transformer2DModel

    from dvdlib.models import _config

    with init_empty_weights():
        transformer = SD3Transformer2DModel(**_config("sd3_transformer"))

    class Pipe:  # registry needs the transformer and the VAE factor only
        vae_scale_factor = 8

    Pipe.transformer = transformer
    layers = adapters.by_family("sd3").layers(Pipe(), 1024)
    assert len(layers) == 24 and {layer.heads for layer in layers} == {24} and layers[0].size == 64
    assert relative_depth(24) == (11, 12, 13, 14, 15) and relative_depth(16) == (8, 9, 10)


def test_flux1_has_19_double_and_38_single_stream_blocks():
    from diffusers import FluxTransformer2DModel

    from dvdlib.models import _config

    with init_empty_weights():
        transformer = FluxTransformer2DModel(**_config("flux1_schnell_transformer"))

    class Pipe:  # registry needs the transformer, the VAE factor and the default size only
        vae_scale_factor, default_sample_size = 8, 128

    Pipe.transformer = transformer
    layers = adapters.by_family("flux").layers(Pipe(), 1024)
    assert [layer.block for layer in layers] == ["double"] * 19 + ["single"] * 38
    assert [layer.index for layer in layers] == list(range(1, 58))
    assert layers[19].name == "single_transformer_blocks.0.attn" and layers[19].block_index == 0
    assert {layer.heads for layer in layers} == {24} and layers[0].size == 64  # 1024 px: 64² packed tokens
    assert adapters.by_family("flux").layers(Pipe())[0].size == 64  # the pipeline's default size is 1024
    assert adapters.by_family("flux").semantic_layers(layers) == tuple(range(25, 36))  # single-stream 6–16


def test_tiny_pipelines_and_their_adapters(sdxl, sd3, flux):
    assert adapters.of(sdxl).family == "sdxl" and adapters.of(sd3).family == "sd3"
    assert adapters.of(flux).family == "flux"
    assert adapters.of(models.load("smoke")).family == "sd"
    assert len(registry(sdxl)) == 17 and len(registry(sd3)) == 4 and len(registry(flux)) == 6
    assert [layer.block for layer in registry(sd3)] == ["joint"] * 4
    assert [layer.block for layer in registry(flux)] == ["double"] * 2 + ["single"] * 4
    with pytest.raises(ValueError, match="unknown model family 'sd4'"):
        models.load("tiny:sd4")
    for pipe in (sdxl, sd3, flux):
        text = adapters.of(pipe).describe(pipe)
        assert "head" in text and "8–10" in text


# --- recording leaves the output as the stock processors make it ----------------------------------

@pytest.mark.parametrize("name", ["sdxl", "sd3", "flux"])
def test_recording_leaves_images_unchanged(name, sdxl, sd3, flux):
    pipe = {"sdxl": sdxl, "sd3": sd3, "flux": flux}[name]
    plain = run(pipe)
    np.testing.assert_array_equal(run(pipe), plain)  # the reference is deterministic
    with dvdlib.record(pipe, layers="all", steps="all", heads="each", maps=True) as rec:
        recorded = run(pipe)
    np.testing.assert_allclose(recorded, plain, atol=1e-4, rtol=0)
    n = len(registry(pipe))
    assert rec.keys() == [(layer, step) for layer in range(1, n + 1) for step in (1, 2)]
    tokens = sequence_tokenizer(pipe).model_max_length
    share = rec.share(2, 1)
    assert share.shape == (2, registry(pipe)[1].heads, tokens)
    np.testing.assert_allclose(share.sum(-1), 1.0, atol=1e-5)  # default: over the text keys only
    assert rec.map(2, 1).shape[1:] == (registry(pipe, 128)[1].size,) * 2 + (tokens,)


def test_sd3_explicit_block_equals_the_stock_processor(sd3):
    for layer in registry(sd3):
        attn = layer.module
        torch.manual_seed(layer.index)
        hidden, context = torch.randn(2, 64, 32), torch.randn(2, 333, 32)
        with torch.no_grad():
            stock = attn.processor(attn, hidden, context)
            block, out = sd3_attention(attn, hidden, context, chunk=24)  # chunks that straddle image and text
        for a, b in zip(out, stock):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert block.shape == (2, attn.heads, 64, 333)


def test_flux_explicit_blocks_equal_the_stock_processor(flux):
    from diffusers.models.transformers.transformer_flux import FluxPosEmbed

    torch.manual_seed(0)
    text, image = 12, 64
    ids = torch.cat([torch.zeros(text, 3), torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(8.0),
                                                                       torch.arange(8.0), indexing="ij"), -1).view(-1, 3)])
    rotary = FluxPosEmbed(theta=10000, axes_dim=[2, 2, 4])(ids)
    for layer in registry(flux):
        attn = layer.module
        hidden, context = torch.randn(2, image, 32), torch.randn(2, text, 32)
        with torch.no_grad():
            if layer.block == "double":
                stock = attn.processor(attn, hidden, context, None, rotary)
                block, out = flux_attention(attn, hidden, context, image_rotary_emb=rotary, chunk=24)
            else:  # one stream of [text; image]
                joined = torch.cat([context, hidden], 1)
                stock = (attn.processor(attn, joined, None, None, rotary),)
                block, out = flux_attention(attn, joined, image_rotary_emb=rotary, text_length=text, chunk=24)
                out = (out,)
        for a, b in zip(out, stock, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
        assert block.shape == (2, attn.heads, image, text)
    with pytest.raises(ValueError, match="needs text_length"):
        flux_attention(registry(flux)[-1].module, torch.randn(1, 76, 32), image_rotary_emb=rotary)


def test_joint_share_definitions(sd3):
    with dvdlib.record(sd3, layers=[3], steps=[1], heads="each", softmax="joint") as joint, \
            dvdlib.record(sd3, layers=[3], steps=[1], heads="each") as text:
        run(sd3, steps=1)
    j, t = joint.share(3, 1), text.share(3, 1)
    assert (j.sum(-1) < 1 - 1e-3).all()  # the joint softmax also spends attention on image keys
    np.testing.assert_allclose(t.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="softmax must be"):
        dvdlib.record(sd3, softmax="image").__enter__()
    with pytest.raises(ValueError, match="share must be"):
        text_shares(torch.ones(1, 1, 1, 2), "image")


def test_attend_chunks_equal_one_chunk():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 50, 8), torch.randn(2, 3, 50, 8), torch.randn(2, 3, 50, 8)
    factors = torch.tensor([0.0, 1.0, 2.0])
    whole, block = attend(q, k, v, 8 ** -0.5, slice(0, 40), slice(40, 50), factors, chunk=50)
    parts, block7 = attend(q, k, v, 8 ** -0.5, slice(0, 40), slice(40, 50), factors, chunk=7)
    torch.testing.assert_close(parts, whole)
    torch.testing.assert_close(block7, block)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    plain, _ = attend(q, k, v, 8 ** -0.5, slice(0, 40), slice(40, 50), chunk=13)
    torch.testing.assert_close(plain, ref, atol=1e-5, rtol=1e-4)
    # factor 0 on head 0: the image queries' logits over the text keys are 0 (uniform among them)
    np.testing.assert_allclose(text_shares(block, "text")[:, 0].numpy(), 0.1, rtol=1e-5)


# --- spans on each tokenizer ------------------------------------------------------------------------

def test_sdxl_spans_agree_on_both_tokenizers(sdxl):
    tokenizers = adapters.of(sdxl).tokenizers(sdxl)
    assert set(tokenizers) == {"tokenizer", "tokenizer_2"}
    for concept in ("neuschwanstein castle", "coaster"):
        spans = {name: concept_span(t, PROMPTS[0], concept) for name, t in tokenizers.items()}
        assert spans["tokenizer"] == spans["tokenizer_2"]
    assert sequence_tokenizer(sdxl) is sdxl.tokenizer
    assert concept_span(sdxl.tokenizer, PROMPTS[0], "coaster") == [6]


def test_sd3_joint_sequence_spans(sd3):
    sequence = sequence_tokenizer(sd3)
    assert isinstance(sequence, JointSequence) and sequence.model_max_length == 77 + 256
    # CLIP BPE splits "neuschwanstein" into 4 pieces at positions 1–5; the tiny T5 has it as one word
    assert concept_span(sd3.tokenizer, PROMPTS[0], "neuschwanstein castle") == [1, 2, 3, 4, 5]
    assert concept_span(sd3.tokenizer_3, PROMPTS[0], "neuschwanstein castle") == [0, 1]
    assert concept_span(sequence, PROMPTS[0], "neuschwanstein castle") == [1, 2, 3, 4, 5, 77, 78]
    assert concept_span(sequence, PROMPTS[0], "coaster") == [6, 79]
    assert content_positions(sequence, PROMPTS[0]) == [1, 2, 3, 4, 5, 6, 77, 78, 79]
    assert [sequence.part_of(p) for p in (0, 76, 77, 332)] == [0, 0, 1, 1]


def test_flux_spans_on_the_t5_sequence(flux):
    sequence = sequence_tokenizer(flux)
    assert isinstance(sequence, JointSequence) and sequence.model_max_length == T5_LENGTH == 512
    assert set(adapters.of(flux).tokenizers(flux)) == {"tokenizer", "tokenizer_2"}
    # only T5's tokens reach the attention: the word-level T5 has "neuschwanstein" as one word
    assert concept_span(sequence, PROMPTS[0], "neuschwanstein castle") == [0, 1]
    assert concept_span(sequence, PROMPTS[0], "coaster") == [2]
    assert content_positions(sequence, PROMPTS[1]) == [0, 1, 2, 3, 4]
    assert concept_span(sequence, PROMPTS[1], "starry night") == concept_span(flux.tokenizer_2, PROMPTS[1], "starry night")


def test_tiny_t5_tokenizer():
    t5 = tiny_t5_tokenizer()
    enc = t5("Van Gogh's mug, unknownword", return_offsets_mapping=True, return_special_tokens_mask=True)
    assert t5.convert_ids_to_tokens(enc["input_ids"])[-1] == "</s>" and enc["special_tokens_mask"][-1] == 1
    assert "<unk>" in t5.convert_ids_to_tokens(enc["input_ids"])  # an unknown word is one <unk> with offsets
    assert concept_span(t5, "Van Gogh's mug, unknownword", "unknownword") == [6]
    assert concept_span(t5, "Van Gogh's mug", "van gogh") == [0, 1]


# --- ablation changes only the chosen heads ---------------------------------------------------------

def test_sd3_ablation_changes_only_the_chosen_head(sd3):
    with dvdlib.record(sd3, layers="all", steps=[1], heads="each", branch="both") as base:
        plain = run(sd3)
    with dvdlib.record(sd3, layers="all", steps=[1], heads="each", branch="both") as rec:
        with dvdlib.intervene(sd3, {(2, 1): 0.0}):
            ablated = run(sd3)
    shares = rec.share(2, 1)
    np.testing.assert_allclose(shares[:, 1], 1 / 333, rtol=1e-5)  # uniform over the text keys, both halves
    np.testing.assert_allclose(shares[:, [0, 2, 3]], base.share(2, 1)[:, [0, 2, 3]], atol=1e-6)
    np.testing.assert_allclose(rec.share(1, 1), base.share(1, 1), atol=1e-6)  # the block before it
    assert np.abs(rec.share(3, 1) - base.share(3, 1)).max() > 1e-6  # the block after it sees the change
    assert np.abs(ablated - plain).max() > 1e-4


@pytest.mark.parametrize("layer", [2, 4])  # a double-stream block, a single-stream block
def test_flux_ablation_changes_only_the_chosen_head(layer, flux):
    with dvdlib.record(flux, layers="all", steps=[1], heads="each") as base:
        plain = run(flux, steps=1)
    with dvdlib.record(flux, layers="all", steps=[1], heads="each") as rec, dvdlib.intervene(flux, {(layer, 2): 0.0}):
        ablated = run(flux, steps=1)
    shares = rec.share(layer, 1)
    np.testing.assert_allclose(shares[:, 2], 1 / T5_LENGTH, rtol=1e-5)  # uniform over the T5 keys
    np.testing.assert_allclose(shares[:, [0, 1, 3]], base.share(layer, 1)[:, [0, 1, 3]], atol=1e-6)
    for before in range(1, layer):
        np.testing.assert_allclose(rec.share(before, 1), base.share(before, 1), atol=1e-6)
    assert np.abs(rec.share(layer + 1, 1) - base.share(layer + 1, 1)).max() > 1e-6
    assert np.abs(ablated - plain).max() > 1e-4


def test_sdxl_ablation_changes_only_the_chosen_head(sdxl):
    with dvdlib.record(sdxl, layers="all", steps=[1], heads="each") as base:
        run(sdxl, steps=1)
    with dvdlib.record(sdxl, layers="all", steps=[1], heads="each") as rec, dvdlib.intervene(sdxl, {(9, 0): 0.0}):
        run(sdxl, steps=1)
    np.testing.assert_allclose(rec.share(9, 1)[:, 0], 1 / 77, rtol=1e-5)
    np.testing.assert_allclose(rec.share(9, 1)[:, 1], base.share(9, 1)[:, 1], atol=1e-6)
    for layer in range(1, 9):
        np.testing.assert_allclose(rec.share(layer, 1), base.share(layer, 1), atol=1e-6)


def test_sd3_per_image_factors_equal_one_at_a_time(sd3):
    with intervene_each(sd3, [({(2, 1): 0.0}, (1,)), None]):
        batched = run(sd3)
    with dvdlib.intervene(sd3, {(2, 1): 0.0}):
        first = run(sd3)[0]
    second = run(sd3)[1]
    np.testing.assert_allclose(batched, np.stack([first, second]), atol=1e-4)


# --- dvd check ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tiny:sd3", "tiny:sdxl", "tiny:flux"])
def test_dvd_check_on_a_tiny_model(model, tmp_path, monkeypatch, capsys):
    from dvdlib.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["check", "Neuschwanstein Castle Coaster", "--concepts", "neuschwanstein castle", "coaster",
                 "--model", model]) == 0
    out = capsys.readouterr().out
    n = len(registry(models.load(model)))
    assert "layer  Focus Score  peak token" in out and out.count("← detector") >= 1
    assert len([line for line in out.splitlines() if line[:5].strip().isdigit()]) == n
    if model == "tiny:sd3":
        assert "token positions [1, 2, 3, 4, 5, 77, 78]" in out and "(layers 2," in out
    if model == "tiny:flux":  # the T5 sequence alone; of 6 blocks, block 3 sits at SD 1.4's depth 8–10 of 16
        assert "token positions [0, 1]" in out and "(layers 3," in out and relative_depth(6) == (3,)


# --- the chapters on each family (papermill) ---------------------------------------------------------

def outputs_text(notebook) -> str:
    """Every Markdown and text output of an executed notebook, joined."""
    import json

    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(o.get("data", {}).get(kind, o.get("text", "")))
                     for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                     for kind in ("text/markdown", "text/plain"))


def test_paper_layers_read_on_each_family(sdxl, sd3, flux):
    smoke = models.load("smoke")
    assert adapters.paper_layers(smoke, [8, 9, 10]) == [8, 9, 10] and adapters.paper_layers(smoke, [7]) == [7]
    assert adapters.paper_layers(sdxl, [8, 9, 10]) == list(adapters.of(sdxl).semantic_layers(registry(sdxl)))
    assert adapters.paper_layers(sd3, [9, 10]) == [2] and adapters.paper_layers(flux, [5, 6, 7, 8, 9, 10]) == [2, 3]
    # a short registry has no block at SD 1.4's depth 7 by the ceiling rule: the block whose range holds it
    assert adapters.paper_layers(flux, [7]) == [3]
    with pytest.raises(ValueError, match="SD 1.4 has layers 1–16"):
        adapters.paper_layers(flux, [17])
    note = adapters.describe(flux, 128, peak_layers=[8, 9, 10], swept_layers="all")
    assert "peak layers: SD 1.4's 8–10 → layer 3" in note and "swept layers: all" in note and "T5" in note
    # chapter 08's grid: sets that land on the same blocks are kept once
    assert adapters.paper_layer_sets(flux, [[8], [9], [10], [9, 10], [5, 6, 7, 8, 9, 10]]) == [[3], [2, 3]]
    # chapter 06's sweep (the smoke scale's layers 1, 3, 6 do not all exist on a 4-block model)
    from dvdlib.ablation import SweepPlan, on_model

    plan = SweepPlan([1, 3, 6], "all", 2, 2, [1825], True)
    assert on_model(plan, sd3).layers == [1, 2] and on_model(plan, smoke) == plan
    assert on_model(SweepPlan("all", "all", 2, 2, [1825], False), sd3).layers == "all"


@pytest.mark.parametrize("model", ["tiny:sdxl", "tiny:sd3", "tiny:flux"])
def test_focus_score_chapter_runs_on_each_family(model, tmp_path):
    """Chapter 04 through papermill, profile smoke with ``-p model tiny:...``: it runs, says which
    definitions changed, and reads the paper's layers 5–10 and 8–10 on this model's blocks."""
    import json

    from dvdlib import scheduler
    from test_book import copy_book

    root = copy_book(tmp_path)
    (outcome,) = scheduler.run_chapters("smoke", only="04_focus_score", cwd=root, verbose=False, jobs=1, threads=1,
                                   parameters={"model": model})
    assert outcome.ok, f"the chapter failed: {outcome.error} (see {outcome.output})"
    pipe = models.load(model)
    text = outputs_text(root / "book" / "04_focus_score.ipynb")
    assert f"**Model family: {adapters.of(pipe).family}.**" in text
    assert f"| sampler | {'DDIM' if model == 'tiny:sdxl' else 'flow-matching Euler'} 10 steps" in text  # the card
    results = {r["key"]: r for r in json.loads((root / "book" / "results" / "04_focus_score.json").read_text())["results"]}
    gap = adapters.paper_layers(pipe, range(5, 11))
    from dvdlib.report import ranges

    assert f"over layers {ranges(gap)}," in results["fs_layers_gap"]["quantity"]
    semantic = ranges(adapters.of(pipe).semantic_layers(registry(pipe)))
    assert f"layers {semantic} (the paper" in results["fs_median"]["quantity"]
