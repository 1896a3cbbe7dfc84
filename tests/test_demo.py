"""`python -m gliner_jax.demo` in a real browser: headless Chromium (Debian `chromium` +
`chromium-driver`) types a text and labels, submits, and reads the highlighted entities back from
the page; they must equal `predict_entities`. The screenshot is kept as a test artifact in
`test-artifacts/` (or $GLINER_JAX_ARTIFACTS). Loopback only."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio", reason="the serve extra (requirements-serve.txt)")

from gliner_jax.demo import build_app, highlight, local_predictor, parse_labels  # noqa: E402
from gliner_jax.model import GLiNER  # noqa: E402
from tests.reference_models import cached_reference_gliner  # noqa: E402
from tests.serve_harness import REPO, free_port  # noqa: E402

TEXT = "John Smith works at Google in Paris and Alice was born in Berlin."
LABELS = "person, company, city"
ARTIFACTS = Path(os.environ.get("GLINER_JAX_ARTIFACTS", REPO / "test-artifacts"))


def test_highlight_pieces_cover_the_text_once():
    ents = [{"start": 0, "end": 10, "label": "person", "score": 0.91},
            {"start": 5, "end": 10, "label": "person", "score": 0.5},   # nested: table only
            {"start": 20, "end": 26, "label": "company", "score": 0.456}]
    pieces = highlight(TEXT, ents)
    assert "".join(t for t, _ in pieces) == TEXT
    assert [(t, lab) for t, lab in pieces if lab] == [("John Smith", "person 0.91"),
                                                      ("Google", "company 0.46")]
    assert parse_labels(" person,, city\norg ") == ["person", "city", "org"]


@pytest.fixture(scope="module")
def browser():
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        if os.environ.get("GLINER_JAX_REQUIRE_BROWSER"):
            pytest.fail("chromedriver not found: apt-get install -y chromium chromium-driver")
        pytest.skip("no chromedriver (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1400,1000", "--no-proxy-server"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


@pytest.fixture(scope="module")
def demo_url():
    model_dir = cached_reference_gliner(weight_scale=2.0)[1]
    predict = local_predictor(str(model_dir))
    predict(TEXT, parse_labels(LABELS), 0.5, True, False)  # compile before the browser waits
    app = build_app(predict, "tiny random model")
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
               quiet=True)
    yield f"http://127.0.0.1:{port}/", model_dir
    app.close()


def _wait_done(drv, elem_id: str, timeout: float = 120.0) -> None:
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    time.sleep(0.3)
    while time.monotonic() < deadline:
        html = drv.find_element(By.ID, elem_id).get_attribute("innerHTML")
        if "progress-text" not in html and "pending" not in html:
            return
        time.sleep(0.25)
    raise TimeoutError(f"#{elem_id} still processing after {timeout} s")


def _type(drv, css: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    box = drv.find_element(By.CSS_SELECTOR, css)
    box.clear()
    box.send_keys(value)


def test_browser_shows_the_entities_of_predict_entities(browser, demo_url):
    from selenium.webdriver.common.by import By

    url, model_dir = demo_url
    model = GLiNER.from_pretrained(model_dir)
    browser.get(url)
    deadline = time.monotonic() + 60
    while not browser.find_elements(By.CSS_SELECTOR, "#text textarea"):
        assert time.monotonic() < deadline, "the demo page did not load"
        time.sleep(0.25)
    _type(browser, "#text textarea", TEXT)
    _type(browser, "#labels textarea, #labels input", LABELS)
    browser.find_element(By.ID, "submit").click()
    _wait_done(browser, "entities")
    shown = [(t.find_element(By.CSS_SELECTOR, ".text").text,
              t.find_element(By.CSS_SELECTOR, ".label").text)
             for t in browser.find_elements(By.CSS_SELECTOR, "#entities .token.highlighted")]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "demo.png"))
    want = model.predict_entities(TEXT, parse_labels(LABELS), threshold=0.5)
    assert len(want) >= 2
    # Gradio upper-cases the label chips with CSS; the text itself is ours
    assert [(a, b.lower()) for a, b in shown] == \
           [(e["text"], f"{e['label']} {e['score']:.2f}") for e in want]

    # nested + multi-label: the table lists every entity, overlapping ones included
    for box in ("nested", "multi"):
        browser.find_element(By.CSS_SELECTOR, f"#{box} input").click()
    browser.find_element(By.ID, "submit").click()
    _wait_done(browser, "table")
    _wait_done(browser, "entities")
    rows = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "td")]
            for r in browser.find_elements(By.CSS_SELECTOR, "#table tr.entity")]
    want = model.predict_entities(TEXT, parse_labels(LABELS), threshold=0.5, flat_ner=False,
                                  multi_label=True)
    assert len(want) > len(shown)  # nested / multi-label spans were found
    assert rows == [[e["text"], e["label"], f"{e['score']:.4f}", str(e["start"]), str(e["end"])]
                    for e in want]
    browser.save_screenshot(str(ARTIFACTS / "demo_nested.png"))
