"""The latent explorer page in headless Chromium: loads cleanly, hover shows the image,
click lists neighbours."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from aekit.cli import main
from aekit.data import resolve

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    from sklearn.decomposition import PCA

    root = tmp_path_factory.mktemp("explore")
    x = resolve("digits").x.reshape(1797, -1)
    np.save(root / "codes.npy", PCA(10, random_state=0).fit_transform(x).astype(np.float32))
    out = root / "page.html"
    assert main(["explore", str(root / "codes.npy"), "--data", "digits", "--out", str(out),
                 "--max-points", "400", "--neighbours", "5"]) == 0
    return out


def test_explorer_page_in_headless_chromium(page_file: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_function("window.aekitExplorer && window.aekitExplorer.count === 400")
            assert errors == []
            assert all(u.startswith(("file:", "data:")) for u in requests)  # no network
            tip = page.locator("#tip")
            assert not tip.is_visible()
            x, y = page.evaluate("window.aekitExplorer.screen(7)")
            page.mouse.move(x, y)
            tip.wait_for(state="visible")
            img = tip.locator("img")
            assert img.get_attribute("src").startswith("data:image/png;base64,")
            assert page.evaluate("document.querySelector('#tip img').naturalWidth") == 8
            assert "label" in tip.inner_text()
            page.mouse.click(x, y)
            assert page.locator("#neighbours .nb").count() == 5
            assert errors == []
        finally:
            browser.close()
