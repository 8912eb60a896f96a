"""The functions behind the explorer's tabs for the other families on 2-D points: a normalizing
flow's change of variables (RealNVP, Dinh et al. 2017) and an energy-based model's Langevin chains
(an energy by SGLD, Welling & Teh 2011; a noise-conditional score by annealed Langevin, Song & Ermon
2019).

As in :mod:`difusion.app.explorer`, each takes plain values (a run name, a layer, a step count, a
seed) and returns uint8 pictures (H, W, 3) with the arrays they were drawn from, so the tests can
check the numbers without a browser; runs are opened only through the page's
:class:`~difusion.app.explorer.RunRegistry`, and a bad input is a one-line
:class:`~difusion.errors.DifusionError`. The families' packages are imported only when a tab draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from difusion.app.explorer import RunRegistry, _check_float, _check_int
from difusion.errors import DifusionError

MAX_CHAINS = 2000  # Langevin chains (and flow samples) per request
MAX_LANGEVIN_STEPS = 5000  # SGLD steps of an energy's chains per request
HEAT = 120  # heat maps: points a side
ARROWS = 21  # score arrows a side (every HEAT-th / ARROWS-th point of the energy's grid)

NO_NFLOW = (
    "No normalizing-flow run given. Start the explorer with one, e.g. `difusion explore "
    "runs/realnvp-toy2d` (a run of `difusion train realnvp-toy2d`, whose config.yaml says "
    "`objective: nflow`), to see its change of variables here."
)
NO_EBM = (
    "No energy-based run given. Start the explorer with one, e.g. `difusion explore "
    "runs/ebm-toy2d runs/dsm-toy2d` (runs of `difusion train ebm-toy2d` or `dsm-toy2d`, whose "
    "config.yaml says `objective: ebm`), to see its energy or score and its Langevin chains here."
)


def _status(registry: RunRegistry, objective: str, none: str, what: str) -> str:
    runs = registry.names(objective)
    return none if not runs else f"{what} run(s) given: {', '.join(runs)}. Pick one and press Show."


def nflow_status(registry: RunRegistry) -> str:
    """What the normalizing-flow tab can show: the nflow runs given, or how to give one."""
    return _status(registry, "nflow", NO_NFLOW, "Normalizing-flow")


def ebm_status(registry: RunRegistry) -> str:
    """What the Langevin tab can show: the ebm runs given, or how to give one."""
    return _status(registry, "ebm", NO_EBM, "Energy-based")


def _data(cfg, n: int = 2000) -> torch.Tensor:
    """``n`` rows of the run's 2-D training points, drawn under its pictures: random rows (a
    fixed draw, seed 0), not the first n, since a 2-D set may be ordered (the moons: the outer half
    moon first)."""
    from difusion.build import build_dataset

    data = build_dataset(cfg).data.float()
    return data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:n]]


def _span(data: torch.Tensor) -> float:
    """Half the side of the square the pictures show: the data's largest coordinate, plus 30%
    (as the lab's scatter plots and density pictures frame them)."""
    return float(data.abs().max()) * 1.3


def _square(lim: float, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The axis (side,) over [-lim, lim] and the grid's points (side * side, 2), row by row: point
    i * side + j is (axis[j], axis[i]), so ``values.reshape(side, side)`` is an image with y up
    when drawn with origin='lower'."""
    axis = torch.linspace(-lim, lim, side)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    return axis, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


def _figure_rgb(fig) -> np.ndarray:
    import matplotlib.pyplot as plt

    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def _pyplot():
    """pyplot, on the Agg backend that ``difusion.viz.plots`` (imported by the explorer) chose."""
    import matplotlib.pyplot as plt

    return plt


# -- tab 6: a normalizing flow's change of variables --------------------------------------------------


def load_flow_2d(registry: RunRegistry, name: str | None) -> torch.nn.Module:
    """The allowed nflow run ``name`` (EMA weights) if it is RealNVP on 2-D points; else a one-line
    message saying what it is."""
    from difusion.nflows.run import load_nflow

    flow = registry.load_module(name, "nflow", load_nflow)
    kind, shape = flow.config.nflow.kind, tuple(flow.shape)
    if kind != "realnvp" or shape != (2,):
        raise DifusionError(
            f"{name} is {kind} on data of shape {'x'.join(map(str, shape))}: this tab draws RealNVP "
            "on 2-D points (e.g. `difusion train realnvp-toy2d`); `difusion sample` draws the rest"
        )
    return flow


@torch.no_grad()
def through_couplings(flow, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """h_k = f_k(...f_1(x)), the points after the first ``k`` couplings, and log |det dh_k/dx|, the
    sum of those layers' log |det J_l| (Dinh et al. eq. 3, over the first k layers)."""
    h = x.reshape(len(x), -1)
    log_det = torch.zeros(len(x))
    for layer in flow.couplings[:k]:
        h, ld = layer(h)
        log_det = log_det + ld
    return h, log_det


@torch.no_grad()
def log_density_after(flow, h: torch.Tensor, k: int) -> torch.Tensor:
    """log p(h) of the variable h_k after the first ``k`` couplings, by the change of variables
    through the remaining ones: log N(f_L(...f_{k+1}(h)); 0, I) + sum_{l > k} log |det J_l|. At
    k = 0 it is the flow's log p(x); at k = L, log N(h; 0, I)."""
    from difusion.diffusion.likelihood_ode import standard_normal_log_prob

    z = h.reshape(len(h), -1)
    log_det = torch.zeros(len(h))
    for layer in flow.couplings[k:]:
        z, ld = layer(z)
        log_det = log_det + ld
    return standard_normal_log_prob(z) + log_det


@dataclass
class Plane:
    """One panel of the change of variables: the plane after ``k`` couplings, with the density of
    the variable there (log, on ``axis`` x ``axis``), the grid lines and the data carried into it."""

    k: int
    lim: float
    axis: torch.Tensor  # (HEAT,): the heat map's coordinates along x and y
    log_density: torch.Tensor  # (HEAT, HEAT), row i at y = axis[i]
    lines: torch.Tensor  # (lines, points, 2): the x-space grid lines carried to this plane
    data: torch.Tensor  # (N, 2): the data carried to this plane

    @property
    def mass(self) -> float:
        """The density summed over the picture times a cell's area: near 1 when the picture holds
        almost all of the probability."""
        cell = float(self.axis[1] - self.axis[0]) ** 2
        return float(self.log_density.exp().sum()) * cell


@dataclass
class FlowView:
    """Everything the normalizing-flow tab shows for one layer ``k`` (and one point)."""

    change: np.ndarray  # x | after k couplings | z = f(x), each over its density
    density: np.ndarray  # p(x) as a heat map with samples x = f^-1(z)
    planes: list[Plane]  # [k = 0 (x), k, k = L (z)]
    samples: torch.Tensor  # (n, 2): f^-1(z) for z ~ N(0, I), sample i from seed + i
    point: dict | None  # x, z = f(x), log N(z), log |det J_l| per layer and their sum, log p(x)
    density_box: tuple[float, float, float, float]  # the heat map's axes in the picture's pixels
    summary: str
    layers: int = 0


def _grid_lines(lim: float, count: int = 11, points: int = 160) -> torch.Tensor:
    """``count`` vertical then ``count`` horizontal lines over [-0.9 lim, 0.9 lim], as points."""
    ticks = torch.linspace(-0.9 * lim, 0.9 * lim, count)
    along = torch.linspace(-lim, lim, points)
    vertical = [torch.stack([torch.full_like(along, float(c)), along], 1) for c in ticks]
    horizontal = [torch.stack([along, torch.full_like(along, float(c))], 1) for c in ticks]
    return torch.stack(vertical + horizontal)


def flow_plane(flow, k: int, lines: torch.Tensor, data: torch.Tensor, lim: float | None = None):
    """The plane after the first ``k`` couplings: the grid lines and the data carried there, and
    the density of h_k on a square that holds the carried data (``lim``: its half side; default
    from the data there, at least 3.5 so that N(0, I) fits)."""
    h_lines = through_couplings(flow, lines.reshape(-1, 2), k)[0].reshape(lines.shape)
    h_data = through_couplings(flow, data, k)[0]
    if lim is None:
        far = torch.quantile(h_data.abs().max(1).values, 0.99)
        lim = max(3.5, 1.2 * float(far))
    axis, grid = _square(lim, HEAT)
    log_density = log_density_after(flow, grid, k).reshape(HEAT, HEAT)
    return Plane(k, lim, axis, log_density, h_lines, h_data)


def _draw_plane(ax, plane: Plane, title: str) -> None:
    lim = plane.lim
    ax.imshow(
        plane.log_density.exp().numpy(), extent=(-lim, lim, -lim, lim), origin="lower",
        cmap="magma", interpolation="bilinear",
    )  # fmt: skip
    half = len(plane.lines) // 2
    for i, line in enumerate(plane.lines.numpy()):  # vertical lines cyan, horizontal ones lime
        ax.plot(line[:, 0], line[:, 1], lw=0.7, alpha=0.85, c="c" if i < half else "lime")
    d = plane.data.numpy()
    ax.scatter(d[:, 0], d[:, 1], s=1, c="w", alpha=0.5, linewidths=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=10)


def parse_point(text) -> tuple[float, float] | None:
    """A point typed as 'x, y' (empty: none)."""
    if text is None or not str(text).strip():
        return None
    parts = [p for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p]
    if len(parts) != 2:
        raise DifusionError(f"give a point as two numbers, x, y (e.g. 0.5, -0.25); got {text!r}")
    return (
        _check_float("point x", parts[0], -1e3, 1e3),
        _check_float("point y", parts[1], -1e3, 1e3),
    )


@torch.no_grad()
def point_log_prob(flow, point: tuple[float, float]) -> dict:
    """log p(x) at one point by the change of variables (Dinh et al. eq. 3), term by term:
    z = f(x), log N(z; 0, I), log |det J_l| of each coupling and their sum."""
    from difusion.diffusion.likelihood_ode import standard_normal_log_prob

    x = torch.tensor([point], dtype=torch.float32)
    h, per_layer = x, []
    for layer in flow.couplings:
        h, ld = layer(h)
        per_layer.append(float(ld[0]))
    log_normal = float(standard_normal_log_prob(h)[0])
    log_det = float(sum(per_layer))
    return {
        "x": tuple(float(v) for v in x[0]),
        "z": tuple(float(v) for v in h[0]),
        "log_normal": log_normal,
        "log_det_layers": per_layer,
        "log_det": log_det,
        "log_p": log_normal + log_det,
    }


def pixel_to_point(box: tuple[float, float, float, float], lim: float, px, py):
    """The point (x, y) under pixel (px, py) of the density picture, whose heat map fills ``box``
    (left, top, right, bottom in pixels) and shows [-lim, lim]^2; None off the heat map."""
    left, top, right, bottom = box
    if not (left <= px <= right and top <= py <= bottom):
        return None
    x = -lim + 2 * lim * (px - left) / (right - left)
    y = lim - 2 * lim * (py - top) / (bottom - top)  # pixel rows grow downwards
    return (round(x, 3), round(y, 3))


def flow_view(
    registry: RunRegistry, name: str | None, *, k=1, point=None, n=500, seed=0
) -> FlowView:
    """The change of variables of a RealNVP run on 2-D points: a grid of lines and the data in
    x-space, the same carried through the first ``k`` couplings (with the density of the variable
    there) and through all L (z = f(x), over N(0, I)); the learned p(x) = N(f(x)) |det df/dx| as a
    heat map with ``n`` samples x = f^-1(z); and log p at ``point`` as log N(z) + log |det|."""
    flow = load_flow_2d(registry, name)
    layers = len(flow.couplings)
    k = _check_int("couplings", k, 0, layers)
    n = _check_int("samples", n, 1, MAX_CHAINS)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    point = parse_point(point) if not isinstance(point, tuple | list) else tuple(point)
    data = _data(flow.config)
    lim = _span(data)
    lines, shown = _grid_lines(lim), data[:500]
    planes = [
        flow_plane(flow, 0, lines, shown, lim),
        flow_plane(flow, k, lines, shown),
        flow_plane(flow, layers, lines, shown),
    ]
    samples = flow.sample(n, seed=seed)
    probe = point_log_prob(flow, point) if point is not None else None

    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), dpi=80)
    titles = ("x: the data, a grid, p(x)", f"after {k} of {layers} couplings", "z = f(x), N(0, I)")
    for ax, plane, title in zip(axes, planes, titles, strict=True):
        _draw_plane(ax, plane, title)
    if probe is not None:
        for ax, where in zip(axes[[0, 2]], (probe["x"], probe["z"]), strict=True):
            ax.plot(*where, "x", c="red", ms=9, mew=2)
    fig.tight_layout()
    change = _figure_rgb(fig)

    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    density = planes[0].log_density.exp().numpy()
    image = ax.imshow(density, extent=(-lim, lim, -lim, lim), origin="lower", cmap="magma")
    s = samples.numpy()
    ax.scatter(s[:, 0], s[:, 1], s=2, c="tab:cyan", alpha=0.7, linewidths=0)
    if probe is not None:
        ax.plot(*probe["x"], "x", c="red", ms=9, mew=2)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_title(f"p(x), {n} samples f^-1(z) (seed {seed})", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.canvas.draw()
    height = fig.canvas.get_width_height()[1]
    bb = ax.get_window_extent()  # display pixels, y up: the picture's rows run down
    box = (bb.x0, height - bb.y1, bb.x1, height - bb.y0)
    density_picture = _figure_rgb(fig)

    cfg = flow.config
    kept = "x" if float(flow.couplings[0].mask[0]) == 1 else "y"
    moved = {"x": "y", "y": "x"}[kept]
    summary = (
        f"RealNVP, {layers} affine couplings ({cfg.nflow.mask} masks, hidden {cfg.nflow.hidden}) "
        f"on toy2d {cfg.data.distribution}, step {flow.step}. Each coupling keeps one coordinate "
        f"and moves the other: the 1st, 3rd, ... move {moved} given {kept}, the others {kept} given "
        f"{moved}. p(x) summed over the picture: {planes[0].mass:.3f}."
    )
    if probe is not None:
        dets = ", ".join(f"{v:+.3f}" for v in probe["log_det_layers"])
        summary += (
            f"\n\nAt x = ({probe['x'][0]:.3f}, {probe['x'][1]:.3f}): z = f(x) = "
            f"({probe['z'][0]:.3f}, {probe['z'][1]:.3f}); log p(x) = log N(z; 0, I) + "
            f"log |det df/dx| = {probe['log_normal']:.3f} + {probe['log_det']:.3f} = "
            f"**{probe['log_p']:.3f}** nats (log |det J_l| per coupling: {dets})"
        )
    return FlowView(change, density_picture, planes, samples, probe, box, summary, layers)


# -- tab 7: an energy-based model's Langevin chains ---------------------------------------------------


def load_ebm_2d(registry: RunRegistry, name: str | None) -> torch.nn.Module:
    """The allowed ebm run ``name`` (EMA weights) if it models 2-D points; else a one-line message."""
    from difusion.ebm.run import load_ebm

    model = registry.load_module(name, "ebm", load_ebm)
    shape = tuple(model.shape)
    if shape != (2,):
        raise DifusionError(
            f"{name} is an ebm run on data of shape {'x'.join(map(str, shape))}: this tab draws "
            "2-D points (e.g. `difusion train ebm-toy2d`); `difusion sample` draws the rest"
        )
    return model


def langevin_range(registry: RunRegistry, name: str | None) -> tuple[str, int, int]:
    """What the Langevin slider counts for the run ``name``, its end and its default: SGLD steps
    (cd; default the run's ``ebm.sample_steps``) or noise levels done (dsm; 0..L)."""
    e = load_ebm_2d(registry, name).config.ebm
    if e.kind == "cd":
        return "SGLD steps", MAX_LANGEVIN_STEPS, e.sample_steps
    return "noise levels done", e.levels, e.levels


@dataclass
class LangevinView:
    """Everything the Langevin tab shows: the field the chains follow and where they are."""

    kind: str  # cd or dsm
    field_picture: np.ndarray  # cd: E(x) and exp(-E) / Z with the score arrows; dsm: s(x, sigma)
    chains_picture: np.ndarray  # the chains at the slider's position, over the data
    strip: np.ndarray  # the chains at 8 moments from the noise to the end
    frames: list[np.ndarray]  # every recorded moment, for the animation
    x: torch.Tensor  # (n, 2): the chains at the slider's position
    trace: list[torch.Tensor]  # the chains at each recorded moment (``positions``)
    positions: list[int]  # SGLD steps done (cd) or noise levels done (dsm) at each moment
    mean_distance: list[float]  # mean distance from the chains to their nearest data point
    arrow_points: torch.Tensor  # (ARROWS^2, 2)
    score: torch.Tensor  # (ARROWS^2, 2): the arrows, grad log p (cd: -grad E; dsm: s(x, sigma))
    axis: torch.Tensor  # (HEAT,): the energy's grid (cd)
    energy: torch.Tensor | None  # (HEAT, HEAT), row i at y = axis[i] (cd); None (dsm)
    sigma: float | None  # the noise level of the drawn score (dsm)
    denoised: torch.Tensor | None  # dsm: the Tweedie step after the last level (the samples)
    summary: str
    extra: dict = field(default_factory=dict)


def mean_distance(x: torch.Tensor, data: torch.Tensor) -> float:
    """The mean over the points of ``x`` of the distance to the nearest point of ``data``."""
    return float(torch.cdist(x, data).min(dim=1).values.mean())


def _energy_field(model, lim: float):
    """E(x) on a HEAT x HEAT grid and -grad E at every (HEAT // ARROWS)-th point of it."""
    from difusion.ebm.energy import energy_score

    axis, grid = _square(lim, HEAT)
    with torch.no_grad():
        energy = model(grid).reshape(HEAT, HEAT)
    step = (HEAT - 1) / (ARROWS - 1)
    picks = torch.tensor([round(i * step) for i in range(ARROWS)])
    points = torch.stack(torch.meshgrid(axis[picks], axis[picks], indexing="xy"), -1).reshape(-1, 2)
    return axis, energy, points, energy_score(model)(points).detach()


def _score_field(model, lim: float, sigma: float):
    """s(x, sigma) on an ARROWS x ARROWS grid."""
    axis = torch.linspace(-lim, lim, ARROWS)
    points = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        score = model(points, torch.full((len(points),), sigma))
    return points, score


def _arrows(ax, points: torch.Tensor, score: torch.Tensor, colour_by=None) -> None:
    """Unit arrows along the score, coloured by its size (length ~ log(1 + |s|))."""
    size = score.norm(dim=1, keepdim=True).clamp_min(1e-12)
    shown = score / size * torch.log1p(size)
    p, u = points.numpy(), shown.numpy()
    c = (colour_by if colour_by is not None else size[:, 0]).numpy()
    ax.quiver(p[:, 0], p[:, 1], u[:, 0], u[:, 1], c, cmap="plasma", angles="xy", width=0.004)


def langevin_view(
    registry: RunRegistry, name: str | None, *, k=None, n=500, seed=0, frames=16
) -> LangevinView:
    """Langevin chains of an ebm run on 2-D points, started as ``difusion sample`` starts them
    (``difusion.ebm.scoring.draw``: one generator seeded with ``seed``; cd from uniform noise on
    [-r, r]^2, dsm from N(0, sigma_1^2 I)). cd: ``k`` SGLD steps x <- x + (eps/2)(-grad E(x)) +
    sqrt(eps) z (Welling & Teh eq. 4) of the run's step size; the picture is E(x), the density
    exp(-E(x)) / Z with Z summed over the picture, and the score -grad E. dsm: annealed Langevin
    over the run's whole ladder (Song & Ermon Algorithm 1), the chains shown after ``k`` of its L
    levels over the score s(x, sigma) they follow there; the samples are the Tweedie step after
    the last level. ``k`` None: the run's own (cd: ``ebm.sample_steps``; dsm: L)."""
    from difusion.ebm.langevin import annealed_langevin, sgld
    from difusion.ebm.models import sigmas_of
    from difusion.ebm.score import level_score, tweedie_denoise
    from difusion.ebm.scoring import start_noise
    from difusion.viz.plots import points_frame

    model = load_ebm_2d(registry, name)
    cfg = model.config
    e = cfg.ebm
    n = _check_int("chains", n, 1, MAX_CHAINS)
    seed = _check_int("seed", seed, 0, 2**31 - 1)
    frames = _check_int("frames", frames, 1, 64)
    data = _data(cfg)
    lim = _span(data)
    g = torch.Generator().manual_seed(seed)
    x0 = start_noise(cfg, n, 2, g)
    plt = _pyplot()
    denoised = energy = sigma = None
    axis = torch.linspace(-lim, lim, HEAT)
    if e.kind == "cd":
        from difusion.ebm.energy import energy_score

        k = e.sample_steps if k is None else _check_int("SGLD steps", k, 0, MAX_LANGEVIN_STEPS)
        positions = sorted(set(np.linspace(0, k, frames + 1).round().astype(int).tolist()))
        score_fn, trace, x, done = energy_score(model), [x0], x0, 0
        for stop in positions[1:]:  # one generator throughout: the same chains as one sgld call
            x = sgld(score_fn, x, e.step_size, stop - done, g)
            trace.append(x.detach())
            done = stop
        shown = trace[-1]
        axis, energy, points, score = _energy_field(model, lim)
        density = torch.softmax(-energy.reshape(-1), 0).reshape(HEAT, HEAT)  # exp(-E) / Z
        fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.4), dpi=80)
        extent = (-lim, lim, -lim, lim)
        low, high = float(energy.min()), float(energy.median())  # above: the reference's bowl
        image = axes[0].imshow(
            energy.numpy(), extent=extent, origin="lower", cmap="viridis", vmin=low, vmax=high
        )
        fig.colorbar(image, ax=axes[0], fraction=0.046, pad=0.04)
        _arrows(axes[0], points, score)
        axes[0].set_title("E(x) (up to its median) and the score -grad E(x)", fontsize=10)
        cell = float(axis[1] - axis[0]) ** 2
        axes[1].imshow((density / cell).numpy(), extent=extent, origin="lower", cmap="magma")
        d = data.numpy()
        axes[1].scatter(d[:, 0], d[:, 1], s=1, c="w", alpha=0.3, linewidths=0)
        axes[1].set_title("p(x) = exp(-E(x)) / Z, Z a sum over the grid", fontsize=10)
        label = lambda p: f"{p} SGLD steps"  # noqa: E731
        what = (
            f"energy (contrastive divergence), step {model.step}: {k} SGLD steps of size "
            f"{e.step_size:g} from uniform noise on [-{e.noise_range:g}, {e.noise_range:g}]^2"
        )
    else:
        sigmas = sigmas_of(cfg)
        levels = len(sigmas)
        k = levels if k is None else _check_int("noise levels done", k, 0, levels)
        level_fn, ends = level_score(model, sigmas), []
        last = annealed_langevin(level_fn, x0, sigmas, e.sample_eps, e.sample_steps, g, ends)
        denoised = tweedie_denoise(level_fn(last, levels - 1), last, float(sigmas[-1]))
        trace, positions = [x0, *ends], list(range(levels + 1))
        shown = trace[k]
        sigma = float(sigmas[min(k, levels - 1)])  # the level the chains follow next (or last)
        points, score = _score_field(model, lim, sigma)
        fig, ax = plt.subplots(figsize=(5, 4.6), dpi=80)
        d = data.numpy()
        ax.scatter(d[:, 0], d[:, 1], s=1, c="0.75", linewidths=0)
        _arrows(ax, points, score, colour_by=score.norm(dim=1) * sigma)
        ax.set_title(f"score s(x, sigma = {sigma:.3g}), colour sigma |s|", fontsize=10)
        axes = [ax]
        label = lambda p: f"{p} of {levels} levels"  # noqa: E731
        what = (
            f"noise-conditional score (denoising score matching), step {model.step}: annealed "
            f"Langevin over {levels} levels sigma = {float(sigmas[0]):g} .. {float(sigmas[-1]):g}, "
            f"{e.sample_steps} steps each (eps {e.sample_eps:g}), then one Tweedie step"
        )
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.tight_layout()
    field_picture = _figure_rgb(fig)

    at = positions.index(k) if k in positions else len(positions) - 1
    x = trace[at] if e.kind == "dsm" else shown
    distances = [mean_distance(t, data) for t in trace]
    pictures = [points_frame(t, data, lim, label(p)) for t, p in zip(trace, positions, strict=True)]
    if denoised is not None:
        pictures.append(points_frame(denoised, data, lim, "after the Tweedie step"))
    picks = np.linspace(0, len(pictures) - 1, min(8, len(pictures))).round().astype(int)
    chains_picture = points_frame(x, data, lim, f"{n} chains after {label(positions[at])}")
    summary = (
        f"{what}. Mean distance from a chain to its nearest data point: "
        f"{distances[0]:.3f} at the start, {distances[at]:.3f} after {label(positions[at])}"
    )
    if denoised is not None:
        summary += f", {mean_distance(denoised, data):.3f} after the Tweedie step"
    return LangevinView(
        kind=e.kind,
        field_picture=field_picture,
        chains_picture=chains_picture,
        strip=np.concatenate([pictures[i] for i in picks], axis=1),
        frames=pictures,
        x=x,
        trace=trace,
        positions=positions,
        mean_distance=distances,
        arrow_points=points,
        score=score,
        axis=axis,
        energy=energy,
        sigma=sigma,
        denoised=denoised,
        summary=summary + ".",
    )


__all__ = [
    "MAX_CHAINS",
    "MAX_LANGEVIN_STEPS",
    "NO_EBM",
    "NO_NFLOW",
    "FlowView",
    "LangevinView",
    "Plane",
    "ebm_status",
    "flow_plane",
    "flow_view",
    "langevin_range",
    "langevin_view",
    "load_ebm_2d",
    "load_flow_2d",
    "log_density_after",
    "mean_distance",
    "nflow_status",
    "parse_point",
    "pixel_to_point",
    "point_log_prob",
    "through_couplings",
]
