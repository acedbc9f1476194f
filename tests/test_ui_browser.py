"""The MLflow UI as a person uses it: `asrcompress ui` on 127.0.0.1 over a tiny search's SQLite
store, driven by headless Debian Chromium through Selenium (Debian's chromedriver; nothing is
downloaded). Screenshots of every step go to the test's tmp dir."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import REPO, needs_synth

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium and chromium-driver not installed")
TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_corpus):
    from asrcompress.models import save_model

    from .compression.models import conformer
    from .search.test_search import SPACE

    root = tmp_path_factory.mktemp("ui")
    save_model(conformer(), root / "tiny")
    (root / "space.yaml").write_text(SPACE)
    search = subprocess.run(
        [sys.executable, "-m", "asrcompress.cli", "search", "--space", "space.yaml", "--model", "tiny", "--corpus",
         str(tiny_corpus), "--trials", "4", "--dev-utterances", "4", "--kd-utterances", "8", "--profiles",
         str(REPO / "hardware_profiles"), "--study", "ui"], cwd=root, capture_output=True, text=True, timeout=900)
    assert search.returncode == 0, search.stderr[-3000:]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", "ui", "--port", str(port)], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("asrcompress ui did not answer on 127.0.0.1 within 120 s")
            time.sleep(1)
    yield {"url": url, "port": port, "root": root}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def truth(server):
    """What the store holds, read with MLflow's client, to compare the page against."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{server['root'] / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("asrcompress/ui")
    runs = client.search_runs([exp.experiment_id])
    trials = {r.info.run_name: r for r in runs if r.data.tags.get("asrcompress_role") == "trial"}
    parent = next(r for r in runs if r.data.tags.get("asrcompress_role") == "study")
    return {"exp": exp.experiment_id, "trials": trials, "parent": parent,
            "pareto": {n for n, r in trials.items() if r.data.tags["pareto"] == "true"}}


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=2000,1200"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def _wait_text(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, TIMEOUT).until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)


def _visible_trials(driver) -> set[str]:
    from selenium.webdriver.common.by import By

    return {a.text.strip() for a in driver.find_elements(By.CSS_SELECTOR, "a[href*='/runs/']")
            if a.text.strip().startswith("trial ")}


def _expand_study(driver, name: str) -> None:
    """Click the expander in the study run's name cell: child runs are nested under it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    link = driver.find_element(By.XPATH, f"//a[normalize-space()='{name}']")
    cell = link.find_element(By.XPATH, "./ancestor::div[@role='gridcell'][1]")
    cell.find_element(By.CSS_SELECTOR, "button").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: _visible_trials(d))


pytestmark = [needs_synth, needs_browser, pytest.mark.slow]  # about 2 minutes: make test-reliability


def test_runs_filter_run_page_and_pareto_artifact(server, truth, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    d, url, exp = browser, server["url"], truth["exp"]
    shots = tmp_path / "screenshots"
    shots.mkdir()

    # 1. The experiment's runs: the study run, and every trial under it.
    d.get(f"{url}/#/experiments/{exp}/runs")
    _wait_text(d, "study ui")
    _wait_text(d, f"{len(truth['trials']) + 1} matching runs")
    _expand_study(d, "study ui")
    d.save_screenshot(str(shots / "1-runs.png"))
    assert _visible_trials(d) == set(truth["trials"])

    # 2. Filter the Pareto front the way `asrcompress ui` tells the user to.
    box = d.find_element(By.CSS_SELECTOR, "input[placeholder*='metrics']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("tags.pareto = 'true'", Keys.ENTER)
    WebDriverWait(d, TIMEOUT).until(lambda dr: "searchFilter=tags.pareto" in dr.current_url)
    _wait_text(d, f"{len(truth['pareto']) + 1} matching runs")  # the front, and the study run that holds it
    if not _visible_trials(d):
        _expand_study(d, "study ui")
    WebDriverWait(d, TIMEOUT).until(lambda dr: _visible_trials(dr) == truth["pareto"])
    d.save_screenshot(str(shots / "2-pareto-filter.png"))
    assert truth["pareto"] and _visible_trials(d) == truth["pareto"]

    # 3. A front trial's page shows its objectives and its pareto tag.
    name = sorted(truth["pareto"])[0]
    run = truth["trials"][name]
    d.get(f"{url}/#/experiments/{exp}/runs/{run.info.run_id}")
    for metric in ("wer", "latency_at_host", "memory"):
        _wait_text(d, metric)
    body = d.find_element(By.TAG_NAME, "body").text
    d.save_screenshot(str(shots / "3-trial-run.png"))
    assert f"{run.data.metrics['memory']:.4f}"[:5] in body  # the logged value, not just the name
    assert "pareto" in body and "true" in body

    # 4. The study run's Pareto front page opens inside the UI (plotly embedded, offline).
    d.get(f"{url}/#/experiments/{exp}/runs/{truth['parent'].info.run_id}/artifacts/pareto_front.html")
    frame = WebDriverWait(d, TIMEOUT).until(lambda dr: dr.find_elements(By.TAG_NAME, "iframe"))[0]
    d.save_screenshot(str(shots / "4-pareto-front.png"))
    d.switch_to.frame(frame)
    WebDriverWait(d, TIMEOUT).until(lambda dr: len(dr.find_elements(By.CSS_SELECTOR, "div.plotly-graph-div")) >= 2)
    assert "Pareto front of study ui" in d.find_element(By.TAG_NAME, "body").text
    assert d.find_elements(By.CSS_SELECTOR, "svg.main-svg")  # plotly drew, with no CDN to reach
    d.switch_to.default_content()
    assert sorted(p.name for p in shots.iterdir()) == ["1-runs.png", "2-pareto-filter.png", "3-trial-run.png",
                                                       "4-pareto-front.png"]


def test_ui_listens_on_loopback_only(server):
    """Bound to 127.0.0.1: another address of this machine gets no answer."""
    others = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # picks the outgoing interface; sends nothing
            others.add(s.getsockname()[0])
        except OSError:
            pass
    with contextlib.suppress(OSError):
        others |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    others = {a for a in others if not a.startswith("127.") and a != "0.0.0.0"}
    if not others:
        pytest.skip("this machine has no non-loopback IPv4 address")
    for addr in others:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((addr, server["port"])) != 0, f"the UI answers on {addr}"
