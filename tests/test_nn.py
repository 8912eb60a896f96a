"""Tests of the denoising networks (difusion.nn): embeddings, U-Net and MLP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from difusion.nn import MLPDenoiser, UNet, num_parameters, timestep_embedding
from difusion.nn.layers import SelfAttention2d, group_norm, num_groups


def small_unet(**kwargs) -> UNet:
    options = dict(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, num_heads=2)
    options.update(kwargs)
    return UNet(**options)


def randomize_zero_init(model: nn.Module, std: float = 0.05) -> nn.Module:
    """Give the zero-initialised layers random weights, so every path of the network is live."""
    with torch.no_grad():
        for p in model.parameters():
            if torch.all(p == 0):
                p.normal_(0.0, std)
    return model


def sgd_steps(model: nn.Module, x, t, y=None, steps: int = 2, lr: float = 0.1) -> None:
    """A few SGD steps of the MSE to a random target."""
    target = torch.randn_like(x)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = (model(x, t, y) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


# ----------------------------------------------------------------------------- embeddings


def test_timestep_embedding_matches_closed_form():
    dim, half = 8, 4
    t = torch.tensor([0.0, 3.0, 250.5])
    emb = timestep_embedding(t, dim)
    assert emb.shape == (3, dim)
    for i, ti in enumerate(t.tolist()):
        for k in range(half):
            f_k = math.exp(-math.log(10000.0) * k / half)
            assert emb[i, k].item() == pytest.approx(math.cos(ti * f_k), abs=1e-5)
            assert emb[i, half + k].item() == pytest.approx(math.sin(ti * f_k), abs=1e-5)
    # t = 0 embeds as cos = 1, sin = 0
    assert torch.equal(emb[0], torch.tensor([1.0] * half + [0.0] * half))


def test_timestep_embedding_integer_t_odd_dim_and_distinct():
    t = torch.arange(0, 1000, 37)  # int64
    emb = timestep_embedding(t, 9)
    assert emb.shape == (len(t), 9) and emb.dtype == torch.float32
    assert torch.all(emb[:, -1] == 0)  # the padding column
    assert torch.allclose(emb, timestep_embedding(t.float(), 9))
    distances = torch.cdist(emb, emb) + torch.eye(len(t)) * 1e3
    assert distances.min() > 0.1  # every timestep gets its own embedding


def test_group_norm_groups():
    assert num_groups(64) == 32
    assert num_groups(48) == 24
    assert num_groups(20) == 20
    assert num_groups(7) == 7
    assert num_groups(66) == 22
    assert group_norm(96).num_groups == 32


# ----------------------------------------------------------------------------- U-Net


@pytest.mark.parametrize(
    ("channels", "size"), [(1, (28, 28)), (1, (8, 8)), (3, (32, 32)), (1, (20, 20)), (2, (7, 9))]
)
def test_unet_output_shape_and_zero_init(channels, size):
    model = small_unet(in_channels=channels)
    x = torch.randn(2, channels, *size)
    out = model(x, torch.tensor([0, 999]))
    assert out.shape == x.shape
    assert torch.all(out == 0)  # zero-initialised output conv: untrained model predicts 0


def test_unet_out_channels_and_scalar_t():
    model = small_unet(in_channels=3, out_channels=6)
    assert model(torch.randn(2, 3, 8, 8), torch.tensor(5)).shape == (2, 6, 8, 8)


def test_unet_training_steps_change_output_and_reach_first_conv():
    torch.manual_seed(0)
    model = small_unet()
    x, t = torch.randn(4, 1, 8, 8), torch.tensor([0, 10, 100, 500])
    before = model(x, t).detach()

    sgd_steps(model, x, t, steps=1)
    after_one = model(x, t).detach()
    assert not torch.allclose(after_one, before)
    # After one step the output conv is no longer zero, so gradients reach the first conv.
    model.zero_grad()
    model(x, t).pow(2).mean().backward()
    grad = model.conv_in.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().max() > 0


def test_unet_output_depends_on_t_and_y_after_training():
    # Every residual branch starts at zero, so the output only starts to depend on t and y
    # after the second step (the first only moves the output conv).
    torch.manual_seed(0)
    model = small_unet(num_classes=3)
    x = torch.randn(4, 1, 8, 8)
    sgd_steps(model, x, torch.tensor([0, 10, 100, 500]), torch.tensor([0, 1, 2, 0]), steps=2)
    same_x = x[:1].repeat(2, 1, 1, 1)
    with torch.no_grad():
        by_t = model(same_x, torch.tensor([1, 700]), torch.tensor([1, 1]))
        by_y = model(same_x, torch.tensor([5, 5]), torch.tensor([0, 3]))  # 3 = null class
        null = model(same_x, torch.tensor([5, 5]))  # y=None means the null class
    assert (by_t[0] - by_t[1]).abs().max() > 1e-4
    assert (by_y[0] - by_y[1]).abs().max() > 1e-4
    assert torch.allclose(null, by_y[1:].expand_as(null))


def test_unet_labels_without_num_classes_is_an_error():
    model = small_unet()
    with pytest.raises(ValueError, match="num_classes"):
        model(torch.randn(2, 1, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))


def test_unet_bad_attention_level_is_an_error():
    with pytest.raises(ValueError, match="attention level"):
        small_unet(attention_levels=(3,))


@pytest.mark.parametrize("use_scale_shift_norm", [True, False])
def test_unet_examples_are_independent_in_a_batch(use_scale_shift_norm):
    torch.manual_seed(0)
    model = small_unet(num_classes=2, use_scale_shift_norm=use_scale_shift_norm, dropout=0.5)
    randomize_zero_init(model).eval()
    x = torch.randn(4, 1, 12, 12)
    t, y = torch.tensor([3, 30, 300, 900]), torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        batch = model(x, t, y)
        alone = torch.cat([model(x[i : i + 1], t[i : i + 1], y[i : i + 1]) for i in range(4)])
    assert batch.abs().max() > 1e-3  # the test means something only if the output is not 0
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-4)


def test_unet_patch_size_is_space_to_depth_around_a_smaller_unet():
    # patch_size=2 must be exactly: fold 2x2 patches into 4 channels, run a U-Net on the 4-channel
    # half-size image, unfold. Same weights in a plain U-Net with 4x the channels checks it.
    torch.manual_seed(0)
    patched = randomize_zero_init(small_unet(in_channels=3, num_classes=2, patch_size=2)).eval()
    plain = small_unet(in_channels=12, num_classes=2).eval()
    plain.load_state_dict(patched.state_dict())
    x, t, y = torch.randn(2, 3, 12, 16), torch.tensor([4, 400]), torch.tensor([0, 1])
    with torch.no_grad():
        out = patched(x, t, y)
        # space-to-depth by hand: channel c*4 + 2*i + j holds pixel (2h + i, 2w + j) of channel c
        folded = x.reshape(2, 3, 6, 2, 8, 2).permute(0, 1, 3, 5, 2, 4).reshape(2, 12, 6, 8)
        inner = plain(folded, t, y)
        unfolded = inner.reshape(2, 3, 2, 2, 6, 8).permute(0, 1, 4, 2, 5, 3).reshape(2, 3, 12, 16)
    assert out.shape == x.shape and out.abs().max() > 1e-3
    torch.testing.assert_close(out, unfolded)


def test_unet_patch_size_that_does_not_divide_the_image_is_an_error():
    with pytest.raises(ValueError, match="patch_size"):
        small_unet(patch_size=2)(torch.randn(1, 1, 7, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="patch_size"):
        small_unet(patch_size=0)


def test_small_unet_parameter_count():
    model = UNet(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2)
    assert num_parameters(model) < 3_000_000


def test_ddpm_cifar10_parameter_count():
    # DDPM App. B: ch=128, ch_mult=(1, 2, 2, 2), 2 res blocks, attention at 16x16: 35.7M.
    model = UNet(
        in_channels=3,
        base_channels=128,
        channel_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_levels=(1,),
        dropout=0.1,
        use_scale_shift_norm=False,
    )
    assert num_parameters(model) == pytest.approx(35.7e6, rel=0.05)


def test_attention_is_permutation_equivariant():
    torch.manual_seed(0)
    attention = randomize_zero_init(SelfAttention2d(8, num_heads=2))
    x = torch.randn(2, 8, 4, 5)
    perm = torch.randperm(20)

    def permute(z):
        return z.flatten(2)[:, :, perm].reshape(z.shape)

    with torch.no_grad():
        torch.testing.assert_close(attention.attend(permute(x)), permute(attention.attend(x)))
        torch.testing.assert_close(attention(permute(x)), permute(attention(x)))
        assert not torch.allclose(attention(x), x)  # the attention branch is not a no-op


# ----------------------------------------------------------------------------- MLP


def test_mlp_shapes_and_zero_init():
    model = MLPDenoiser(dim=3, hidden=32, depth=2)
    out = model(torch.randn(5, 3), torch.arange(5))
    assert out.shape == (5, 3) and torch.all(out == 0)


def test_mlp_learns_a_trivial_regression():
    torch.manual_seed(0)
    model = MLPDenoiser(dim=2, hidden=64, depth=2, num_classes=2)
    x = torch.randn(256, 2)
    t = torch.randint(0, 1000, (256,))
    y = torch.randint(0, 3, (256,))  # includes the null class 2
    target = torch.stack([x[:, 1], -x[:, 0]], dim=1) * (1 - t[:, None] / 1000)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(300):
        loss = (model(x, t, y) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10


def test_mlp_labels_without_num_classes_is_an_error():
    model = MLPDenoiser(hidden=16, depth=1)
    with pytest.raises(ValueError, match="num_classes"):
        model(torch.randn(2, 2), torch.tensor([1, 2]), torch.tensor([0, 1]))
