"""The explorer's page: the functions of ``difusion.app.explorer`` laid out as Gradio tabs.

Served on 127.0.0.1 by default, analytics off, no share link, nothing fetched from the internet
(system fonts instead of the theme's web fonts). Every handler turns a mistake into a message on
the page (the ``*-message`` boxes), never a crash.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from difusion.app import explorer as ex  # noqa: E402
from difusion.app import families as fam  # noqa: E402
from difusion.data.toy2d import DISTRIBUTIONS  # noqa: E402
from difusion.errors import DifusionError  # noqa: E402

DEFAULT_SAMPLER = "dpmpp-2m"
INTRO = """# difusion explorer
Watch diffusion happen. **Forward process**: x_t = alpha_t x_0 + sigma_t eps on a run's own path or a
DDPM schedule (Ho et al. eq. 4: alpha_t = sqrt(alpha_bar_t); the rectified flow: x_t = (1 - t) x_0 +
t eps). **Reverse process**: a trained network (diffusion or flow matching) walks noise back to
data. **Compare**: two samplers on the same noise, and a classifier-free guidance sweep.
**Segmentation (U-Net)**: a segmentation run's probability map, the border weight map, the instances
and the overlap tiles of one image. **Normalizing flow**: a RealNVP run's change of variables on 2-D
points, coupling by coupling. **Langevin (EBM)**: an energy or a score and the Langevin chains that
follow it from noise. Inputs are bounded (steps <= {max_steps}, samples <= {max_n});
only the runs this explorer was started with can be opened."""


def _message(e: Exception) -> str:
    """A mistake as the one line the page shows (a bug, too, rather than a dead page)."""
    if isinstance(e, DifusionError):
        return f"**Error:** {e}"
    return f"**Error:** {type(e).__name__}: {e}"


def _available_datasets() -> list[str]:
    from difusion.data import DATASETS

    # digits ship with scikit-learn (a dependency) and toy2d is generated: only Fashion-MNIST may
    # be missing (asking scikit-learn where its digits are would import it: a second of start-up)
    fashion = ["fashion-mnist"] if DATASETS["fashion-mnist"].available() else []
    return [*fashion, "digits", "toy2d", "uploaded image"]


def build_app(registry: ex.RunRegistry) -> gr.Blocks:
    """The Blocks of the seven tabs, reading runs only through ``registry``."""
    runs = registry.names(ex.GENERATIVE)
    with gr.Blocks(title="difusion explorer") as demo:
        gr.Markdown(INTRO.format(max_steps=ex.LIMITS.max_steps, max_n=ex.LIMITS.max_n))
        with gr.Tabs():
            with gr.Tab("Forward process", id="forward"):
                path_menu = _forward_tab(demo, registry, _available_datasets(), runs)
            with gr.Tab("Reverse process", id="reverse"):
                reverse_run = _reverse_tab(demo, registry, runs)
            with gr.Tab("Compare", id="compare"):
                compare_run = _compare_tab(registry, runs)
            with gr.Tab("Latent space", id="latent"):
                _latent_tab(demo, registry)
            with gr.Tab("Segmentation (U-Net)", id="segmentation"):
                _segmentation_tab(demo, registry)
            with gr.Tab("Normalizing flow", id="nflow"):
                _nflow_tab(demo, registry)
            with gr.Tab("Langevin (EBM)", id="langevin"):
                _langevin_tab(demo, registry)
        _toy_trainer(registry, [reverse_run, compare_run], path_menu)
    return demo


def _forward_tab(
    demo: gr.Blocks, registry: ex.RunRegistry, datasets: list[str], runs: list[str]
) -> gr.Dropdown:
    choices = [*runs, ex.SCHEDULE_CHOICE]
    with gr.Row():
        with gr.Column(scale=1):
            path_menu = gr.Dropdown(
                choices,
                value=choices[0],
                label="the forward process of (a run's own path, or a schedule)",
                elem_id="fwd-path",
            )
            source = gr.Dropdown(
                datasets, value=datasets[0], label="x_0 from", elem_id="fwd-source"
            )
            index = gr.Number(0, label="image index (test split)", precision=0, elem_id="fwd-index")
            upload = gr.Image(
                label="or upload an image", type="numpy", sources=["upload"], height=160
            )
            schedule = gr.Radio(
                list(ex.SCHEDULES),
                value="linear",
                label="DDPM schedule (picking one shows it instead of the run's path)",
                elem_id="fwd-schedule",
            )
            T = gr.Number(1000, label=f"T (2..{ex.LIMITS.max_T})", precision=0, elem_id="fwd-T")
            seed = gr.Number(0, label="noise seed", precision=0, elem_id="fwd-seed")
        with gr.Column(scale=2):
            t = gr.Slider(0, 1000, value=250, step=1, label="t", elem_id="fwd-t")
            with gr.Row():
                x_t = gr.Image(label="x_t", type="numpy", elem_id="fwd-image", height=260)
                level = gr.Markdown(elem_id="fwd-level")
            strip = gr.Image(label="x_t at 8 times from 0 to t_max, same eps", elem_id="fwd-strip")
    curves = gr.Image(label="this path (black) and the DDPM schedules", elem_id="fwd-curves")
    message = gr.Markdown(elem_id="fwd-message")

    def show(choice, source, index, upload, schedule, T, t, seed):
        try:
            data = None
            if source == "uploaded image":
                if upload is None:
                    raise DifusionError("upload an image first, or pick a dataset")
                x0 = ex.image_from_upload(upload)
            else:
                x0 = ex.dataset_example(source, index)
                data = x0 if source == "toy2d" else None
            path, label = ex.forward_path(registry, choice, schedule, T)
            view = ex.forward_view(x0, path, t, seed, data, label=label)
        except Exception as e:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), _message(e)
        lv = view.level
        end = f"T = {path.T}" if path.discrete else f"t_max = {path.t_max:g}"
        what = f"the {label} DDPM schedule" if label in ex.SCHEDULES else f"the path of {label}"
        text = (
            f"**t = {lv['t']:g}** of {end} ({what})\n\n"
            f"{path.describe()}; on every path x_t = alpha_t x_0 + sigma_t eps\n\n"
            f"alpha_t = {lv['alpha']:.4f} (alpha_t^2 = {lv['alpha_bar']:.4f}, DDPM's alpha_bar_t)"
            f"\n\nsigma_t = {lv['sigma']:.4f}\n\n"
            f"SNR_t = alpha_t^2 / sigma_t^2 = {lv['snr']:.4g}\n\n"
            f"noise fraction sigma_t / (alpha_t + sigma_t) = {lv['tau']:.4f}"
        )
        return view.x_t, text, view.strip, view.curves, ""

    def repath(choice, schedule, T, t, keep=False):
        """The t slider over the chosen path's times, 0..T in whole steps (DDPM) or [0, t_max]
        finely (a flow): at t_max / 4, or t kept (within the span) when ``keep``."""
        try:
            path, _ = ex.forward_path(registry, choice, schedule, T)
        except Exception as e:
            return gr.skip(), _message(e)
        value = min(max(float(t), 0.0), path.t_max) if keep else path.t_max / 4
        if path.discrete:
            return gr.Slider(minimum=0, maximum=path.T, step=1, value=round(value)), ""
        return gr.Slider(minimum=0, maximum=path.t_max, step=path.t_max / 1000, value=value), ""

    inputs = [path_menu, source, index, upload, schedule, T, t, seed]
    outputs = [x_t, level, strip, curves, message]
    for component in (source, index, seed, upload):
        component.change(show, inputs, outputs, trigger_mode="always_last")
    t.change(show, inputs, outputs, trigger_mode="always_last", show_progress="hidden")
    path_menu.input(repath, [path_menu, schedule, T, t], [t, message]).then(show, inputs, outputs)
    for event in (schedule.input, T.submit):  # a schedule or a T: show the schedule, keep t
        event(lambda: gr.Dropdown(value=ex.SCHEDULE_CHOICE), None, path_menu).then(
            lambda c, s, T, t: repath(c, s, T, t, keep=True),
            [path_menu, schedule, T, t],
            [t, message],
        ).then(show, inputs, outputs)
    # the slider's range is the chosen path's (0..T or [0, 1]): set on load, then draw
    demo.load(repath, [path_menu, schedule, T, t], [t, message]).then(show, inputs, outputs)
    return path_menu


def _sampling_controls(prefix: str, runs: list[str]) -> dict:
    run = gr.Dropdown(
        runs,
        value=runs[0] if runs else None,
        label="run (only those the explorer was started with)",
        allow_custom_value=True,
        elem_id=f"{prefix}-run",
    )
    with gr.Row():
        seed = gr.Number(
            0, label="seed (sample i: seed + i)", precision=0, elem_id=f"{prefix}-seed"
        )
        n = gr.Number(
            16, label=f"samples (1..{ex.LIMITS.max_n})", precision=0, elem_id=f"{prefix}-n"
        )
        class_id = gr.Number(
            -1, label="class (-1: one per row, or each in turn)", precision=0,
            elem_id=f"{prefix}-class",
        )  # fmt: skip
    return {"run": run, "seed": seed, "n": n, "class": class_id}


def _reverse_tab(demo: gr.Blocks, registry: ex.RunRegistry, runs: list[str]) -> gr.Dropdown:
    with gr.Row():
        with gr.Column(scale=1):
            c = _sampling_controls("rev", runs)
            about = gr.Markdown(elem_id="rev-about")
            sampler = gr.Dropdown(
                list(ex.SAMPLERS), value=DEFAULT_SAMPLER, label="sampler", elem_id="rev-sampler"
            )
            steps = gr.Number(
                20, label=f"steps (1..{ex.LIMITS.max_steps})", precision=0, elem_id="rev-steps"
            )
            guidance = gr.Slider(
                0,
                10,
                value=0,
                step=0.25,
                label="guidance w (conditional runs; on the run's noise-fraction interval)",
                elem_id="rev-guidance",
            )
            eta = gr.Slider(0, 1, value=0, step=0.05, label="eta (ddim only)")
            go = gr.Button("Sample", variant="primary", elem_id="rev-go")
            message = gr.Markdown(elem_id="rev-message")
            timing = gr.Markdown(elem_id="rev-timing")
        with gr.Column(scale=2):
            samples = gr.Image(label="samples", type="numpy", elem_id="rev-samples")
            strip = gr.Image(
                label="first sample: x_t (top) and the x_0 estimate (bottom), from t_max to 0",
                elem_id="rev-strip",
            )
            animation = gr.Image(label="animation", type="filepath", elem_id="rev-animation")

    def sample(run_name, seed, n, class_id, sampler, steps, guidance, eta):
        try:
            run = registry.load(run_name)
            traj = ex.reverse_process(
                run,
                sampler=sampler,
                steps=steps,
                seed=seed,
                n=n,
                class_id=class_id,
                guidance=guidance,
                eta=eta,
            )
            data = ex.run_data(run)
            started = time.perf_counter()
            grid = ex.samples_picture(traj.samples, data, nrow=traj.nrow)
            strip_image = ex.trajectory_strip(traj, data=data)
            gif = ex.save_animation(ex.trajectory_frames(traj, data))
            drawing = time.perf_counter() - started
        except Exception as e:
            return gr.skip(), gr.skip(), gr.skip(), _message(e), ""
        text = (
            f"**{traj.samples.shape[0]} samples in {traj.seconds:.2f} s** "
            f"({len(traj.times)} frames kept; {traj.nfe} network calls per sample with {sampler}; "
            f"pictures {drawing:.2f} s)"
        )
        return grid, strip_image, str(gif), "", text

    go.click(
        sample,
        [c["run"], c["seed"], c["n"], c["class"], sampler, steps, guidance, eta],
        [samples, strip, animation, message, timing],
        concurrency_id="cpu",
        concurrency_limit=1,
    )

    def describe(run_name):
        """The run's summary, and its own sampler, steps and guidance put in the controls."""
        if not run_name:
            return "", "", gr.skip(), gr.skip(), gr.skip()
        try:
            run = registry.load(run_name)
            own = ex.run_defaults(run)
            summary = ex.run_summary(run)
        except Exception as e:
            return "", _message(e), gr.skip(), gr.skip(), gr.skip()
        return summary, "", own["sampler"], own["steps"], own["guidance"]

    for event in (c["run"].change, demo.load):
        event(describe, c["run"], [about, message, sampler, steps, guidance])
    return c["run"]


def _compare_tab(registry: ex.RunRegistry, runs: list[str]) -> gr.Dropdown:
    c = _sampling_controls("cmp", runs)
    with gr.Row():
        sampler_a = gr.Dropdown(list(ex.SAMPLERS), value="ddim", label="left: sampler")
        steps_a = gr.Number(10, label="left: steps", precision=0)
        sampler_b = gr.Dropdown(list(ex.SAMPLERS), value="ddim", label="right: sampler")
        steps_b = gr.Number(50, label="right: steps", precision=0)
    go = gr.Button("Compare", variant="primary", elem_id="cmp-go")
    message = gr.Markdown(elem_id="cmp-message")
    with gr.Row():
        left = gr.Image(label="left", type="numpy", elem_id="cmp-left")
        right = gr.Image(label="right", type="numpy", elem_id="cmp-right")
    gr.Markdown("### Guidance sweep: one row per w, same seeds and class")
    with gr.Row():
        scales = gr.Textbox("0, 1, 2, 4", label="guidance scales w", elem_id="sweep-scales")
        sweep_class = gr.Number(0, label="class", precision=0)
        per_scale = gr.Number(8, label="samples per scale", precision=0)
        sweep_steps = gr.Number(20, label="steps (dpmpp-2m)", precision=0)
    sweep_go = gr.Button("Sweep", elem_id="sweep-go")
    sweep_message = gr.Markdown(elem_id="sweep-message")
    sweep = gr.Image(label="rows: w in the order given", type="numpy", elem_id="sweep-grid")

    def compare(run_name, seed, n, class_id, sa, na, sb, nb):
        try:
            run = registry.load(run_name)
            result = ex.compare_samplers(run, (sa, na), (sb, nb), seed=seed, n=n, class_id=class_id)
            data = ex.run_data(run)
        except Exception as e:
            return gr.skip(), gr.skip(), _message(e)
        text = (
            f"left {sa} x {int(na)}: {result.left.seconds:.2f} s; right {sb} x {int(nb)}: "
            f"{result.right.seconds:.2f} s; mean |left - right| = {result.mean_abs_difference:.3f}"
        )
        return (
            ex.samples_picture(result.left.samples, data),
            ex.samples_picture(result.right.samples, data),
            text,
        )

    go.click(
        compare,
        [c["run"], c["seed"], c["n"], c["class"], sampler_a, steps_a, sampler_b, steps_b],
        [left, right, message],
        concurrency_id="cpu",
        concurrency_limit=1,
    )

    def run_sweep(run_name, seed, text, class_id, per_scale, steps):
        try:
            run = registry.load(run_name)
            ws = ex.parse_scales(text)
            grid, rows = ex.guidance_sweep(
                run, ws, class_id=class_id, n_per_scale=per_scale, seed=seed, steps=steps
            )
        except Exception as e:
            return gr.skip(), _message(e)
        seconds = sum(r.seconds for r in rows)
        return grid, f"rows w = {', '.join(f'{w:g}' for w in ws)}; sampling {seconds:.2f} s"

    sweep_go.click(
        run_sweep,
        [c["run"], c["seed"], scales, sweep_class, per_scale, sweep_steps],
        [sweep, sweep_message],
        concurrency_id="cpu",
        concurrency_limit=1,
    )
    return c["run"]


def _latent_tab(demo: gr.Blocks, registry: ex.RunRegistry) -> None:
    status = gr.Markdown(ex.latent_status(registry), elem_id="latent-message")
    demo.load(lambda: ex.latent_status(registry), None, status)
    runs = registry.names("autoencoder")
    with gr.Row():
        run = gr.Dropdown(
            runs,
            value=runs[0] if runs else None,
            label="autoencoder run",
            allow_custom_value=True,
            elem_id="latent-run",
        )
        a = gr.Number(0, label="interpolate from test image", precision=0)
        b = gr.Number(1, label="to test image", precision=0)
        steps = gr.Number(10, label="steps (2..16)", precision=0)
    go = gr.Button("Show", elem_id="latent-go")
    message = gr.Markdown(elem_id="latent-error")
    recon = gr.Image(label="test images (top) and their reconstructions (bottom)", type="numpy")
    path = gr.Image(label="a, decode((1 - s) z_a + s z_b) for s = 0..1, b", type="numpy")

    def show(name, a, b, steps):
        try:
            return ex.latent_space(registry, name, index_a=a, index_b=b, steps=steps)
        except Exception as e:
            return gr.skip(), gr.skip(), _message(e)

    go.click(show, [run, a, b, steps], [recon, path, message], concurrency_id="cpu")


def _segmentation_tab(demo: gr.Blocks, registry: ex.RunRegistry) -> None:
    status = gr.Markdown(ex.segmentation_status(registry), elem_id="seg-status")
    demo.load(lambda: ex.segmentation_status(registry), None, status)
    runs = registry.names("segmentation")
    with gr.Row():
        with gr.Column(scale=1):
            run = gr.Dropdown(
                runs,
                value=runs[0] if runs else None,
                label="segmentation run",
                allow_custom_value=True,
                elem_id="seg-run",
            )
            source = gr.Radio(
                list(ex.SEGMENTATION_IMAGES),
                value=ex.SEGMENTATION_IMAGES[0],
                label="image",
                elem_id="seg-source",
            )
            with gr.Row():
                seed = gr.Number(0, label="seed (synthetic cells)", precision=0, elem_id="seg-seed")
                size = gr.Number(
                    192,
                    label=f"side (16..{ex.LIMITS.max_cells_side})",
                    precision=0,
                    elem_id="seg-size",
                )
            upload = gr.Image(
                label=f"or upload one (shrunk to {ex.LIMITS.max_cells_side} a side)",
                type="numpy",
                sources=["upload"],
                height=160,
            )
            go = gr.Button("Segment", variant="primary", elem_id="seg-go")
            message = gr.Markdown(elem_id="seg-message")
            summary = gr.Markdown(elem_id="seg-summary")
        with gr.Column(scale=2):
            with gr.Row():
                image = gr.Image(label="input", type="numpy", elem_id="seg-input")
                probability = gr.Image(
                    label="p(cell | x), overlap-tile", type="numpy", elem_id="seg-probability"
                )
                weights = gr.Image(
                    label="weight map w(x) of the truth (Eq. 2)",
                    type="numpy",
                    elem_id="seg-weights",
                )
            with gr.Row():
                instances = gr.Image(label="instances", type="numpy", elem_id="seg-instances")
                tiles = gr.Image(
                    label="tiles: output (solid), input (dashed), over the mirrored border",
                    type="numpy",
                    elem_id="seg-tiles",
                )

    def show(name, source, seed, size, upload):
        try:
            picture, truth = ex.segmentation_image(source, seed, size, upload)
            view = ex.segmentation_view(registry, name, picture, truth)
        except Exception as e:
            return (*[gr.skip()] * 5, _message(e), "")
        return (
            view.input,
            view.probability_map,
            view.weight_map,  # None (cleared) for an upload: it has no ground truth
            view.instances_map,
            view.tiles_map,
            "",
            view.summary,
        )

    go.click(
        show,
        [run, source, seed, size, upload],
        [image, probability, weights, instances, tiles, message, summary],
        concurrency_id="cpu",
        concurrency_limit=1,
    )


def _family_run(demo: gr.Blocks, registry: ex.RunRegistry, objective: str, status, prefix: str):
    """The status line and run menu of a family's tab (the runs of ``objective`` given)."""
    text = gr.Markdown(status(registry), elem_id=f"{prefix}-status")
    demo.load(lambda: status(registry), None, text)
    runs = registry.names(objective)
    return gr.Dropdown(
        runs,
        value=runs[0] if runs else None,
        label=f"{objective} run",
        allow_custom_value=True,
        elem_id=f"{prefix}-run",
    )


def _nflow_tab(demo: gr.Blocks, registry: ex.RunRegistry) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            run = _family_run(demo, registry, "nflow", fam.nflow_status, "nflow")
            k = gr.Slider(
                0, 8, value=1, step=1, label="couplings applied (k of L)", elem_id="nflow-k"
            )
            with gr.Row():
                n = gr.Number(500, label=f"samples (1..{fam.MAX_CHAINS})", precision=0)
                seed = gr.Number(0, label="seed (sample i: seed + i)", precision=0)
            point = gr.Textbox(
                "0.5, 0.25",
                label="log p at the point x, y (or click the density)",
                elem_id="nflow-point",
            )
            go = gr.Button("Show", variant="primary", elem_id="nflow-go")
            message = gr.Markdown(elem_id="nflow-message")
            summary = gr.Markdown(elem_id="nflow-summary")
        with gr.Column(scale=2):
            change = gr.Image(
                label="the change of variables: x, after k couplings, z = f(x) (grid lines: "
                "vertical cyan, horizontal green; data white)",
                type="numpy",
                elem_id="nflow-change",
            )
            density = gr.Image(
                label="p(x) = N(f(x); 0, I) |det df/dx| with samples f^-1(z)",
                type="numpy",
                elem_id="nflow-density",
                height=420,
            )
    where = gr.State(None)  # the density picture's heat map: (box in pixels, half side)

    def show(name, k, n, seed, point):
        try:
            view = fam.flow_view(registry, name, k=k, point=point, n=n, seed=seed)
        except Exception as e:
            return gr.skip(), gr.skip(), gr.skip(), _message(e), gr.skip()
        box = (view.density_box, view.planes[0].lim)
        return view.change, view.density, box, "", view.summary

    def relayer(name):
        """The slider over the run's couplings, 0..L."""
        if not name:
            return gr.skip(), ""
        try:
            layers = len(fam.load_flow_2d(registry, name).couplings)
        except Exception as e:
            return gr.skip(), _message(e)
        return gr.Slider(minimum=0, maximum=layers, step=1), ""

    def click(where, evt: gr.SelectData):
        if where is None or evt is None or evt.index is None:
            return gr.skip()
        found = fam.pixel_to_point(where[0], where[1], *evt.index[:2])
        return gr.skip() if found is None else f"{found[0]:g}, {found[1]:g}"

    inputs, outputs = [run, k, n, seed, point], [change, density, where, message, summary]
    go.click(show, inputs, outputs, concurrency_id="cpu")
    point.submit(show, inputs, outputs, concurrency_id="cpu")
    k.release(show, inputs, outputs, concurrency_id="cpu", trigger_mode="always_last")
    density.select(click, where, point).then(show, inputs, outputs, concurrency_id="cpu")
    run.change(relayer, run, [k, message])
    demo.load(relayer, run, [k, message])


def _langevin_tab(demo: gr.Blocks, registry: ex.RunRegistry) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            run = _family_run(demo, registry, "ebm", fam.ebm_status, "ebm")
            k = gr.Slider(
                0,
                fam.MAX_LANGEVIN_STEPS,
                value=500,
                step=1,
                label="SGLD steps (energy) or noise levels done (score)",
                elem_id="ebm-k",
            )
            with gr.Row():
                n = gr.Number(500, label=f"chains (1..{fam.MAX_CHAINS})", precision=0)
                seed = gr.Number(0, label="seed", precision=0, elem_id="ebm-seed")
            go = gr.Button("Show", variant="primary", elem_id="ebm-go")
            message = gr.Markdown(elem_id="ebm-message")
            summary = gr.Markdown(elem_id="ebm-summary")
        with gr.Column(scale=2):
            with gr.Row():
                chains = gr.Image(label="the chains, over the data", elem_id="ebm-chains")
                animation = gr.Image(label="animation", type="filepath", elem_id="ebm-animation")
            field = gr.Image(
                label="what they follow: the energy (cd) or the score at the level shown (dsm)",
                type="numpy",
                elem_id="ebm-field",
            )
            strip = gr.Image(label="the chains from noise to the end", elem_id="ebm-strip")

    def show(name, k, n, seed):
        try:
            view = fam.langevin_view(registry, name, k=k, n=n, seed=seed)
            gif = ex.save_animation(view.frames)
        except Exception as e:
            return (*[gr.skip()] * 4, _message(e), "")
        return view.chains_picture, view.field_picture, view.strip, str(gif), "", view.summary

    def rerange(name):
        """The slider over the run's SGLD steps (cd) or noise levels (dsm), at the run's own."""
        if not name:
            return gr.skip(), ""
        try:
            what, end, own = fam.langevin_range(registry, name)
        except Exception as e:
            return gr.skip(), _message(e)
        return gr.Slider(minimum=0, maximum=end, step=1, value=own, label=what), ""

    inputs = [run, k, n, seed]
    outputs = [chains, field, strip, animation, message, summary]
    go.click(show, inputs, outputs, concurrency_id="cpu", concurrency_limit=1)
    k.release(show, inputs, outputs, concurrency_id="cpu", trigger_mode="always_last")
    run.change(rerange, run, [k, message])
    demo.load(rerange, run, [k, message])


def _toy_trainer(registry: ex.RunRegistry, menus: list[gr.Dropdown], path_menu) -> None:
    """No trained model? A button that trains the tiny 2-D model and adds it to the run menus."""
    with gr.Accordion(
        "No trained model? Train a tiny 2-D one here (about 10 s)", open=not menus[0].value
    ):
        with gr.Row():
            distribution = gr.Dropdown(list(DISTRIBUTIONS), value="moons", label="distribution")
            steps = gr.Number(
                1500, label=f"training steps (10..{ex.LIMITS.max_toy_steps})", precision=0
            )
        go = gr.Button("Train the 2-D model", elem_id="toy-go")
        message = gr.Markdown(elem_id="toy-message")

    def train(distribution, steps):
        try:
            folder, seconds = ex.train_toy_model(
                tempfile.mkdtemp(prefix="difusion-toy2d-"), steps=steps, distribution=distribution
            )
        except Exception as e:
            return (*[gr.skip()] * (len(menus) + 1), _message(e))
        name = registry.add(f"toy2d {distribution} (trained here, {int(steps)} steps)", folder)
        choices = registry.names(ex.GENERATIVE)
        text = f"trained in {seconds:.1f} s; pick **{name}** in the run menus"
        return (
            *[gr.Dropdown(choices=choices, value=name) for _ in menus],
            gr.Dropdown(choices=[*choices, ex.SCHEDULE_CHOICE]),
            text,
        )

    go.click(train, [distribution, steps], [*menus, path_menu, message], concurrency_id="cpu")


def launch(
    registry: ex.RunRegistry,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    block: bool = True,
):
    """Serve the explorer; returns (app, local URL) when ``block`` is False (tests)."""
    demo = build_app(registry)
    demo.queue(default_concurrency_limit=1)
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],  # system fonts: no web-font download
        font_mono=["ui-monospace", "monospace"],
    )
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=True,
        show_error=True,
        theme=theme,
        ssr_mode=False,
        quiet=True,
        footer_links=[],
    )
    if not block:
        return demo, url
    try:
        demo.block_thread()
    finally:
        demo.close()
    return demo, url
