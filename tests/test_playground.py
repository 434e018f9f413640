"""The playground page end to end in headless Chromium, against the real server (serve.app on uvicorn, a tiny random
model with a trained CodeTokenizer): multi-turn synthesis (turns, edits, run output, undo, regenerate, save/load,
resume after a reload, errors shown) and fill-in-the-middle at the cursor, checked against the API's own answers.

Needs playwright's Python package and a Chromium binary (Debian: `apt-get install -y chromium`; or set OCG_CHROMIUM);
playwright's own browser download is never used. Screenshots go to $OCG_SCREENSHOT_DIR, else the test's tmp dir."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = os.environ.get("OCG_CHROMIUM") or next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary: install Debian's `chromium` package "
                                                         "(apt-get install -y chromium) or set OCG_CHROMIUM")

from opencodegen.eval import mtpb  # noqa: E402
from opencodegen.model.config import ModelConfig  # noqa: E402
from opencodegen.model.transformer import GPT  # noqa: E402
from opencodegen.serve.app import create_app  # noqa: E402
from opencodegen.tokenizer import train_tokenizer  # noqa: E402

TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def server():
    import uvicorn

    texts = [p.description + "\n" + "\n".join(p.solution or ()) for p in mtpb.load_problems()]
    tok = train_tokenizer(texts, vocab_size=400)
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_preset("tiny-1m", vocab_size=-(-tok.vocab_size // 64) * 64, block_size=384)).eval()
    app = create_app(model, tok, model_name="tiny", slots=4, allow_code_execution=True)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    uv.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    directory = Path(os.environ.get("OCG_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def as_textarea(text: str) -> str:
    """A textarea normalises line breaks (random models write \\r)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def session_of(page, server) -> dict:
    sid = page.evaluate("localStorage.getItem('opencodegen.synth.session')")
    return httpx.get(f"{server}v1/synth/sessions/{sid}").json()


def turn_count(page, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('#turns li').length === {n} && "
                           "document.getElementById('busy').hidden")


def add_turn(page, intent: str, n: int) -> None:
    page.fill("#intent", intent)
    page.press("#intent", "Enter")
    turn_count(page, n)


def edit_turn(page, number: int, code: str) -> None:
    item = page.locator(f"#turns li[data-index='{number - 1}']")
    item.locator("textarea").fill(code)
    item.locator("button.turn-save").click()
    page.wait_for_selector(f"#turns li[data-index='{number - 1}'] .turn-tag:text('edited')")


def test_multi_turn_synthesis(page, server, shots, tmp_path):
    assert page.is_visible("#synth") and page.is_hidden("#fim")  # one panel at a time
    add_turn(page, "Let xs be the list [3, 1, 2].", 1)
    # The page shows what the server holds: the model's code for the turn, and the program with it.
    held = session_of(page, server)
    assert page.locator("#turns li textarea").input_value() == as_textarea(held["turns"][0]["code"])
    assert page.inner_text("#program").rstrip("\n").endswith(held["program"].rstrip("\n").splitlines()[-1])
    assert "# Let xs be the list [3, 1, 2]." in page.inner_text("#program")

    edit_turn(page, 1, "xs = [3, 1, 2]")
    add_turn(page, "Print xs sorted.", 2)
    edit_turn(page, 2, "ys = sorted(xs)\nprint(ys)")
    assert page.locator("#program .ln.new").all_inner_texts() == ["# Print xs sorted.", "ys = sorted(xs)", "print(ys)"]
    page.click("#run")
    page.wait_for_selector("#run-status:not([hidden])")
    assert page.inner_text("#run-status").startswith("passed")
    assert page.inner_text("#stdout") == "[1, 2, 3]\n"
    page.screenshot(path=str(shots / "playground-synthesis.png"), full_page=True)

    # Save, then undo and regenerate, then load the saved file back.
    with page.expect_download() as download:
        page.click("#session-box summary")
        page.click("#save-session")
    saved = tmp_path / "session.json"
    download.value.save_as(saved)
    saved_turns = json.loads(saved.read_text())["turns"]
    assert [t["code"] for t in saved_turns] == ["xs = [3, 1, 2]", "ys = sorted(xs)\nprint(ys)"]
    page.click("#undo")
    turn_count(page, 1)
    page.click("#regenerate")
    page.wait_for_selector("#turns li .turn-tag:text('regenerated ×1')")
    assert page.locator("#turns li textarea").input_value() == as_textarea(session_of(page, server)["turns"][0]["code"])
    page.set_input_files("#load-session", str(saved))
    turn_count(page, 2)
    assert page.locator("#turns li textarea").nth(1).input_value() == "ys = sorted(xs)\nprint(ys)"

    # A reload resumes the same session; a run that fails shows its error output.
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    turn_count(page, 2)
    edit_turn(page, 2, "print(xs[10])")
    page.click("#run")
    page.wait_for_selector("#run-status.failed")
    assert "IndexError" in page.inner_text("#stderr")


def test_errors_are_shown(page, tmp_path):
    page.fill("#intent", "   ")
    page.press("#intent", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "intent: must not be empty" in page.inner_text("#error")
    bad = tmp_path / "bad.json"
    bad.write_text('{"turns": [{"intent": "x"}]}')
    page.click("#session-box summary")
    page.set_input_files("#load-session", str(bad))
    page.wait_for_function("document.getElementById('error').textContent.includes('bad.json')")
    assert "turns[0].code: is missing" in page.inner_text("#error")
    add_turn(page, "Let a be 1.", 1)  # the page still works, and the error is gone
    assert page.is_hidden("#error")


def test_fill_in_the_middle_at_the_cursor(page, server, shots):
    page.click("#tab-fim")
    assert page.is_visible("#fim") and page.is_hidden("#synth")
    prefix, suffix = "def mean(xs):\n    return ", "\n\nprint(mean([1, 2, 3]))\n"
    page.fill("#editor", prefix + suffix)
    page.evaluate(f"document.getElementById('editor').setSelectionRange({len(prefix)}, {len(prefix)})")
    page.fill("#fim-max-tokens", "24")
    page.fill("#fim-temperature", "0")
    page.click("#fill")
    page.wait_for_function("document.getElementById('fim-info').textContent.includes('tokens in')")
    # The page asked the server for exactly this infill: the same request answered directly gives the same middle.
    direct = httpx.post(f"{server}v1/completions", json={"model": "tiny", "prompt": prefix, "suffix": suffix,
                                                         "max_tokens": 24, "temperature": 0}).json()
    middle = direct["choices"][0]["text"]
    assert page.input_value("#editor") == prefix + middle + suffix
    selected = page.evaluate("(() => { const e = document.getElementById('editor'); "
                             "return e.value.slice(e.selectionStart, e.selectionEnd); })()")
    assert selected == middle
    assert f"{direct['usage']['completion_tokens']} tokens in" in page.inner_text("#fim-info")
    page.screenshot(path=str(shots / "playground-fim.png"), full_page=True)
