"""Checkpoints: exact round trips, atomic writes, and one-line errors for bad files."""

import pytest
import torch

from difusion.checkpoint import (
    load_checkpoint,
    load_module,
    restore_optimizer,
    save_checkpoint,
)
from difusion.errors import CheckpointError
from difusion.training.ema import EMA


def small_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(3):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ema = EMA(model, 0.9)
    ema.update(model, 3)
    return model, ema, opt


def test_round_trip_restores_everything(tmp_path):
    model, ema, opt = small_state()
    gen = torch.Generator().manual_seed(5)
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        model=model,
        ema=ema.model,
        optimizer=opt,
        rng={"data": gen.get_state()},
        meta={"step": 3, "elapsed": 1.5},
    )
    groups, info = load_checkpoint(path)
    assert info["meta"] == {"step": 3, "elapsed": 1.5}
    model2, ema2, opt2 = small_state()
    for p in model2.parameters():
        p.data.add_(1.0)
    load_module(model2, groups["model"], path)
    restore_optimizer(opt2, groups["optim"], info)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    for k in s1["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(
                torch.as_tensor(s1["state"][k][key]), torch.as_tensor(s2["state"][k][key])
            )
    assert s1["param_groups"] == s2["param_groups"]
    g2 = torch.Generator()
    g2.set_state(groups["rng"]["data"])
    assert torch.equal(torch.rand(3, generator=gen), torch.rand(3, generator=g2))
    # The next optimizer step is identical after restoring: resuming continues exactly.
    x = torch.randn(8, 3)
    for m, o in ((model, opt), (model2, opt2)):
        loss = m(x).pow(2).mean()
        o.zero_grad()
        loss.backward()
        o.step()
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), model2.parameters(), strict=True)
    )


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path):
    model, ema, opt = small_state()
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, model=model, meta={"step": 1})
    save_checkpoint(p, model=model, meta={"step": 2})
    assert [f.name for f in tmp_path.iterdir()] == ["c.safetensors"]
    assert load_checkpoint(p)[1]["meta"]["step"] == 2


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "foreign"])
def test_bad_files_give_one_line_errors(tmp_path, damage):
    model, _, _ = small_state()
    p = tmp_path / "c.safetensors"
    save_checkpoint(p, model=model, meta={"step": 1})
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[:100])
    elif damage == "garbage":
        p.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "missing":
        p.unlink()
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(2)}, str(p))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_shape_mismatch_is_a_checkpoint_error(tmp_path):
    model, _, _ = small_state()
    p = save_checkpoint(tmp_path / "c.safetensors", model=model)
    groups, _ = load_checkpoint(p)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_module(torch.nn.Linear(3, 5), groups["model"], p)


def test_ema_follows_the_formula():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, step=1000)  # warm-up no longer binds: d = 0.9
    assert ema.model.weight.item() == pytest.approx(0.1)
    ema.update(model, step=1)  # warm-up: d = min(0.9, 2/11)
    assert ema.model.weight.item() == pytest.approx(0.1 * 2 / 11 + 9 / 11)
