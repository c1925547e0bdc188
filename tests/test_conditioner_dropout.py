"""Conditioning dropout in GeneralConditioner: per embedder (sgm's ucg_rate) and joint (ucg_group)."""
import pytest
import torch

from sgm.modules.encoders.conditioner import GeneralConditioner

SCALAR = "sgm.modules.encoders.modules.ConcatTimestepEmbedderND"


def _conditioner(group_a=None, group_b=None, rate_b=0.5):
    return GeneralConditioner([
        {"target": SCALAR, "params": {"outdim": 4}, "input_key": "a", "ucg_rate": 0.5, "ucg_group": group_a},
        {"target": SCALAR, "params": {"outdim": 4}, "input_key": "b", "ucg_rate": rate_b, "ucg_group": group_b},
    ])


def _dropped(cond, n=4096):
    vector = cond["vector"]  # (n, 8): 4 dims from embedder a, then 4 from b
    return (vector[:, :4] == 0).all(1), (vector[:, 4:] == 0).all(1)


def test_embedders_of_one_group_drop_the_same_items():
    torch.manual_seed(0)
    batch = {"a": torch.arange(1, 4097).float(), "b": torch.arange(1, 4097).float()}
    a, b = _dropped(_conditioner("image", "image")(batch))
    assert torch.equal(a, b)
    assert 0.45 < a.float().mean() < 0.55


def test_without_a_group_drops_are_independent():
    torch.manual_seed(0)
    batch = {"a": torch.arange(1, 4097).float(), "b": torch.arange(1, 4097).float()}
    a, b = _dropped(_conditioner()(batch))
    both = (a & b).float().mean()
    assert 0.2 < both < 0.3  # 0.5 * 0.5, not 0.5


def test_a_group_needs_one_rate():
    with pytest.raises(ValueError, match="same ucg_rate"):
        _conditioner("image", "image", rate_b=0.2)


def test_guidance_conditioning_ignores_the_groups():
    cond = _conditioner("image", "image")
    batch = {"a": torch.arange(1, 9).float(), "b": torch.arange(1, 9).float()}
    c, uc = cond.get_unconditional_conditioning(batch, force_uc_zero_embeddings=["a", "b"])
    assert (c["vector"] != 0).any(1).all() and (uc["vector"] == 0).all()


def test_dropout_is_off_in_eval_mode_and_an_explicit_choice_otherwise():
    torch.manual_seed(0)
    cond = _conditioner()
    batch = {"a": torch.arange(1, 4097).float(), "b": torch.arange(1, 4097).float()}
    a, b = _dropped(cond.eval()(batch))
    assert not a.any() and not b.any()  # eval: nothing dropped, and ucg_rate untouched
    assert [e.ucg_rate for e in cond.embedders] == [0.5, 0.5]
    a, _ = _dropped(cond(batch, dropout=True))  # asked for in eval mode
    assert 0.45 < a.float().mean() < 0.55
    a, _ = _dropped(cond.train()(batch, dropout=False))  # refused in training mode
    assert not a.any()
    c, uc = cond.train().get_unconditional_conditioning(batch)  # guidance never drops
    assert (c["vector"] != 0).all() and [e.ucg_rate for e in cond.embedders] == [0.5, 0.5]
