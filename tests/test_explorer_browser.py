"""The explorer end to end in headless Chromium (Debian's `chromium`, driven by Playwright).

Starts `difusion explore` on a run of the `fashion-mnist` preset (flow matching, class-conditional,
guided; trained here for a few steps with a tiny network) in a subprocess on a free port, then:
checks the forward tab shows the run's own path (the rectified flow, t in [0, 1]), moves its slider
and checks the picture changes, switches to a DDPM schedule, draws a 10-step sample of the flow run
and checks the samples appear, asks for a run outside the allowed ones and checks the page refuses
it, and opens the Segmentation (U-Net) tab on a tiny segmentation run (seg-cells, 3 steps) given beside it,
segments a synthetic cells image and checks its five pictures appear, opens the Normalizing flow
tab on a tiny realnvp-toy2d run and the Langevin (EBM) tab on a tiny ebm-toy2d run (given beside
them) and checks their pictures appear, and checks the page fetched
nothing from outside this machine. Screenshots go to the test's
tmp folder; with DIFUSION_SAVE_SCREENSHOTS=1 they are also copied to docs/figures/explorer*.png.
DIFUSION_EXPLORER_RUN=RUN_DIR samples that run instead of the tiny one (for the README picture);
DIFUSION_EXPLORER_NFLOW_RUN and DIFUSION_EXPLORER_EBM_RUN do the same for the two family tabs.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("DIFUSION_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]

if not Path(CHROMIUM).is_file():
    pytest.skip(
        "no chromium binary (Debian: apt-get install chromium; scripts/setup.sh --test does it "
        "as root); set DIFUSION_CHROMIUM to another one",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="the explorer needs gradio: pip install -e '.[explore]'")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright: pip install -e '.[test]'"
)

pytestmark = pytest.mark.filterwarnings("ignore")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    if os.environ.get("DIFUSION_EXPLORER_RUN"):
        return Path(os.environ["DIFUSION_EXPLORER_RUN"])
    from difusion.config import load_config
    from difusion.training.loop import train

    overrides = ["model.base_channels=8", "train.steps=5", "train.minutes=null"]
    cfg = load_config("fashion-mnist", [*overrides, "train.sample_every=0"])
    out = tmp_path_factory.mktemp("runs") / "tiny-fashion-mnist"
    return train(cfg, out, progress=False, final_samples=False).run_dir


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory) -> Path:
    """The seg-cells preset with a 4-channel, depth-2 U-Net trained for 3 steps on 2 images."""
    from difusion.config import load_config
    from difusion.training.loop import train

    overrides = ["segmentation.base_channels=4", "segmentation.depth=2", "segmentation.tile=92"]
    overrides += ["segmentation.n_train=2", "segmentation.n_test=1", "segmentation.image_size=64"]
    overrides += ["segmentation.eval_real=false", "train.batch_size=2", "train.steps=3"]
    cfg = load_config("seg-cells", [*overrides, "train.minutes=null"])
    out = tmp_path_factory.mktemp("runs") / "tiny-seg"
    return train(cfg, out, progress=False, final_samples=False).run_dir


def _family_run(tmp_path_factory, variable: str, preset: str, steps: int) -> Path:
    """The run named by the environment ``variable``, or ``preset`` trained for ``steps`` steps."""
    if os.environ.get(variable):
        return Path(os.environ[variable])
    from difusion.config import load_config
    from difusion.training.loop import train

    overrides = [f"train.steps={steps}", "train.threads=1", "train.minutes=null"]
    cfg = load_config(preset, [*overrides, "train.sample_every=0"])
    out = tmp_path_factory.mktemp("runs") / f"tiny-{preset}"
    return train(cfg, out, progress=False, final_samples=False).run_dir


@pytest.fixture(scope="module")
def nflow_run(tmp_path_factory) -> Path:
    """The realnvp-toy2d preset trained for 30 steps."""
    return _family_run(tmp_path_factory, "DIFUSION_EXPLORER_NFLOW_RUN", "realnvp-toy2d", 30)


@pytest.fixture(scope="module")
def ebm_run(tmp_path_factory) -> Path:
    """The ebm-toy2d preset (an energy, contrastive divergence) trained for 20 steps."""
    return _family_run(tmp_path_factory, "DIFUSION_EXPLORER_EBM_RUN", "ebm-toy2d", 20)


@pytest.fixture(scope="module")
def run_path(tiny_run):
    """The run's own Gaussian path, as the page should show it (the preset's: the rectified flow)."""
    from difusion.app.explorer import RunRegistry

    return RunRegistry([tiny_run]).path(str(tiny_run))


@pytest.fixture(scope="module")
def server(tiny_run, seg_run, nflow_run, ebm_run, tmp_path_factory):
    """`difusion explore TINY_RUN SEG_RUN NFLOW_RUN EBM_RUN` on a free port; yields (url, seconds
    to the first HTTP 200)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "explore.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "difusion.cli", "explore", str(tiny_run), str(seg_run)]
            + [str(nflow_run), str(ebm_run), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path_factory.mktemp("cwd"),  # no ./runs folder: only the run given is allowed
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        while True:
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.perf_counter() - started > 120:
                pytest.fail(f"the explorer did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url, time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    url, _ = server
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on(
            "request",
            lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url),
        )
        page.set_default_timeout(60_000)
        page.goto(url)
        page.outside_requests = outside
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def _save(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("DIFUSION_SAVE_SCREENSHOTS") == "1":
        shutil.copy(path, REPO / "docs" / "figures" / f"{name}.png")
    print(f"screenshot: {path}")
    return path


def test_app_starts_quickly(server):
    _, seconds = server
    print(f"explorer start-up: {seconds:.2f} s to the first HTTP 200")
    assert seconds < 60  # the README states the measured value; this only catches a hang


def _level_shows(page, text: str) -> None:
    page.wait_for_function(
        "t => document.querySelector('#fwd-level').innerText.includes(t)", arg=text
    )


def test_forward_tab_shows_the_runs_path_and_the_slider_moves_it(page, shots, run_path):
    image = page.locator("#fwd-image img")
    image.wait_for()
    quarter = f"t = {run_path.t_max / 4:g} of"  # the slider starts at t_max / 4 of the run's path
    _level_shows(page, quarter)
    assert run_path.describe() in page.locator("#fwd-level").inner_text()
    before = image.get_attribute("src")
    number = page.locator("#fwd-t input[type=number]")
    late = 0.5 * run_path.t_max if not run_path.discrete else round(0.5 * run_path.t_max)
    number.fill(f"{late:g}")
    number.press("Enter")
    page.wait_for_function(
        "src => { const i = document.querySelector('#fwd-image img'); return i && i.src !== src }",
        arg=before,
    )
    _level_shows(page, f"t = {late:g} of")
    if not run_path.discrete:  # the rectified flow: alpha_t = 1 - t, sigma_t = t
        text = page.locator("#fwd-level").inner_text()
        assert f"alpha_t = {1 - late / run_path.t_max:.4f}" in text
    _save(page, shots, "explorer-forward")  # the run's own path
    # picking a DDPM schedule shows it instead: the slider runs over 0..T
    page.locator("#fwd-schedule").get_by_label("cosine").check()
    _level_shows(page, "of T = 1000 (the cosine DDPM schedule)")
    number.fill("900")
    number.press("Enter")
    _level_shows(page, "t = 900 of T = 1000")


def test_sampling_shows_an_image(page, shots, run_path):
    page.get_by_role("tab", name="Reverse process").click()
    # picking the run puts its own sampler and guidance in the controls (the preset: fm-euler, w 2)
    page.wait_for_function("() => document.querySelector('#rev-about').innerText.includes('step')")
    assert run_path.describe() in page.locator("#rev-about").inner_text()
    steps = page.locator("#rev-steps input")
    steps.fill("10")
    steps.press("Tab")
    page.locator("#rev-go").click()
    page.locator("#rev-samples img").wait_for()
    page.wait_for_function("() => document.querySelector('#rev-timing').innerText.includes('s')")
    timing = page.locator("#rev-timing").inner_text()
    assert "16 samples in" in timing and "10 network calls" in timing and "fm-euler" in timing
    assert page.locator("#rev-strip img").get_attribute("src")
    assert page.locator("#rev-message").inner_text().strip() == ""
    _save(page, shots, "explorer")
    # the samples are a picture, not a blank: the grid has both dark and light pixels
    import io

    from PIL import Image

    grid = Image.open(io.BytesIO(page.locator("#rev-samples img").screenshot())).convert("L")
    low, high = grid.getextrema()
    assert high - low > 100


def test_a_path_outside_the_allowed_runs_is_refused(page, shots, server):
    page.get_by_role("tab", name="Reverse process").click()
    menu = page.locator("#rev-run input")
    menu.fill("/etc")
    menu.press("Enter")
    page.locator("#rev-go").click()
    page.wait_for_function(
        "() => document.querySelector('#rev-message').innerText.includes('refused')"
    )
    assert "not one of the runs" in page.locator("#rev-message").inner_text()
    _save(page, shots, "explorer-refused")
    # nor can the page's file route read files outside Gradio's own cache
    url, _ = server
    response = page.request.get(url + "gradio_api/file=/etc/passwd")
    assert response.status in (403, 404)


def test_latent_tab_says_no_autoencoder_was_given(page):
    page.get_by_role("tab", name="Latent space").click()
    assert "No autoencoder run given" in page.locator("#latent-message").inner_text()


def test_segmentation_tab_shows_the_pictures(page, shots, seg_run):
    page.get_by_role("tab", name="Segmentation (U-Net)").click()
    assert str(seg_run) in page.locator("#seg-status").inner_text()
    size = page.locator("#seg-size input")
    size.fill("100")  # 2 x 2 tiles of 92 -> 52
    size.press("Tab")
    page.locator("#seg-go").click()
    page.wait_for_function(
        "() => document.querySelector('#seg-summary').innerText.includes('cells found')"
    )
    assert "4 tiles 92 -> 52 on a 100x100 image" in page.locator("#seg-summary").inner_text()
    for name in ("input", "probability", "weights", "instances", "tiles"):
        assert page.locator(f"#seg-{name} img").get_attribute("src")
    assert page.locator("#seg-message").inner_text().strip() == ""
    _save(page, shots, "explorer-segmentation-tab")


def _summary_says(page, element: str, text: str) -> None:
    page.wait_for_function(
        "([e, t]) => document.querySelector(e).innerText.includes(t)", arg=[element, text]
    )


def test_nflow_tab_shows_the_change_of_variables(page, shots, nflow_run):
    page.get_by_role("tab", name="Normalizing flow").click()
    assert str(nflow_run) in page.locator("#nflow-status").inner_text()
    page.locator("#nflow-go").click()
    _summary_says(page, "#nflow-summary", "At x = (0.500, 0.250)")
    assert "log |det df/dx|" in page.locator("#nflow-summary").inner_text()
    for name in ("change", "density"):
        assert page.locator(f"#nflow-{name} img").get_attribute("src")
    assert page.locator("#nflow-message").inner_text().strip() == ""
    _save(page, shots, "explorer-nflow")
    # a click on the density picks the point there and shows its log p
    density = page.locator("#nflow-density img")
    box = density.bounding_box()
    density.click(position={"x": 0.3 * box["width"], "y": 0.3 * box["height"]})
    page.wait_for_function(
        "() => !document.querySelector('#nflow-summary').innerText.includes('(0.500, 0.250)')"
    )
    point = page.locator("#nflow-point textarea, #nflow-point input").first.input_value()
    x, y = (float(v) for v in point.split(","))
    assert x < 0 < y  # up and to the left of the origin, where the click was


def test_langevin_tab_shows_the_chains(page, shots, ebm_run):
    page.get_by_role("tab", name="Langevin (EBM)").click()
    assert str(ebm_run) in page.locator("#ebm-status").inner_text()
    # picking the run put its own step count on the slider (ebm-toy2d: 500 SGLD steps)
    assert page.locator("#ebm-k input[type=number]").input_value() == "500"
    page.locator("#ebm-go").click()
    _summary_says(page, "#ebm-summary", "after 500 SGLD steps")
    for name in ("chains", "field", "strip", "animation"):
        assert page.locator(f"#ebm-{name} img").get_attribute("src")
    assert page.locator("#ebm-message").inner_text().strip() == ""
    _save(page, shots, "explorer-langevin")


def test_nothing_was_fetched_from_outside(page):
    assert page.outside_requests == []
