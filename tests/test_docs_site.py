"""The docs site (mkdocs.yml) in headless Chromium (Debian's `chromium`, driven by Playwright).

Builds the site with `mkdocs build --strict` into the test's tmp folder (or reuses build/site when
`make docs` wrote it after the last change to docs/ and mkdocs.yml), serves it on a free local port,
then checks that KaTeX (shipped in docs/assets/katex/) rendered the equations of the English DDPM
page and of the Spanish post, that the header's language switch leads from the English DDPM page to
its Spanish twin and back, and that the pages fetched nothing from outside this machine and missed
no file of their own. Screenshots go to
the test's tmp folder; with DIFUSION_SAVE_SCREENSHOTS=1 the Spanish one is also copied to
docs/figures/docs-site.png (the README's picture).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
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
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright: pip install -e '.[test]'"
)
for module in ("mkdocs", "material", "mkdocs_static_i18n"):
    pytest.importorskip(
        module, reason="the docs site needs the docs extra: pip install -e '.[docs]'"
    )


def _newest_source() -> float:
    sources = [REPO / "mkdocs.yml", *(p for p in (REPO / "docs").rglob("*") if p.is_file())]
    return max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = REPO / "build" / "site" / "index.html"
    if built.is_file() and built.stat().st_mtime > _newest_source():
        return built.parent  # `make docs` after the last edit: the same build
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def url(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log in the test output
        pass


@pytest.fixture(scope="module")
def page(url):
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url),
        )
        # Material prefetches sitemap.xml beside each alternate-language link, which the i18n
        # plugin points at the page's twin rather than a language root: those 404s are harmless
        page.on(
            "response",
            lambda r: (
                failed.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/sitemap.xml")
                else None
            ),
        )
        page.set_default_timeout(30_000)
        page.outside_requests = outside
        page.failed_requests = failed
        yield page
        browser.close()


def _save(page, tmp_path: Path, name: str, figure: str | None = None) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if figure and os.environ.get("DIFUSION_SAVE_SCREENSHOTS") == "1":
        shutil.copy(path, REPO / "docs" / "figures" / figure)
    print(f"screenshot: {path}")


def _math_rendered(page) -> tuple[int, int]:
    """(equations KaTeX rendered, KaTeX errors) on the page, once the first one is there."""
    page.locator(".arithmatex .katex").first.wait_for()
    return page.locator(".arithmatex .katex").count(), page.locator(".katex-error").count()


def test_english_equations_render(page, url, tmp_path):
    page.goto(url + "ddpm/")
    rendered, errors = _math_rendered(page)
    assert rendered > 20 and errors == 0
    # a rendered equation is laid out by KaTeX (its HTML tree), not left as TeX source
    first = page.locator(".arithmatex").first
    assert first.locator(".katex-html").count() == 1
    assert "\\" not in first.locator(".katex-html").inner_text()
    _save(page, tmp_path, "docs-site-en")


def test_the_language_switch_leads_to_the_spanish_post(page, url, tmp_path):
    page.goto(url + "ddpm/")
    page.locator(".md-header__option .md-select").first.hover()
    page.locator("a.md-select__link[hreflang='es']").click()
    page.wait_for_url("**/es/ddpm/")
    # the post's title comes from its Jekyll front matter (docs/assets/hooks/posts.py)
    assert page.locator("h1").first.inner_text().startswith("Los modelos de difusión (DDPM)")
    toc = page.locator(".md-sidebar--secondary").inner_text()
    assert "Primeras aclaraciones" in toc and "Fuentes recomendadas" in toc
    assert page.locator("html").get_attribute("lang") == "es"
    rendered, errors = _math_rendered(page)
    assert rendered > 20 and errors == 0
    # the picture: the posterior worked out, with the language switch and both tables of contents
    # one scroll down, to just below the sticky header (scrolling up would show "back to top")
    page.locator("h3", has_text="Posterior").evaluate(
        "h => window.scrollTo(0, h.getBoundingClientRect().top + window.scrollY - 72)"
    )
    page.wait_for_timeout(300)  # the header's title transition
    _save(page, tmp_path, "docs-site", figure="docs-site.png")
    page.evaluate("window.scrollTo(0, 0)")
    # and back: the Spanish post's switch leads to its English twin
    page.locator(".md-header__option .md-select").first.hover()
    page.locator("a.md-select__link[hreflang='en']").click()
    page.wait_for_url(url + "ddpm/")


def test_nothing_was_fetched_from_outside_and_nothing_was_missing(page):
    assert page.outside_requests == []
    assert page.failed_requests == []  # KaTeX's fonts, the figures, the theme's files
