"""The web dashboard in a real browser (Debian's headless Chromium through Selenium) against the running
stack: sign in with a key, the queue updating live, a job's page (output, timeline, cost), costs, fleet,
webhooks; a job named like markup shows as text and runs nothing; no console error and no
Content-Security-Policy violation; a second organization sees none of the first's jobs; the session
survives a reload and ends with the tab.

Parts served by endpoints this gateway does not have yet must show their "not available" state; once the
endpoint answers, the same test checks the real content instead. Screenshots of each page are saved to
``$GPUFLEET_DASHBOARD_SHOTS`` (default: the test state folder's ``dashboard-shots``).

Without Chromium (``/usr/bin/chromium``, ``/usr/bin/chromedriver``) the module is skipped, unless
``GPUFLEET_REQUIRE_BROWSER=1`` (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import client, wait_status

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,1000",
    "--lang=en-US",
)
XSS = "<img src=x onerror=alert(1)>"
WAIT = 90.0
# The tests that present a wrong key on purpose (its 401 is on the console).
ALLOW_401 = {
    "test_a_wrong_key_is_refused_and_a_right_one_signs_in",
    # /v1/me refuses the operator token before the dashboard finds it is one.
    "test_the_operator_token_signs_in_to_the_whole_fleet",
}


def _missing_browser() -> list[str]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[dev]')")
    return missing


MISSING = _missing_browser()
REQUIRED = os.environ.get("GPUFLEET_REQUIRE_BROWSER") == "1"
WHY = (
    f"browser tests need Chromium: missing {', '.join(MISSING)} (apt-get install -y chromium chromium-driver)"
)
# Skipped before the stack starts; with GPUFLEET_REQUIRE_BROWSER=1 the browser fixture fails instead.
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(MISSING) and not REQUIRED, reason=WHY)]


def _require_browser() -> None:
    if MISSING:
        pytest.fail(WHY + "; GPUFLEET_REQUIRE_BROWSER=1 makes that a failure")


# ----------------------------------------------------------------------------- the browser


@dataclass
class Browser:
    driver: Any
    base: str
    shots: Path
    seen: list[dict[str, Any]] = field(default_factory=list)

    def open(self, path: str = "/ui/") -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self, selector: str) -> str:
        found = self.css(selector)
        return str(found[0].text) if found else ""

    async def until(self, what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Polls ``check`` (a quick browser query) until it is truthy, yielding to the event loop between
        polls; a stale element (the page re-rendered under it) counts as not yet."""
        from selenium.common.exceptions import StaleElementReferenceException

        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except StaleElementReferenceException:
                last = None
            if last:
                return last
            await asyncio.sleep(0.25)
        self.shot(f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower())}")
        raise AssertionError(f"the dashboard never showed {what} within {timeout:.0f}s; last: {last!r}")

    def shot(self, name: str) -> Path:
        """A PNG of the whole page (beyond the window), through the DevTools protocol."""
        self.shots.mkdir(parents=True, exist_ok=True)
        path = self.shots / f"{name}.png"
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 6000), "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def drain(self) -> list[dict[str, Any]]:
        entries = list(self.driver.get_log("browser"))
        self.seen += entries
        return entries

    def sign_in(self, key: str) -> None:
        from selenium.webdriver.common.by import By

        box = self.driver.find_element(By.ID, "api-key")
        box.clear()
        box.send_keys(key)
        self.driver.find_element(By.ID, "signin-submit").click()


_NOT_FOUND_LOAD = re.compile(r"^(\S+) - Failed to load resource: the server responded with a status of 404")
_UNAUTHORIZED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of 401")
_CSP = re.compile(
    r"Content Security Policy|Content-Security-Policy|Trusted ?Types?|TrustedHTML|TrustedScript|Refused to",
    re.IGNORECASE,
)


def problems_in(
    entries: list[dict[str, Any]], expected_404: Callable[[str], bool], allow_401: bool = False
) -> list[str]:
    """Every console entry that is an error or a CSP report, except the 404s of endpoints this gateway
    does not serve (and of a job's cost before billing recorded it)."""
    bad = []
    for entry in entries:
        message = str(entry.get("message", ""))
        if _CSP.search(message):
            bad.append(message)
            continue
        if entry.get("level") != "SEVERE":
            continue
        found = _NOT_FOUND_LOAD.match(message)
        if found and expected_404(httpx.URL(found.group(1)).path):
            continue
        if allow_401 and _UNAUTHORIZED_LOAD.search(message):
            continue
        bad.append(message)
    return bad


@pytest.fixture(scope="module")
def browser(stack, state_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:  # type: ignore[no-untyped-def]
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    shots = Path(os.environ.get("GPUFLEET_DASHBOARD_SHOTS") or state_dir / "dashboard-shots")
    try:
        yield Browser(driver, stack.gateway_url, shots)
    finally:
        driver.quit()


# ----------------------------------------------------------------------------- the data


@dataclass
class World:
    key_a: str
    key_b: str
    org_a: str
    org_b: str
    served: dict[str, bool]
    hook_url: str
    jobs: dict[str, str] = field(default_factory=dict)

    def expected_404(self, path: str) -> bool:
        if re.fullmatch(r"/v1/jobs/[0-9a-f-]+/cost", path):
            return True  # a job's cost before billing recorded it
        if re.fullmatch(r"/v1/jobs/[0-9a-f-]+/logs", path):
            return not self.served["logs"]
        return {
            "/v1/events": not self.served["events"],
            "/v1/nodes": not self.served["nodes"],
            "/v1/costs/summary": not self.served["summary"],
            "/v1/utilization/series": not self.served["series"],
        }.get(path, False)


async def _served(api: httpx.AsyncClient, path: str, **params: str) -> bool:
    """Whether the gateway has this route (``path`` below /v1, as the helpers' client is based there)."""
    async with api.stream("GET", path, params=params) as response:
        return response.status_code != 404


@pytest.fixture(scope="module")
async def world(stack, receiver) -> AsyncIterator[World]:  # type: ignore[no-untyped-def]
    a = await stack.create_organization("Initech Vision", "peter@initech.example", "Peter")
    b = await stack.create_organization("Umbrella Labs", "alice@umbrella.example", "Alice")
    async with client(stack, a.api_key.secret) as api:
        hook = await api.post("/webhooks", json={"url": f"{receiver.url}/dashboard", "events": []})
        assert hook.status_code == 201, hook.text
        served = {
            "events": await _served(api, "/events"),
            "nodes": await _served(api, "/nodes"),
            "summary": await _served(api, "/costs/summary", group_by="day"),
            "series": await _served(api, "/utilization/series"),
            "logs": False,  # probed with the first job
        }
    yield World(
        a.api_key.secret,
        b.api_key.secret,
        a.organization.name,
        b.organization.name,
        served,
        f"{receiver.url}/dashboard",
    )


@pytest.fixture(autouse=True)
def clean_console(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: no console error, no CSP report (beyond the expected 404s of unserved parts)."""
    yield
    if "browser" not in request.fixturenames or "world" not in request.fixturenames:
        return
    b: Browser = request.getfixturevalue("browser")
    w: World = request.getfixturevalue("world")
    allow_401 = request.node.name in ALLOW_401
    bad = problems_in(b.drain(), w.expected_404, allow_401=allow_401)
    assert not bad, "console errors:\n" + "\n".join(bad)


# ----------------------------------------------------------------------------- the tests


async def test_pages_carry_a_strict_csp(stack) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=stack.gateway_url) as http:
        root = await http.get("/")
        page = await http.get("/ui/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_a_wrong_key_is_refused_and_a_right_one_signs_in(browser: Browser, world: World) -> None:
    browser.open("/")
    await browser.until("the sign-in form", lambda: browser.css("#signin-form"))
    browser.shot("0-sign-in")
    browser.sign_in("gpf_not_a_real_key")
    await browser.until("the refusal", lambda: "not accepted" in browser.text("#signin-error"))
    browser.sign_in(world.key_a)
    await browser.until("the organization's name", lambda: browser.text("#org-name") == world.org_a)
    assert browser.driver.current_url.endswith("/ui/#/queue")
    # Nothing is kept in a cookie; the key is in this tab's session storage only.
    assert browser.driver.get_cookies() == []
    assert browser.driver.execute_script("return sessionStorage.getItem('gpufleet.apiKey')") == world.key_a
    assert browser.driver.execute_script("return localStorage.length") == 0


async def test_the_queue_shows_a_job_and_its_state_changing_live(
    stack, browser: Browser, world: World
) -> None:  # type: ignore[no-untyped-def]
    browser.open("/ui/#/queue")
    await browser.until("the queue", lambda: browser.css("#queue-table"))
    expected_live = "live" if world.served["events"] else "unavailable"
    await browser.until(
        f"the stream state {expected_live}", lambda: browser.css(f"#live-state[data-state='{expected_live}']")
    )
    browser.driver.execute_script("window.__sameDocument = 'yes'")

    async with client(stack, world.key_a) as api:
        r = await api.post(
            "/jobs",
            json={
                "name": "resnet-finetune",
                "command": "echo dashboard-output-line-1; sleep 8; echo dashboard-output-line-2",
                "gpu_count": 1,
            },
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        world.jobs["live"] = job_id
        world.served["logs"] = await _served(api, f"/jobs/{job_id}/logs")

    row = f"tr[data-job-id='{job_id}']"
    first = await browser.until(
        "the new job's row", lambda: browser.css(row) and browser.css(row)[0].get_attribute("data-state")
    )
    assert first in {"queued", "scheduled", "running"}, first
    await browser.until(
        "the job succeeding", lambda: browser.css(f"{row}[data-state='succeeded']"), timeout=120
    )
    assert browser.text(f"{row} .job-link") == "resnet-finetune"

    # A held job waits: the queue says why, and where it stands.
    async with client(stack, world.key_a) as api:
        r = await api.post(
            "/jobs", json={"name": "nightly-eval", "command": "echo later", "gpu_count": 1, "hold": True}
        )
        assert r.status_code == 201, r.text
        held = r.json()
        world.jobs["held"] = held["id"]
    held_row = f"tr[data-job-id='{held['id']}'][data-state='queued']"
    await browser.until("the held job's row", lambda: browser.css(held_row))
    async with client(stack, world.key_a) as api:
        position = (await api.get(f"/jobs/{held['id']}")).json()["queue_position"]
    # A held job is out of the running: no position (a number for those that wait their turn).
    await browser.until(
        "the held job's position",
        lambda: browser.text(f"{held_row} td.num") == ("—" if position is None else str(position)),
    )
    reason = browser.text(f"{held_row} td.reason")
    assert reason and (held["pending_reason"] or {}).get("code", "held") in reason, reason
    # The page changed under the same document: no reload, no navigation.
    assert browser.driver.execute_script("return window.__sameDocument") == "yes"
    browser.shot("1-queue")


async def test_the_job_page_shows_output_timeline_and_cost(browser: Browser, world: World) -> None:
    job_id = world.jobs["live"]

    def click_the_row() -> bool:
        browser.css(f"tr[data-job-id='{job_id}'] .job-link")[0].click()  # the row may be redrawn: retried
        return True

    await browser.until("a click on the job's row", click_the_row)
    await browser.until("the job page", lambda: browser.text("#job-name") == "resnet-finetune")
    assert (
        browser.text("#job-command") == "echo dashboard-output-line-1; sleep 8; echo dashboard-output-line-2"
    )
    await browser.until(
        "the job's output",
        lambda: "dashboard-output-line-1\ndashboard-output-line-2" in browser.text("#job-output"),
    )
    if not world.served["logs"]:
        assert browser.css("[data-unavailable='GET /v1/jobs/{id}/logs']")
    statuses = await browser.until(
        "the timeline",
        lambda: [li.get_attribute("data-status") for li in browser.css("#job-timeline li")],
    )
    assert statuses[0] == "queued" and statuses[-1] == "succeeded" and "running" in statuses, statuses
    cost = await browser.until("the job's cost", lambda: browser.text("#job-cost .money"))
    assert re.fullmatch(r"\$\d+\.\d{2,4}", cost), cost
    browser.shot("2-job")


async def test_the_costs_page(browser: Browser, world: World) -> None:
    browser.open("/ui/#/costs")
    job_id = world.jobs["live"]
    await browser.until(
        "the job in recent costs", lambda: browser.css(f"#recent-costs tr[data-job-id='{job_id}']")
    )
    if world.served["summary"]:
        await browser.until("the chart by day", lambda: browser.css("#cost-by-day svg rect.bar"))
        await browser.until("the chart by GPU type", lambda: browser.css("#cost-by-type svg rect.bar"))
        assert browser.text("#cost-tiles .tile .value").startswith("$")
    else:
        await browser.until(
            "the summary's not-available state", lambda: browser.css("#cost-by-day [data-unavailable]")
        )
    browser.shot("3-costs")


async def _utilization_evidence(stack, world: World) -> str:  # type: ignore[no-untyped-def]
    """What the API says of organization A's utilization and of its live job, for a failure message:
    a heatmap that never shows is told apart as no samples, samples not attributed, or a page fault."""
    async with client(stack, world.key_a) as api:
        job = (await api.get(f"/jobs/{world.jobs['live']}")).json()
        series = await api.get("/utilization/series")
        averages = await api.get("/utilization", params={"hours": 1})
    fields = ("status", "gpu_ids", "node_id", "scheduled_at", "started_at", "finished_at", "attempt")
    return (
        f"live job: { {k: job.get(k) for k in fields} }; "
        f"series {series.status_code}: {series.text[:1500]}; averages {averages.status_code}: {averages.text[:800]}"
    )


async def test_the_fleet_page(stack, browser: Browser, world: World) -> None:  # type: ignore[no-untyped-def]
    browser.open("/ui/#/fleet")
    await browser.until("the GPUs", lambda: len(browser.css("#fleet-nodes .gpu")) == 2)
    assert browser.text("#fleet-tiles .tile .value") == "2"
    if world.served["nodes"]:
        assert browser.css("#fleet-nodes .node[data-node-id] header .badge")
    else:
        assert browser.css("#fleet-nodes [data-unavailable='GET /v1/nodes']")
    if world.served["series"]:
        try:
            await browser.until(
                "the utilization heatmap", lambda: browser.css("#utilization-heatmap svg.heatmap rect.cell")
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; {await _utilization_evidence(stack, world)}") from None
    else:
        await browser.until(
            "the series' not-available state", lambda: browser.css("#utilization-heatmap [data-unavailable]")
        )
        await browser.until(
            "the average utilization bars", lambda: browser.css("#utilization-heatmap svg rect.bar")
        )
    browser.shot("4-fleet")


async def test_the_webhooks_page_shows_deliveries_and_attempts(browser: Browser, world: World) -> None:
    browser.open("/ui/#/webhooks")
    await browser.until("the webhook", lambda: world.hook_url in browser.text("#webhooks"))
    job_id = world.jobs["live"]
    link = f"#deliveries a[href='#/jobs/{job_id}']"
    await browser.until("a delivery about the job", lambda: browser.css(link))
    browser.css("#deliveries details summary")[0].click()
    await browser.until("the attempt log", lambda: "HTTP 204" in browser.text("#deliveries details[open]"))
    browser.shot("5-webhooks")


async def test_markup_in_a_job_is_shown_as_text_and_runs_nothing(
    stack, browser: Browser, world: World
) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoAlertPresentException

    command = f"echo '{XSS}'"
    async with client(stack, world.key_a) as api:
        r = await api.post("/jobs", json={"name": XSS, "command": command, "gpu_count": 1})
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        await wait_status(api, job_id, {"succeeded"}, timeout=120)
    world.jobs["xss"] = job_id
    browser.open("/ui/#/queue")
    await browser.until("the job's row", lambda: browser.text(f"tr[data-job-id='{job_id}'] .job-link") == XSS)
    assert browser.css("img[src='x']") == []
    browser.open(f"/ui/#/jobs/{job_id}")
    await browser.until("the job page", lambda: browser.text("#job-name") == XSS)
    assert browser.text("#job-command") == command
    await browser.until("the output, as text", lambda: XSS in browser.text("#job-output"))
    assert browser.css("img[src='x']") == []
    with pytest.raises(NoAlertPresentException):
        browser.driver.switch_to.alert.text  # noqa: B018
    browser.shot("6-job-with-markup")


async def test_the_csp_blocks_html_from_strings_and_the_console_check_sees_it(
    browser: Browser, world: World
) -> None:
    """A positive control: a string written to innerHTML throws (Trusted Types) and is reported on the
    console, where the autouse check would have caught any such report from the dashboard itself."""
    from selenium.common.exceptions import JavascriptException

    browser.drain()
    with pytest.raises(JavascriptException, match="TrustedHTML"):
        browser.driver.execute_script("document.querySelector('#page').innerHTML = '<b>x</b>'")
    reported = problems_in(browser.drain(), world.expected_404)
    assert reported and all(_CSP.search(m) for m in reported), reported


async def test_a_second_organization_sees_none_of_the_first(browser: Browser, world: World) -> None:
    browser.open("/ui/#/queue")
    await browser.until("the signed-in shell", lambda: browser.css("#sign-out"))
    browser.css("#sign-out")[0].click()
    await browser.until("the sign-in form", lambda: browser.css("#signin-form"))
    browser.sign_in(world.key_b)
    await browser.until("the second organization", lambda: browser.text("#org-name") == world.org_b)
    for page, ready in (
        ("queue", "#queue-table"),
        ("costs", "#recent-costs table, #recent-costs .empty"),
        ("webhooks", "#deliveries table, #deliveries .empty"),
        ("fleet", "#fleet-nodes .gpu"),
    ):
        browser.open(f"/ui/#/{page}")
        await browser.until(f"the {page} page", lambda ready=ready: browser.css(ready))
        source = browser.driver.page_source
        for job_id in world.jobs.values():
            assert job_id not in source, (page, job_id)
        assert (
            "resnet-finetune" not in source and "nightly-eval" not in source and world.hook_url not in source
        )
    browser.open("/ui/#/queue")
    await browser.until("an empty queue", lambda: browser.css("#queue-table .empty"))


async def test_a_reload_keeps_the_session_and_closing_the_tab_ends_it(browser: Browser, world: World) -> None:
    driver = browser.driver
    browser.open("/ui/#/costs")
    await browser.until("the signed-in shell", lambda: browser.text("#org-name") == world.org_b)
    driver.refresh()
    await browser.until("the session after a reload", lambda: browser.text("#org-name") == world.org_b)
    assert browser.css("#signin-form") == []

    first = driver.current_window_handle
    driver.switch_to.new_window("tab")  # a new tab has its own, empty, session storage
    browser.open("/ui/")
    await browser.until("the sign-in form in a new tab", lambda: browser.css("#signin-form"))
    driver.switch_to.window(first)
    driver.close()  # the signed-in tab, and its session storage, are gone
    driver.switch_to.window(driver.window_handles[0])
    browser.open("/ui/#/queue")
    await browser.until("the sign-in form after the tab closed", lambda: browser.css("#signin-form"))
    assert driver.execute_script("return sessionStorage.length") == 0


async def test_the_operator_token_signs_in_to_the_whole_fleet(stack, browser: Browser, world: World) -> None:  # type: ignore[no-untyped-def]
    """The operator token, which /v1/me refuses, opens the operator's page: every node with its GPUs, a
    running job's GPU held by organization A's job, and none of the tenant pages."""
    async with client(stack, world.key_a) as api:
        org_a = (await api.get("/me")).json()["organization"]["id"]
        r = await api.post("/jobs", json={"name": "operator-sees", "command": "sleep 60", "gpu_count": 1})
        assert r.status_code == 201, r.text
        job = await wait_status(api, r.json()["id"], {"running"}, timeout=120)
    try:
        browser.open("/ui/")
        await browser.until("a page", lambda: browser.css("#signin-form, #sign-out"))
        if browser.css("#sign-out"):  # a tenant session of an earlier test: sign out of it first
            browser.css("#sign-out")[0].click()
            await browser.until("the sign-in form", lambda: browser.css("#signin-form"))
        browser.sign_in(stack.admin_token)
        await browser.until("the operator session", lambda: browser.text("#operator-session") == "Operator")
        assert browser.driver.current_url.endswith("/ui/#/operator")
        await browser.until(
            "the stack's node", lambda: browser.css(f"#operator-nodes [data-node-id='{job['node_id']}']")
        )
        [gpu_id] = job["gpu_ids"]
        holder = f"tr[data-gpu-id='{gpu_id}'] td.holder"
        cell = await browser.until("the job's GPU with its holder", lambda: browser.css(holder))
        assert cell[0].get_attribute("data-job-id") == job["id"]
        assert cell[0].get_attribute("data-organization-id") == org_a
        assert job["id"] in browser.text(holder)
        assert browser.css(f"tr[data-gpu-id='{gpu_id}']")[0].get_attribute("data-status") == "allocated"
        # No tenant page: neither in the navigation nor by its address.
        assert browser.css("a[data-nav='queue']") == [] and browser.css("#org-name") == []
        browser.open("/ui/#/queue")
        await browser.until(
            "the operator page again", lambda: browser.driver.current_url.endswith("#/operator")
        )
        browser.shot("7-operator-fleet")
        browser.css("#sign-out")[0].click()
        await browser.until("the sign-in form", lambda: browser.css("#signin-form"))
    finally:
        async with client(stack, world.key_a) as api:
            await api.post(f"/jobs/{job['id']}/cancel")


def test_problems_in_reads_chromium_console_entries() -> None:
    """The console check itself, on entries as ChromeDriver reports them."""
    entries = [
        {
            "level": "SEVERE",
            "message": "http://127.0.0.1:1/v1/nodes - Failed to load resource: the server responded with a status of 404 (Not Found)",
        },
        {
            "level": "SEVERE",
            "message": "http://127.0.0.1:1/v1/jobs - Failed to load resource: the server responded with a status of 404 (Not Found)",
        },
        {
            "level": "SEVERE",
            "message": "http://127.0.0.1:1/ui/js/main.js 12:3 Uncaught TypeError: x is undefined",
        },
        {
            "level": "INFO",
            "message": "http://127.0.0.1:1/ui/ - Refused to load the image 'http://evil/' because it violates the following Content Security Policy directive",
        },
        {"level": "WARNING", "message": "refresh failed"},
    ]
    bad = problems_in(entries, lambda path: path == "/v1/nodes")
    assert len(bad) == 3 and "v1/nodes" not in json.dumps(bad)
