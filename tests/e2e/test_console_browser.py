"""The seed's workflow in the browser console, as a person does it, in real headless Chromium.

The local runtime is started as ``make serve`` starts it (its banner prints the console URL);
Selenium drives Debian's ``chromium`` through ``chromedriver`` (``make browser`` installs both).
Upload a tiny checkpoint and a zipped dataset through the pages, read the manifest, fill the
training form, see a field's problem, start the job, watch it complete, see the loss chart and the
sample grid, download the LoRA. Every page is screenshotted to ``$CONSOLE_SCREENSHOTS`` (default
``build/screenshots``), the test's artefacts.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from functions.domain.planning import SD_SCRIPTS_DEFAULT_STEPS
from tests.e2e.cli_helpers import run_cli
from tests.e2e.conftest import PROJECT_ROOT, RunningRuntime, RuntimeLauncher
from tests.e2e.test_workflow import checkpoint, config_file, create_training, upload_inputs
from training_container.testing.tiny_flow_models import save_tiny_model_files
from training_container.testing.tiny_models import make_tiny_dataset

__all__ = ["checkpoint"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("functions.api.handler") is None,
        reason="the control plane's handlers are not in the tree",
    ),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None or importlib.util.find_spec("selenium") is None,
        reason="needs chromium + chromedriver (make browser) and selenium (the dev extra)",
    ),
    pytest.mark.xdist_group("local-runtime-training"),
]
SCREENSHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", PROJECT_ROOT / "build" / "screenshots"))
CONSOLE_LINE = re.compile(r"console\s+(http://127\.0\.0\.1:\d+/login\?secret=\S+)")
TRAINING_TIMEOUT_SECONDS = 300
# Two saved epochs of a tiny job (as tests/e2e/test_epochs_and_samples.py), typed into the form.
FAST_PARAMETERS = {
    "resolution": "256",
    "min_bucket_reso": "256",
    "max_bucket_reso": "512",
    "network_dim": "4",
    "network_alpha": "2",
    "learning_rate": "0.001",
    "max_train_epochs": "2",
    "save_every_n_epochs": "1",
    "max_data_loader_n_workers": "0",
}


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path / "downloads")}
    )
    try:
        yield driver
    finally:
        for entry in driver.get_log("browser"):
            print("browser:", entry.get("level"), entry.get("message"))
        driver.quit()


def console_url(runtime: RunningRuntime) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = CONSOLE_LINE.search(runtime.log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"the runtime printed no console URL:\n{runtime.log.read_text()[-2000:]}")


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


UNLABELLED_CONTROLS = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter((c) => !c.labels || c.labels.length === 0).map((c) => c.outerHTML.slice(0, 80));
"""


def shoot(driver: Any, name: str) -> None:
    """The whole page (not just the viewport), as the window's width shows it; every form control
    on it must have a label (what a screen reader announces)."""
    assert driver.execute_script(UNLABELLED_CONTROLS) == [], name
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.get_window_size()
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(size["width"], max(size["height"], height + 140))  # + the window's chrome
    try:
        driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    finally:
        driver.set_window_size(size["width"], size["height"])


def text_of(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def zipped(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, Path(folder.name) / path.relative_to(folder))
    return target


def set_field(driver: Any, element_id: str, value: str) -> None:
    """Type into an input, or pick an option of a select, as a keyboard user would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    element = driver.find_element(By.ID, element_id)
    if element.tag_name == "select":
        Select(element).select_by_value(value)
        return
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.clear()
    element.send_keys(value)


@pytest.mark.slow
def test_the_seed_workflow_in_the_console(
    runtimes: RuntimeLauncher, checkpoint: Path, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser
    runtime = runtimes.start()
    driver.get(console_url(runtime))
    wait_for(lambda: "No trainings yet" in text_of(driver, "#trainings-table"), what="the empty list")
    assert "secret" not in driver.current_url  # swapped for the cookie at once
    shoot(driver, "01-trainings-empty")

    # Base model: upload through the page (parts PUT straight to the presigned URLs).
    driver.get(driver.current_url.split("#")[0] + "#/models")
    # A file name the API would refuse as it is (spaces, brackets): the page stores a safe one.
    spaced = shutil.copy(checkpoint, tmp_path / "tiny sd15 (pruned).safetensors")
    driver.find_element(By.CSS_SELECTOR, "#model-file").send_keys(str(spaced))
    set_field(driver, "model-name", "tiny-sd15")
    driver.find_element(By.CSS_SELECTOR, "#model-upload button[type=submit]").click()
    wait_for(lambda: "ready" in text_of(driver, "#models-table"), what="the model to be ready")
    progress = driver.find_element(By.ID, "model-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max")  # every byte reported
    # An import from a URL the API refuses: its problem, in words, on the page.
    set_field(driver, "import-url", "http://example.com/base.safetensors")
    driver.find_element(By.CSS_SELECTOR, "#model-import button[type=submit]").click()
    wait_for(lambda: "source_url: must use https" in text_of(driver, "main"), what="the import's problem")
    shoot(driver, "02-base-models")

    # Dataset: a zip of a Kohya folder; thumbnails with captions before the upload, then the manifest.
    dataset = make_tiny_dataset(tmp_path / "cats", n_images=2, repeats=1)
    driver.get(driver.current_url.split("#")[0] + "#/datasets")
    single = make_tiny_dataset(tmp_path / "one", n_images=1, repeats=1)
    driver.find_element(By.ID, "dataset-folder").send_keys(str(single))  # a folder chooser ...
    wait_for(lambda: "2 files" in text_of(driver, "#dataset-upload"), what="the folder's files")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#thumbnails figure")) == 1
    # ... or a zip (read in the page); the preview now shows the zip's files.
    driver.find_element(By.ID, "dataset-zip").send_keys(str(zipped(dataset, tmp_path / "cats.zip")))
    wait_for(lambda: "4 files" in text_of(driver, "#dataset-upload"), what="the zip's files")
    thumbs = driver.find_elements(By.CSS_SELECTOR, "#thumbnails figure")
    assert len(thumbs) == 2 and "1_demo/img_0.png" in thumbs[0].text
    caption = (dataset / "1_demo" / "img_0.txt").read_text().strip()
    assert caption in thumbs[0].text
    shoot(driver, "03-dataset-chosen")
    driver.find_element(By.CSS_SELECTOR, "#dataset-upload button[type=submit]").click()
    wait_for(lambda: "ready" in text_of(driver, "h1"), timeout=60, what="the dataset to be ready")
    manifest = text_of(driver, "#manifest")
    assert "1_demo" in manifest and "2 images, 2 with captions" in manifest, manifest
    assert "None: ready to train" in manifest
    shoot(driver, "04-dataset-manifest")
    dataset_id = driver.current_url.rsplit("/", 1)[1]
    set_field(driver, "crop-width", "64")  # a cropped copy, made by the service in the background
    set_field(driver, "crop-name", "cats 64")
    driver.find_element(By.CSS_SELECTOR, "#crop button[type=submit]").click()
    wait_for(lambda: not driver.current_url.endswith(dataset_id), what="the cropped dataset's page")
    wait_for(lambda: "ready" in text_of(driver, "h1"), timeout=60, what="the crop to be ready")
    assert "cats 64" in text_of(driver, "h1")
    assert f"cropped 64x64 from {dataset_id}" in text_of(driver, "main")

    # New training: a field's problem first, then the plan with both costs, then start.
    driver.get(driver.current_url.split("#")[0] + "#/new")
    wait_for(lambda: driver.find_elements(By.ID, "param-network_dim"), what="the parameter form")
    driver.execute_script(
        "document.querySelector('#parameters').closest('form').querySelector('details').open = true"
    )
    set_field(driver, "param-network_dim", "5000")
    driver.find_element(By.ID, "validate").click()
    problem = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '[data-field="param-network_dim"] .problem').text,
        what="network_dim's problem",
    )
    assert "at most 1024" in problem
    assert driver.switch_to.active_element.get_attribute("id") == "param-network_dim"  # focus moved there
    shoot(driver, "05-new-training-problem")
    # An emptied field drops the family's default (sent as null): without max_train_epochs the plan
    # falls back to sd-scripts' own max_train_steps (functions/domain/planning.py).
    set_field(driver, "param-network_dim", "4")
    set_field(driver, "param-max_train_epochs", "")
    set_field(driver, "dataset", dataset_id)
    driver.find_element(By.ID, "validate").click()
    wait_for(lambda: f"{SD_SCRIPTS_DEFAULT_STEPS}" in text_of(driver, "#plan"), what="the default-steps plan")
    for name, value in FAST_PARAMETERS.items():
        set_field(driver, f"param-{name}", value)
    set_field(driver, "dataset", dataset_id)  # the original, not its 64 px crop
    set_field(driver, "instance", "ml.g5.xlarge")
    set_field(driver, "name", "console-cats")
    set_field(driver, "prompts", "a photo of demo\ndemo in the snow")
    set_field(driver, "sample-size", "64")  # tiny samples, as the CLI's epochs test renders them
    set_field(driver, "sample-steps", "1")
    driver.find_element(By.ID, "validate").click()
    wait_for(lambda: "2 epochs × 2" in text_of(driver, "#plan"), what="the tiny job's plan")  # noqa: RUF001
    assert text_of(driver, "#cost-spot").startswith("$")
    assert not driver.find_elements(By.CSS_SELECTOR, ".has-problem")
    assert "$" in text_of(driver, "#cost-on-demand")
    shoot(driver, "06-new-training-plan")
    ActionChains(driver).double_click(driver.find_element(By.ID, "submit")).perform()  # starts one job

    # The training page: live until it completes, then the chart, the grid and the files.
    wait_for(lambda: "#/trainings/" in driver.current_url, what="the training page")
    job_id = driver.current_url.rsplit("/", 1)[1]
    wait_for(
        lambda: "COMPLETED" in text_of(driver, "h1") or "FAILED" in text_of(driver, "h1"),
        timeout=TRAINING_TIMEOUT_SECONDS,
        what="the training to end",
    )
    assert "COMPLETED" in text_of(driver, "h1"), runtime.log.read_text()[-3000:]
    wait_for(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#downloads a")) == 2, what="epoch links")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#charts polyline"), what="the loss chart")
    images = wait_for(
        lambda: [
            i
            for i in driver.find_elements(By.CSS_SELECTOR, "#sample-grid img")
            if i.get_property("naturalWidth")
        ],
        what="loaded sample images",
    )
    assert len(images) == 4  # 2 epochs x 2 prompts
    grid = text_of(driver, "#sample-grid")
    assert "epoch 1" in grid and "epoch 2" in grid and "demo in the snow" in grid
    history = text_of(driver, "table")
    assert "TRAINING" in history and "COMPLETED" in history
    wait_for(lambda: text_of(driver, "#log").strip(), what="log lines")
    shoot(driver, "07-training-completed")

    final = driver.find_element(By.CSS_SELECTOR, '#downloads a[data-epoch="2"]')
    final.click()
    downloads = tmp_path / "downloads"
    lora = wait_for(
        lambda: list(downloads.glob("*.safetensors")) if downloads.is_dir() else [],
        what="the downloaded LoRA",
    )[0]
    with safe_open(str(lora), framework="pt") as handle:
        names = list(handle.keys())
        assert any(name.startswith("lora_unet_") for name in names)
        assert handle.metadata()["ss_epoch"] == "2"

    # The trainings list with the finished job; then the same page on a narrow window.
    driver.get(driver.current_url.split("#")[0] + "#/trainings")
    wait_for(lambda: "COMPLETED" in text_of(driver, f'tr[data-job="{job_id}"]'), what="the list row")
    assert len(driver.find_elements(By.CSS_SELECTOR, "tr[data-job]")) == 1  # the double click: one job
    shoot(driver, "08-trainings")
    driver.set_window_size(420, 800)
    shoot(driver, "09-trainings-narrow")

    # Delete from the training page (a confirm dialog first); the list no longer has it.
    driver.set_window_size(1280, 800)
    driver.get(driver.current_url.split("#")[0] + f"#/trainings/{job_id}")
    wait_for(lambda: driver.find_elements(By.ID, "delete"), what="the delete button").pop().click()
    driver.switch_to.alert.accept()
    wait_for(lambda: driver.current_url.endswith("#/trainings"), what="back to the list")
    wait_for(
        lambda: not driver.find_elements(By.CSS_SELECTOR, f'tr[data-job="{job_id}"]'), what="the row gone"
    )


@pytest.mark.slow
def test_a_running_training_is_stopped_from_its_page(
    runtimes: RuntimeLauncher, checkpoint: Path, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    runtime = runtimes.start()
    model_id, dataset_id = upload_inputs(
        runtime, checkpoint, make_tiny_dataset(tmp_path / "ds", n_images=2, repeats=1)
    )
    created = create_training(runtime, model_id, dataset_id, config_file(tmp_path, 100_000))
    assert created.exit_code == 0, created.stderr
    job_id = str(created.data["id"])
    driver.get(console_url(runtime))
    driver.get(driver.current_url.split("#")[0] + f"#/trainings/{job_id}")
    wait_for(lambda: "TRAINING" in text_of(driver, "h1"), timeout=120, what="TRAINING")
    wait_for(lambda: "/ 100000" in text_of(driver, "#step"), what="live steps")  # progress on screen
    shoot(driver, "10-training-running")
    driver.find_element(By.ID, "stop").click()
    wait_for(lambda: "STOPPED" in text_of(driver, "h1"), timeout=120, what="STOPPED")
    assert "STOPPED" in text_of(driver, "table")  # in the status history
    assert not driver.find_elements(By.ID, "stop") and driver.find_elements(By.ID, "delete")


@pytest.mark.slow
def test_a_flux_training_names_its_components_in_the_console(
    runtimes: RuntimeLauncher, browser: Any, tmp_path: Path
) -> None:
    """FLUX.1 from the pages: a component uploaded with its role, the form's one field per
    component slot (docs/flux-and-sd35.md), host memory in the instance choices, and the job's
    ``components`` as the API recorded them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    runtime = runtimes.start()
    files = save_tiny_model_files("flux1", tmp_path / "flux")
    ids: dict[str, str] = {}
    for role in ("checkpoint", "clip_l", "t5xxl"):  # through loractl, as docs/flux-and-sd35.md shows
        role_flag = [] if role == "checkpoint" else ["--component", role]
        uploaded = run_cli(runtime, "models", "upload", str(files[role]), "--fm-type", "flux1", *role_flag)
        assert uploaded.exit_code == 0 and uploaded.data["status"] == "ready", uploaded.stderr
        ids[role] = str(uploaded.data["id"])
    dataset = run_cli(runtime, "datasets", "upload", str(make_tiny_dataset(tmp_path / "ds", n_images=2)))
    assert dataset.exit_code == 0, dataset.stderr

    # The AE through the page, with its role.
    driver.get(console_url(runtime))
    driver.get(driver.current_url.split("#")[0] + "#/models")
    wait_for(lambda: driver.find_elements(By.ID, "model-component"), what="the upload form")
    driver.find_element(By.CSS_SELECTOR, "#model-file").send_keys(str(files["ae"]))
    set_field(driver, "model-fm", "flux1")
    set_field(driver, "model-component", "ae")
    driver.find_element(By.CSS_SELECTOR, "#model-upload button[type=submit]").click()
    wait_for(lambda: "checkpoint: ae" in text_of(driver, "#models-table"), what="the AE's row")
    ae = [m for m in run_cli(runtime, "models", "list", "--all").data if m.get("component") == "ae"]
    assert len(ae) == 1 and ae[0]["status"] == "ready"
    ids["ae"] = str(ae[0]["id"])
    shoot(driver, "11-flux-components")

    driver.get(driver.current_url.split("#")[0] + "#/new")
    wait_for(lambda: driver.find_elements(By.ID, "param-network_dim"), what="the parameter form")
    set_field(driver, "family", "flux1")
    wait_for(lambda: driver.find_elements(By.ID, "component-t5xxl"), what="FLUX.1's component fields")
    # Component files are no base model; each slot offers the uploads of its role.
    assert [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "model")).options] == [
        ids["checkpoint"]
    ]
    for role in ("ae", "clip_l", "t5xxl"):
        assert (
            Select(driver.find_element(By.ID, f"component-{role}")).first_selected_option.get_attribute(
                "value"
            )
            == ids[role]
        )
    assert not driver.find_elements(By.ID, "component-clip_g")  # FLUX.1 takes none
    instances = [o.text for o in Select(driver.find_element(By.ID, "instance")).options]
    assert any(text.startswith("ml.g6e.2xlarge") and "64 GiB RAM" in text for text in instances), instances
    assert not any(text.startswith("ml.g5.xlarge") for text in instances)  # 16 GiB: below FLUX.1's floor
    set_field(driver, "dataset", str(dataset.data["id"]))
    set_field(driver, "instance", "ml.g6e.xlarge")
    shoot(driver, "12-flux-new-training")
    driver.find_element(By.ID, "submit").click()
    wait_for(lambda: "#/trainings/" in driver.current_url, what="the training page")
    job_id = driver.current_url.rsplit("/", 1)[1]
    shown = wait_for(lambda: text_of(driver, "#job-inputs"), what="the job's inputs")
    assert all(f"{role} {ids[role]}" in shown for role in ("ae", "clip_l", "t5xxl")), shown
    stopped = run_cli(runtime, "trainings", "stop", job_id)  # the form's body is what this test checks
    assert stopped.exit_code == 0, stopped.stderr
    job = run_cli(runtime, "trainings", "get", job_id).data
    assert job["fm_type"] == "flux1" and job["base_model_id"] == ids["checkpoint"]
    assert job["components"] == {role: ids[role] for role in ("ae", "clip_l", "t5xxl")}
