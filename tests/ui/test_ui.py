"""The web page for users (docs/ui.md) in a real browser: Debian's chromium, headless,
driven by Selenium through chromium-driver, against the Ironcrest at IRONCREST_DEV_URL and
the dev IdP's own login page. The tests run in file order and share one browser: log in,
browse, upload, open, rename, delete, submit and cancel jobs, log out.

A screenshot of each page goes to IRONCREST_UI_RESULTS (default
/tmp/ironcrest-dev/ui-results), with `metrics.json`: the first signed-in load's bytes
transferred and time to interactive, as the browser's Performance API measures them.
"""

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ.get("IRONCREST_DEV_URL", "http://127.0.0.1:8000").rstrip("/")
SYSTEM = "cluster-slurm-ssh"
USER, PASSWORD = "fireuser", "fireuser-password"
RESULTS = Path(os.environ.get("IRONCREST_UI_RESULTS", "/tmp/ironcrest-dev/ui-results"))
HOSTILE = "<script>alert('x')<script> \"q\" 🚀.txt"
WAIT = 30
# A staged upload waits for its transfer job, which polls S3 and is scheduled by Slurm.
TRANSFER_WAIT = 240

state = {}


@pytest.fixture(scope="module")
def browser():
    RESULTS.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="ironcrest-ui-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1280,900",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(RESULTS / "downloads"),
        "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(service=webdriver.ChromeService("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def wait(driver, timeout=WAIT):
    # The page rebuilds its tables when it refreshes them.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=[NoSuchElementException, StaleElementReferenceException])


def shot(driver, name):
    driver.save_screenshot(str(RESULTS / f"{name}.png"))


def row(driver, name):
    rows = driver.find_elements(By.CSS_SELECTOR, "#listing tbody tr")
    return next((r for r in rows if r.get_attribute("data-name") == name), None)


def wait_row(driver, name, timeout=WAIT):
    return wait(driver, timeout).until(lambda d: row(d, name))


def answer_prompt(driver, text):
    alert = wait(driver).until(EC.alert_is_present())
    if text is not None:
        alert.send_keys(text)
    alert.accept()


def open_folder(driver, path):
    driver.get(f"{BASE}/ui/#/files/{SYSTEM}?path={path}")
    wait(driver).until(lambda d: d.find_elements(By.ID, "listing"))


def test_login_through_the_idp_page(browser):
    browser.get(f"{BASE}/ui/")
    wait(browser).until(EC.element_to_be_clickable((By.ID, "sign-in")))
    shot(browser, "01-signed-out")
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "password")))
    assert urlparse(browser.current_url).port != urlparse(BASE).port, "the IdP's own page"
    shot(browser, "02-idp-login")
    browser.find_element(By.ID, "username").send_keys(USER)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "user") and d.find_element(By.ID, "user").text == USER)
    assert "code=" not in browser.current_url and "token" not in browser.current_url
    session_cookie = browser.get_cookie("ironcrest_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    # No token is in the page: the session cookie is opaque and unreadable to scripts.
    assert "ironcrest_session" not in browser.execute_script("return document.cookie")
    assert "eyJ" not in browser.page_source


def test_first_load_is_small_and_quick(browser):
    """Loads the signed-in page fresh and records what the Performance API saw."""
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    browser.get(f"{BASE}/ui/#/systems")
    wait(browser).until(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"))
    measured = browser.execute_script("""
        const nav = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource');
        const ready = performance.getEntriesByName('ironcrest-ready')[0];
        return {
          documentBytes: nav.transferSize,
          resourceBytes: resources.reduce((sum, r) => sum + r.transferSize, 0),
          resources: resources.map((r) => [r.name, r.transferSize, r.initiatorType]),
          domInteractiveMs: nav.domInteractive,
          readyMs: ready ? ready.startTime : null,
        };
    """)
    browser.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": False})
    measured["totalBytes"] = measured["documentBytes"] + measured["resourceBytes"]
    (RESULTS / "metrics.json").write_text(json.dumps(measured, indent=2))
    # Every resource came from this server.
    for name, _, _ in measured["resources"]:
        assert name.startswith(BASE), name
    wait(browser).until(lambda d: SYSTEM in d.find_element(By.CSS_SELECTOR, ".card h2").text)
    shot(browser, "03-systems")


def test_browse_to_a_new_folder(browser):
    folder = f"ui-test-{uuid.uuid4().hex[:8]}"
    home = f"/home/{USER}"
    open_folder(browser, home)
    browser.find_element(By.ID, "mkdir").click()
    answer_prompt(browser, folder)
    link = wait_row(browser, folder).find_element(By.CSS_SELECTOR, "a.name")
    link.click()
    wait(browser).until(lambda d: d.find_element(By.ID, "path").get_attribute("value") == f"{home}/{folder}")
    state["folder"] = f"{home}/{folder}"
    assert browser.find_elements(By.CSS_SELECTOR, "#listing tbody tr") == []


def upload(browser, name, size):
    path = Path(tempfile.mkdtemp(prefix="ironcrest-ui-")) / name
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    browser.find_element(By.ID, "upload-input").send_keys(str(path))
    return path


def test_upload_a_small_file(browser):
    upload(browser, "small.bin", 12345)
    wait(browser).until(lambda d: row(d, "small.bin"))
    cell = row(browser, "small.bin").find_element(By.CSS_SELECTOR, "td[data-size]")
    assert cell.get_attribute("data-size") == "12345"
    assert cell.text == "12.1 KiB"


def test_upload_a_large_file_through_the_staging_area(browser):
    size = 5 * 1024 * 1024 + 4321  # past max_ops_file_size: staged through S3, in two parts
    upload(browser, "large.bin", size)
    wait(browser).until(lambda d: "transfer job" in d.find_element(By.CSS_SELECTOR, ".uploads").text)
    shot(browser, "04-staged-upload")
    wait(browser, TRANSFER_WAIT).until(lambda d: row(d, "large.bin"))
    cell = row(browser, "large.bin").find_element(By.CSS_SELECTOR, "td[data-size]")
    assert cell.get_attribute("data-size") == str(size)


def test_a_hostile_name_shows_literally(browser):
    """Uploaded by the page's own session through the JSON API (chromedriver cannot type
    an emoji into a file chooser), then listed: as text, never as HTML."""
    folder = state["folder"]
    status = browser.execute_async_script("""
        const [name, folder, done] = arguments;
        fetch('/ui/session').then((r) => r.json()).then((s) => {
          const form = new FormData();
          form.append('file', new Blob(['hostile\\n']), name);
          return fetch(`/filesystem/cluster-slurm-ssh/ops/upload?path=${encodeURIComponent(folder)}`,
            { method: 'POST', body: form, headers: { 'X-CSRF-Token': s.csrfToken } });
        }).then((r) => done(r.status), (e) => done(String(e)));
    """, HOSTILE, folder)
    assert status == 204
    open_folder(browser, folder)
    hostile = wait_row(browser, HOSTILE)
    assert hostile.find_element(By.CSS_SELECTOR, "a.name").text == HOSTILE
    assert browser.find_elements(By.CSS_SELECTOR, "#listing script") == []
    shot(browser, "05-files")


def test_a_state_changing_call_without_the_csrf_token_is_refused(browser):
    status = browser.execute_async_script("""
        const done = arguments[0];
        fetch('/filesystem/cluster-slurm-ssh/ops/mkdir', { method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ path: '/home/fireuser/csrf-should-not-exist' }) })
          .then((r) => done(r.status), (e) => done(String(e)));
    """)
    assert status == 403


def test_open_rename_and_delete(browser):
    folder = state["folder"]
    open_folder(browser, folder)
    wait_row(browser, HOSTILE).find_element(By.CSS_SELECTOR, "a.name").click()
    content = wait(browser).until(EC.presence_of_element_located((By.ID, "file-content")))
    wait(browser).until(lambda d: content.text == "hostile")
    shot(browser, "06-file-view")

    open_folder(browser, folder)
    wait_row(browser, "small.bin").find_element(By.CSS_SELECTOR, "[data-action=rename]").click()
    answer_prompt(browser, "renamed.bin")
    wait(browser, TRANSFER_WAIT).until(lambda d: row(d, "renamed.bin") and not row(d, "small.bin"))
    assert row(browser, "renamed.bin").find_element(By.CSS_SELECTOR, "td[data-size]").get_attribute("data-size") == "12345"

    row(browser, "renamed.bin").find_element(By.CSS_SELECTOR, "[data-action=delete]").click()
    answer_prompt(browser, None)
    wait(browser).until(lambda d: not row(d, "renamed.bin"))


def submit_job(browser, name, script):
    browser.get(f"{BASE}/ui/#/submit/{SYSTEM}")
    wait(browser).until(EC.presence_of_element_located((By.ID, "submit-form")))
    browser.find_element(By.ID, "job-name").clear()
    browser.find_element(By.ID, "job-name").send_keys(name)
    workdir = browser.find_element(By.ID, "job-workdir")
    workdir.clear()
    workdir.send_keys(state["folder"])
    text = browser.find_element(By.ID, "job-script-input")
    text.clear()
    text.send_keys(script)
    browser.find_element(By.ID, "submit-job").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "job-state")))
    return browser.current_url.rsplit("/", 1)[-1]


def job_state(browser):
    return browser.find_element(By.CSS_SELECTOR, "#job-state .state").text


def test_submit_a_job_and_see_its_states_and_output(browser):
    submit_job(browser, "ui-hello", "#!/bin/bash\necho start-$((6*7))\nsleep 4\necho end-of-job\n")
    shot(browser, "07-job-running")
    seen = set()

    def ended(d):
        seen.add(job_state(d))
        return "COMPLETED" in seen

    wait(browser, TRANSFER_WAIT).until(ended)
    assert seen & {"PENDING", "RUNNING"}, seen
    wait(browser).until(lambda d: "end-of-job" in d.find_element(By.ID, "job-stdout").text)
    assert "start-42" in browser.find_element(By.ID, "job-stdout").text
    assert "echo end-of-job" in browser.find_element(By.ID, "job-script").text
    assert not browser.find_element(By.ID, "cancel-job").is_displayed()
    shot(browser, "08-job-completed")


def test_cancel_a_job(browser):
    job_id = submit_job(browser, "ui-sleeper", "#!/bin/bash\nsleep 300\n")
    wait(browser).until(lambda d: d.find_element(By.ID, "cancel-job").is_displayed())
    browser.find_element(By.ID, "cancel-job").click()
    answer_prompt(browser, None)
    wait(browser, 60).until(lambda d: job_state(d) == "CANCELLED")
    browser.get(f"{BASE}/ui/#/jobs/{SYSTEM}")
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#jobs tr[data-job='{job_id}']"))
    shot(browser, "09-jobs")
    browser.get(f"{BASE}/ui/#/transfers/{SYSTEM}")
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#transfers tbody tr"))
    shot(browser, "10-transfers")


def test_phone_width(browser):
    browser.set_window_size(390, 844)
    open_folder(browser, state["folder"])
    width = browser.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide at a 390px viewport"
    shot(browser, "11-phone-files")
    browser.set_window_size(1280, 900)


def test_logout_is_refused_after(browser):
    browser.get(f"{BASE}/ui/#/systems")
    wait(browser).until(EC.element_to_be_clickable((By.ID, "sign-out")))
    status = browser.execute_async_script("""
        const [folder, done] = arguments;
        fetch('/ui/session').then((r) => r.json()).then((s) =>
          fetch(`/filesystem/cluster-slurm-ssh/ops/rm?path=${encodeURIComponent(folder)}`,
            { method: 'DELETE', headers: { 'X-CSRF-Token': s.csrfToken } }))
          .then((r) => done(r.status), (e) => done(String(e)));
    """, state["folder"])
    assert status == 204
    wait(browser).until(EC.element_to_be_clickable((By.ID, "sign-out"))).click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "sign-in")))
    shot(browser, "12-signed-out")
    status = browser.execute_async_script("""
        const done = arguments[0];
        fetch('/status/systems').then((r) => done(r.status), (e) => done(String(e)));
    """)
    assert status == 401
    browser.get(f"{BASE}/ui/#/files/{SYSTEM}")
    wait(browser).until(EC.presence_of_element_located((By.ID, "sign-in")))
    assert not browser.find_elements(By.ID, "listing")
