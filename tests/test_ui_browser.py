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
         str(REPO / "hardware_profiles"), "--study", "ui", "--strategy", "one-stage"], cwd=root, capture_output=True, text=True, timeout=900)
    assert search.returncode == 0, search.stderr[-3000:]
    port = _free_port()
    printed = root / "ui.out"
    with open(printed, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", "ui", "--port", str(port)], cwd=root,
                                stdout=f, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    _wait_for(url + "/health", proc, "asrcompress ui")
    yield {"url": url, "port": port, "root": root, "printed": printed.read_text()}
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _wait_for(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"{what} did not answer on 127.0.0.1 within 120 s")
            time.sleep(1)


@pytest.fixture(scope="module")
def dashboard(server):
    """`asrcompress dashboard` on the same study's journal."""
    port, printed = _free_port(), server["root"] / "dashboard.out"
    with open(printed, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", "dashboard", "--study", "ui", "--port",
                                 str(port)], cwd=server["root"], stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _wait_for(f"http://127.0.0.1:{port}/", proc, "asrcompress dashboard")
    yield {"port": port, "printed": printed.read_text()}
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


def test_printed_link_opens_the_front_with_its_objectives(server, truth, browser, tmp_path):
    """The link `asrcompress ui` prints: without a click, the front's trials, each with its WER,
    latency and memory in columns, best WER first."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    link = next(ln.split(": ", 1)[1] for ln in server["printed"].splitlines() if ln.startswith("Pareto front of study ui"))
    assert link.startswith(f"{server['url']}/#/experiments/{truth['exp']}/runs?workflowType=machine_learning&")
    d = browser
    d.get("about:blank")  # a fresh page load: the earlier test's view is not carried over
    d.get(link)
    WebDriverWait(d, TIMEOUT).until(lambda dr: _visible_trials(dr) == truth["pareto"])
    for metric in ("wer", "latency_at_host", "memory"):
        _wait_text(d, metric)
    d.save_screenshot(str(tmp_path / "front-link.png"))
    headers = [h.text.strip() for h in d.find_elements(By.CSS_SELECTOR, "[role='columnheader']") if h.text.strip()]
    assert {"wer", "latency_at_host", "memory"} <= set(headers), headers
    body = d.find_element(By.TAG_NAME, "body").text
    for name in truth["pareto"]:  # each front trial's logged values are on the page, not just the names
        m = truth["trials"][name].data.metrics
        assert f"{m['memory']:.4f}"[:5] in body and f"{m['latency_at_host']:.4f}"[:4] in body
    assert not set(truth["trials"]) - truth["pareto"] & _visible_trials(d)  # no trial off the front


def test_dashboard_shows_the_study_its_front_and_each_trial(server, dashboard, browser, tmp_path):
    """The page `asrcompress dashboard` prints: the study's Pareto-front plot, then its trial list
    with every trial and the first one's objective values as the study stored them."""
    import optuna
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from asrcompress.search import open_storage

    link = next(ln.split(": ", 1)[1] for ln in dashboard["printed"].splitlines() if ln.startswith("optuna-dashboard:"))
    assert link.startswith(f"http://127.0.0.1:{dashboard['port']}/dashboard/studies/")
    study = optuna.load_study(study_name="ui", storage=open_storage(f"journal:{server['root'] / 'mlruns' / 'optuna' / 'ui.journal'}"))
    d = browser
    d.get(link)
    _wait_text(d, "Pareto Front")
    WebDriverWait(d, TIMEOUT).until(lambda dr: dr.find_elements(By.CSS_SELECTOR, "svg.main-svg"))
    d.save_screenshot(str(tmp_path / "dashboard-study.png"))
    assert "ui (id=" in d.find_element(By.TAG_NAME, "body").text
    d.get(link + "/trials")
    trials = study.get_trials()
    _wait_text(d, f"{len(trials)} Trials")
    first = trials[0]

    def js(v: float) -> str:  # JavaScript's shortest form: 1.0 prints as 1
        return repr(v).removesuffix(".0")

    _wait_text(d, ", ".join(js(v) for v in first.values))
    d.save_screenshot(str(tmp_path / "dashboard-trials.png"))
    body = d.find_element(By.TAG_NAME, "body").text
    assert all(f"Trial {t.number}" in body for t in trials)


@pytest.mark.parametrize("which", ["ui", "dashboard"])
def test_servers_listen_on_loopback_only(which, request):
    """Bound to 127.0.0.1: another address of this machine gets no answer."""
    port = request.getfixturevalue("server" if which == "ui" else "dashboard")["port"]
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
            assert s.connect_ex((addr, port)) != 0, f"{which} answers on {addr}"
