"""The latent explorer page in headless Chromium: loads cleanly, hover shows the image,
click lists neighbours."""

from pathlib import Path

import numpy as np
import pytest

from aekit._browser import console_errors, find_browser, headless_chromium, requested_urls
from aekit.cli import main
from aekit.data import resolve

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
    pytest.importorskip("selenium")
    from selenium.webdriver.common.action_chains import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    if find_browser() is None:
        pytest.skip("chromium and chromedriver are not installed")
    with headless_chromium(1100, 700) as driver:
        driver.get(page_file.as_uri())
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(
            "return !!(window.aekitExplorer && window.aekitExplorer.count === 400)"))
        assert console_errors(driver) == []
        legend = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#legend span")]
        assert legend == [str(c) for c in range(10)]  # sorted, not in order of appearance
        urls = requested_urls(driver)
        assert urls and all(u.startswith(("file:", "data:")) for u in urls)  # no network
        tip = driver.find_element(By.ID, "tip")
        assert not tip.is_displayed()
        x, y = driver.execute_script("return window.aekitExplorer.screen(7)")
        move = ActionBuilder(driver)
        move.pointer_action.move_to_location(int(round(x)), int(round(y)))
        move.perform()
        WebDriverWait(driver, 10).until(lambda d: tip.is_displayed())
        img = tip.find_element(By.TAG_NAME, "img")
        assert img.get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return document.querySelector('#tip img').naturalWidth") == 8
        assert "label" in tip.text
        click = ActionBuilder(driver)
        click.pointer_action.move_to_location(int(round(x)), int(round(y))).click()
        click.perform()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#neighbours .nb")) == 5
        assert console_errors(driver) == []


def test_real_valued_labels_get_a_colour_scale_not_a_class_each(tmp_path):
    from aekit.data.arrays import label_range

    assert label_range([0, 1, 2, 1]) is None  # a few values: classes
    assert label_range([0.5, 1.5, 0.5]) is None
    assert label_range(["cat", "dog"] * 20) is None
    assert label_range(list(range(18, 90))) == (18.0, 89.0)  # ages: a measurement
    assert label_range([0.5 * i for i in range(-2, 40)]) == (-1.0, 19.5)
    pytest.importorskip("selenium")
    from selenium.webdriver.common.by import By

    if find_browser() is None:
        pytest.skip("chromium and chromedriver are not installed")
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(300, 4)).astype(np.float32)
    np.savez(tmp_path / "codes.npz", x=codes, y=codes[:, 0] * 3.7)  # a measured value
    out = tmp_path / "page.html"
    assert main(["explore", str(tmp_path / "codes.npz"), "--out", str(out)]) == 0
    with headless_chromium(1100, 700) as driver:
        driver.get(out.as_uri())
        driver.implicitly_wait(10)
        spans = driver.find_elements(By.CSS_SELECTOR, "#legend span")
        assert len(spans) == 1  # one lo…hi ramp, not 300 one-point classes
        lo, hi = label_range(codes[:, 0] * 3.7)
        assert str(lo) in spans[0].text and str(hi) in spans[0].text  # shortest float repr, as JS
        assert console_errors(driver) == []
