"""The cross-attention layer registry (layer numbering as in the authors' release): dvdlib.layers.

Full-size SD 1.4 / SD 2.1 UNets are built from their shipped configs on the meta device (no
weights, no memory); the smoke model is the real, runnable one.
"""
import pytest
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel

from dvdlib import models
from dvdlib.layers import cross_attention_layers, registry, select

BLOCKS = ["down"] * 6 + ["mid"] + ["up"] * 9
BLOCK_INDEX = [0, 0, 1, 1, 2, 2, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
SD14_SIZES_512 = [64, 64, 32, 32, 16, 16, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64]
SD21_HEADS = [5, 5, 10, 10, 20, 20, 20, 20, 20, 20, 10, 10, 10, 5, 5, 5]
SD21_SIZES_768 = [96, 96, 48, 48, 24, 24, 12, 24, 24, 24, 48, 48, 48, 96, 96, 96]


def meta_unet(name):
    with init_empty_weights():
        return UNet2DConditionModel(**models.unet_config(name))


@pytest.fixture(scope="module")
def sd14():
    return meta_unet("sd1.4")


@pytest.fixture(scope="module")
def sd21():
    return meta_unet("sd2.1")


@pytest.fixture(scope="module")
def smoke():
    return models.load("smoke")


def test_unets_are_on_the_meta_device(sd14, sd21):
    assert sd14.device.type == "meta" and sd21.device.type == "meta"


def test_sd14_layers_in_forward_order(sd14):
    layers = cross_attention_layers(sd14, 512)
    assert len(layers) == 16
    assert [layer.index for layer in layers] == list(range(1, 17))
    assert [layer.block for layer in layers] == BLOCKS
    assert [layer.block_index for layer in layers] == BLOCK_INDEX
    assert [layer.size for layer in layers] == SD14_SIZES_512
    assert [layer.heads for layer in layers] == [8] * 16
    assert sum(layer.heads for layer in layers) == 128
    # the explicit check: layers 8–10 run at 16² for SD 1.4 at 512 px
    assert [layers[i].size for i in (7, 8, 9)] == [16, 16, 16]
    # names follow the blocks: 1–2 down_blocks.0, 7 mid_block, 8–10 up_blocks.1, 14–16 up_blocks.3
    assert layers[0].name == "down_blocks.0.attentions.0.transformer_blocks.0.attn2"
    assert layers[6].name == "mid_block.attentions.0.transformer_blocks.0.attn2"
    assert [layer.name.split(".attentions")[0] for layer in layers[7:10]] == ["up_blocks.1"] * 3
    assert layers[15].name == "up_blocks.3.attentions.2.transformer_blocks.0.attn2"
    assert all(layer.module.is_cross_attention for layer in layers)


def test_default_resolution_is_the_unets_native_size(sd14, sd21):
    # sample_size 64 latents × 8 = 512 px (SD 1.4); 96 × 8 = 768 px (SD 2.1)
    assert [layer.size for layer in cross_attention_layers(sd14)] == SD14_SIZES_512
    assert [layer.size for layer in cross_attention_layers(sd21)] == SD21_SIZES_768
    # sizes scale with the resolution: 768 px on SD 1.4 = 96 latents
    assert [layer.size for layer in cross_attention_layers(sd14, 768)] == SD21_SIZES_768


def test_sd21_heads_and_sizes(sd21):
    layers = cross_attention_layers(sd21, 768)
    assert len(layers) == 16
    assert [layer.heads for layer in layers] == SD21_HEADS
    assert sum(layer.heads for layer in layers) == 195
    assert [layer.size for layer in layers] == SD21_SIZES_768
    assert [layer.block for layer in layers] == BLOCKS
    assert [layer.block_index for layer in layers] == BLOCK_INDEX


@pytest.mark.parametrize("name", ["sd1.4", "sd2.1"])
def test_registry_order_differs_from_attn_processors_order(name, sd14, sd21):
    unet = {"sd1.4": sd14, "sd2.1": sd21}[name]
    layers = cross_attention_layers(unet)
    keys = list(unet.attn_processors)
    names = [layer.processor_name for layer in layers]
    assert all(n in unet.attn_processors for n in names)
    cross_in_processor_order = [k for k in keys if k.endswith("attn2.processor")]
    assert sorted(cross_in_processor_order) == sorted(names)  # the same 16 layers ...
    assert cross_in_processor_order != names  # ... in a different order:
    # attn_processors lists them down → up → mid; the registry (forward order) down → mid → up
    assert cross_in_processor_order[-1].startswith("mid_block.")
    assert cross_in_processor_order[6].startswith("up_blocks.1.")
    assert names[6].startswith("mid_block.")
    assert cross_in_processor_order[:6] == names[:6]
    assert cross_in_processor_order[6:15] == names[7:16]
    # the processor of each registry entry is its module's processor
    for layer in layers:
        assert unet.attn_processors[layer.processor_name] is layer.module.processor


def test_smoke_model_has_the_sd1_layout(smoke):
    layers = registry(smoke)
    assert len(layers) == 16
    assert [layer.block for layer in layers] == BLOCKS
    assert [layer.block_index for layer in layers] == BLOCK_INDEX
    # at its native 128 px (16² latents) the sizes are SD 1.4's at 512 px divided by 4
    assert [layer.size for layer in layers] == [s // 4 for s in SD14_SIZES_512]
    assert [layer.size for layer in registry(smoke, 512)] == SD14_SIZES_512
    assert all(layer.processor_name in smoke.unet.attn_processors for layer in layers)
    heads = {layer.heads for layer in layers}
    assert len(heads) == 1 and heads.pop() >= 2


def test_select(smoke):
    layers = registry(smoke)
    assert select(layers, "all") == layers
    assert select(layers, "all") is not layers  # a copy, the registry can't be mutated through it
    assert [layer.index for layer in select(layers, 9)] == [9]
    assert [layer.index for layer in select(layers, [10, 8, 9])] == [10, 8, 9]  # the order asked
    assert [layer.index for layer in select(layers, range(1, 7))] == [1, 2, 3, 4, 5, 6]
    assert select(layers, 7)[0].block == "mid"


@pytest.mark.parametrize("which", [17, 0, [8, 17], [-1]])
def test_select_missing_layer(smoke, which):
    with pytest.raises(ValueError, match=r"no cross-attention layer .*layers 1–16"):
        select(registry(smoke), which)


def test_layer_str(sd14):
    layer = cross_attention_layers(sd14, 512)[8]
    assert str(layer) == "layer 9 (up 1, 16², 8 heads)"


# --- the family a registry comes from (dvdlib.family) and the registry passed along ------------------

def test_a_loaded_pipeline_keeps_its_family_s_adapter(smoke):
    """`models.load` finds the adapter once (`dvdlib.family.of`) and keeps it on the pipeline;
    `dvdlib.adapters` has registered the four families with the core."""
    from dvdlib import family

    assert smoke.__dict__[family.ATTRIBUTE] is family.of(smoke) is family.by_family("sd")
    assert [a.family for a in family.adapters()] == ["sdxl", "sd3", "flux", "sd"]


def test_a_family_registered_from_outside_is_found(monkeypatch):
    """A fork's family: subclass `dvdlib.family.Adapter` and `register` it; the core finds it."""
    from dvdlib import family

    monkeypatch.setattr(family, "_ADAPTERS", list(family._ADAPTERS))

    class Other:
        pass

    class OtherAdapter(family.Adapter):
        family, pipelines = "other", ("Other",)

    adapter = family.register(OtherAdapter())
    assert family.of(Other()) is adapter and family.by_family("other") is adapter
    with pytest.raises(ValueError, match="no adapter for object"):
        family.of(object())


def test_check_prompt_builds_the_registry_once(tmp_path, monkeypatch):
    """`dvd check` (`dvdlib.detect.check_prompt`): one registry, built once and passed to the
    generation, its recording and the Focus Score table; the adapter is found at load."""
    from dvdlib.adapters.sd import UNetAdapter
    from dvdlib.detect import check_prompt
    from dvdlib.store import Store

    pipe = models.load("smoke")
    built, stock_layers = [], UNetAdapter.layers
    monkeypatch.setattr(UNetAdapter, "layers", lambda self, *a, **k: built.append(a) or stock_layers(self, *a, **k))
    store = Store(tmp_path, "smoke", {"resolution": 128, "steps": 4, "guidance": 7.5, "eta": 0.0})
    result = check_prompt(pipe, "Van Gogh's Starry Night Notebook", ["van gogh"], store=store, seeds=(1825, 410))
    assert len(built) == 1 and len(result.focus) == 16
    assert set(check_prompt(pipe, "Van Gogh's Starry Night Notebook", store=store).focus) == set(range(1, 17))
    assert len(built) == 2  # the second check reads the store: its one registry, for the layers
