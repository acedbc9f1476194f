import json
import subprocess
import sys

import pytest


from .conftest import BASE_MODEL


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asrcompress.cli", *args], capture_output=True, text=True,
                          timeout=600)


def assert_one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    for n in needles:
        assert n in lines[0]


def test_missing_model_folder(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text("")
    assert_one_line_error(run("evaluate", "--model", str(tmp_path / "nope"), "--manifest", str(m)), "nope")


def test_bad_manifest_line_names_file_and_line(tmp_path):
    m = tmp_path / "bad.jsonl"
    m.write_text('{"audio_filepath": "a.wav", "text": "x"}\n{oops\n')
    assert_one_line_error(run("evaluate", "--model", str(BASE_MODEL), "--manifest", str(m)), "bad.jsonl:2")


def test_manifest_with_no_usable_entries(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio_filepath": "missing.wav", "text": "hi"}) + "\n")
    p = run("evaluate", "--model", str(BASE_MODEL), "--manifest", str(m))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "missing audio file" in p.stderr and "no usable utterances" in p.stderr


def test_bad_options(tmp_path):
    assert_one_line_error(run("corpus", "--out", str(tmp_path / "c"), "--size", "huge"), "--size", "huge")
    assert_one_line_error(run("train", "--corpus", str(tmp_path), "--out", str(tmp_path / "m")), "train.jsonl")
    assert_one_line_error(run("train", "--corpus", str(tmp_path), "--out", str(tmp_path / "m"), "--device", "tpu"),
                          "--device", "tpu")
    m = tmp_path / "m.jsonl"
    m.write_text("")
    assert_one_line_error(run("evaluate", "--model", str(BASE_MODEL), "--manifest", str(m), "--decoder", "magic"),
                          "magic")


def test_evaluate_json_on_synthesised_speech(tiny_corpus):
    p = run("evaluate", "--model", str(BASE_MODEL), "--manifest", str(tiny_corpus / "test.jsonl"), "--json")
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert {"wer", "cer", "utterances", "rtf"} <= set(result)
    assert result["utterances"] == 8 and 0 <= result["wer"] <= 1 and result["rtf"] > 0


@pytest.mark.slow
def test_stopping_ui_stops_every_mlflow_process(tmp_path):
    """MLflow's server forks uvicorn workers, a job runner and queue consumers: SIGTERM to
    `asrcompress ui` must end all of them, not leave them running."""
    import os
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "asrcompress.cli", "ui", "--port", str(port), "--tracking-uri", uri],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
            break
        except OSError:
            assert time.time() < deadline and proc.poll() is None, "asrcompress ui did not start"
            time.sleep(1)

    def mlflow_pids() -> list[int]:
        pids = []
        for d in os.listdir("/proc"):
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().decode(errors="replace")
                env = open(f"/proc/{d}/environ", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if d.isdigit() and int(d) != proc.pid and (str(tmp_path) in cmd or str(tmp_path) in env):
                pids.append(int(d))
        return pids

    assert mlflow_pids()  # the server's processes, found by the store path they were given
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    deadline = time.time() + 30
    while mlflow_pids() and time.time() < deadline:
        time.sleep(0.5)
    assert not mlflow_pids()
