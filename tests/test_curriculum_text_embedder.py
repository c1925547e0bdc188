"""The OpenCLIP text embedder of stages 1-2 (SD 2.1 style): shapes, layers, checkpoint layout."""
import pytest
import torch
from omegaconf import OmegaConf

from sgm.modules.encoders.modules import FrozenOpenCLIPEmbedder
from sgm.util import instantiate_from_config

TINY = "configs/curriculum/toy/tiny_text_clip.json"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return FrozenOpenCLIPEmbedder(arch=TINY, layer="penultimate")


def test_tokens_to_features(tiny):
    z = tiny(["a red square moving right", "a blue circle"])
    assert z.shape == (2, 77, 32)
    assert not any(p.requires_grad for p in tiny.parameters())
    assert not torch.equal(z[0], z[1])


def test_penultimate_skips_the_last_block(tiny):
    last = FrozenOpenCLIPEmbedder(arch=TINY, layer="last")
    last.load_state_dict(tiny.state_dict())
    tokens = tiny.tokenize(["a caption"])
    m = last.model
    x = m.token_embedding(tokens) + m.positional_embedding
    full = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))
    first = m.ln_final(m.transformer.resblocks[0](x, attn_mask=m.attn_mask))
    with torch.no_grad():
        assert torch.allclose(last(["a caption"]), full, atol=1e-6)
        assert torch.allclose(tiny(["a caption"]), first, atol=1e-6)


def test_loads_local_weights_and_rejects_bad_options(tmp_path, tiny):
    path = tmp_path / "clip.pt"
    torch.save({k[len("model."):]: v for k, v in tiny.state_dict().items()}, path)
    other = FrozenOpenCLIPEmbedder(arch=TINY, layer="penultimate", version=str(path))
    assert torch.equal(other(["x"]), tiny(["x"]))
    with pytest.raises(ValueError, match="layer"):
        FrozenOpenCLIPEmbedder(arch=TINY, layer="pooled")
    with pytest.raises(ValueError, match="vocab_size"):
        FrozenOpenCLIPEmbedder(arch="configs/tiny/tiny_clip.json")


def test_sd21_checkpoint_layout_on_meta():
    """ViT-H-14 text tower, as SD 2.1 stores it under conditioner.embedders.0.model.* (built without memory)."""
    with torch.device("meta"):
        emb = FrozenOpenCLIPEmbedder(arch="ViT-H-14", layer="penultimate", version="laion2b_s32b_b79k")
    keys = set(emb.state_dict())
    assert {"model.token_embedding.weight", "model.positional_embedding", "model.ln_final.weight",
            "model.text_projection", "model.transformer.resblocks.23.mlp.c_proj.weight"} <= keys
    assert not any(k.startswith("model.visual") for k in keys)
    assert emb.model.token_embedding.weight.shape == (49408, 1024)
    assert emb.model.positional_embedding.shape == (77, 1024)


def test_conditioner_routes_text_to_crossattn():
    cfg = OmegaConf.create({"target": "sgm.modules.GeneralConditioner", "params": {"emb_models": [
        {"input_key": "txt", "ucg_rate": 0.1, "legacy_ucg_value": "",
         "target": "sgm.modules.encoders.modules.FrozenOpenCLIPEmbedder",
         "params": {"arch": TINY, "layer": "penultimate", "freeze": True}}]}})
    cond = instantiate_from_config(cfg)
    out = cond({"txt": ["a", "b", "c"]})
    assert set(out) == {"crossattn"} and out["crossattn"].shape == (3, 77, 32)
