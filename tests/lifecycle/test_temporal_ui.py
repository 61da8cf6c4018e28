"""An operator in a real browser: find a parked delivery in the Temporal Web UI, read why, fix it from the UI.

Headless Chromium (Debian's `chromium`, never a downloaded browser build) is driven by Playwright against the
Web UI of the session's Temporal dev server. Screenshots go to the test's tmp dir, and to docs/images/ with
SAVE_UI_SCREENSHOTS=1 (the runbook, docs/operations.md, shows them).
"""

import asyncio
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.lifecycle import create, parked
from tests.support.robots import RobotDriver
from tests.support.waiting import wait_status
from workflows.delivery import workflow_id

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
UI_TIMEOUT_MS = 20_000
NEEDS_OPERATOR_QUERY = 'DeliveryStatus="NEEDS_OPERATOR"'

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing: `apt-get install chromium chromium-driver` (.ci/run does it) to run this test")
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="playwright is missing: install the project with its test extras")
expect = playwright_api.expect
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture
async def browser_page():
    """A 1280x800 page in headless Chromium."""
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(UI_TIMEOUT_MS)
        yield page
        await browser.close()


class Shots:
    """Screenshots into the test's tmp dir, copied to docs/images/ when SAVE_UI_SCREENSHOTS=1."""

    def __init__(self, page, directory: Path):
        self.page, self.directory, self.taken = page, directory, []

    async def take(self, name: str) -> Path:
        path = self.directory / f"{name}.png"
        await self.page.screenshot(path=path)
        assert path.stat().st_size > 10_000, f"{path} looks blank"
        self.taken.append(path)
        if os.environ.get("SAVE_UI_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, DOCS_IMAGES / path.name)
        return path


async def open_list(page, url: str, wid: str, listed: bool, attempts: int = 20) -> None:
    """Open a workflow list; reload until `wid` is (or is no longer) in it, as visibility may lag a moment."""
    link = page.get_by_role("link", name=wid, exact=True)
    await page.goto(url)
    for _ in range(attempts):
        await expect(page.get_by_role("table", name="Workflows")).to_be_visible()
        try:
            await expect(link).to_have_count(1 if listed else 0, timeout=1_000)
            return
        except AssertionError:
            await page.reload()
    raise AssertionError(f"{wid} {'never appeared in' if listed else 'stayed in'} {url}")


async def test_an_operator_finds_a_parked_delivery_in_the_ui_and_redispatches_it_from_there(
        market, lifecycle_policy, temporal_ui_url, browser_page, tmp_path):
    page, shots = browser_page, Shots(browser_page, tmp_path)
    lifecycle_policy(no_robot_action="park", robot_search_seconds=1)
    await market.add_pilot()
    delivery_id = await create(market)
    await parked(market.platform, delivery_id, "no robot available")
    wid = workflow_id(delivery_id)
    namespace = market.platform.client.namespace

    # The bookmarked saved view: every parked delivery, here narrowed to this test's market.
    query = f'{NEEDS_OPERATOR_QUERY} AND Market="{market.market.name}"'
    saved_view = f"{temporal_ui_url}/namespaces/{namespace}/workflows?query={quote(query)}"
    await open_list(page, saved_view, wid, listed=True)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=wid, exact=True))
    await expect(row).to_have_count(1)
    await expect(row.get_by_role("cell", name="Running", exact=True)).to_be_visible()
    await expect(row.get_by_role("cell", name="DeliveryWorkflow", exact=True)).to_be_visible()
    await shots.take("temporal-ui-needs-operator")
    # The plain query lists it too (with any other parked delivery of the session).
    await open_list(page, f"{temporal_ui_url}/namespaces/{namespace}/workflows?query={quote(NEEDS_OPERATOR_QUERY)}",
                    wid, listed=True)

    # Its page: id and type, and the current details that say why it waits.
    await page.get_by_role("link", name=wid, exact=True).click()
    await expect(page.get_by_role("heading", name=wid)).to_be_visible()
    await expect(page.get_by_role("link", name="DeliveryWorkflow", exact=True)).to_be_visible()
    await page.get_by_role("tab", name="User Metadata").click()
    await expect(page.get_by_role("heading", name="Current Details")).to_be_visible()
    # The UI renders the summary's and the current details' markdown each in its own iframe; details come last.
    current = page.locator("iframe").last.content_frame
    await expect(current.get_by_text("attention: no robot available")).to_be_visible()
    await expect(current.get_by_text("NEEDS_OPERATOR", exact=True)).to_be_visible()  # **bold** in the markdown
    await shots.take("temporal-ui-current-details")

    # A robot is deployed; the operator sends `redispatch` from the UI's More Actions → Send an Update.
    robot = await market.add_robot()
    action = {"operator": "ana", "note": "robot deployed in the market", "robot_id": robot}
    await page.get_by_role("button", name="More Actions").click()
    await page.get_by_role("menuitem", name="Send an Update").click()
    dialog = page.get_by_role("dialog").filter(has_text="Send an Update")
    await dialog.get_by_test_id("update-select-button").click()
    await dialog.get_by_role("option", name="redispatch", exact=True).click()
    editor = dialog.get_by_role("textbox", name="Data")
    await editor.click()
    await page.keyboard.insert_text(json.dumps(action))
    await editor.blur()  # leaving the editor formats the JSON, which moves the Submit button
    await expect(editor).to_contain_text('"robot_id": "' + robot)
    await shots.take("temporal-ui-send-update")
    await dialog.get_by_role("button", name="Submit").click()
    await expect(dialog).to_be_hidden()

    # The workflow took the decision: it leaves NEEDS_OPERATOR and the robot drives the order to the customer.
    view = await wait_status(market.platform, delivery_id, "robot_assigned")
    assert view["attention"] is None and view["robot_id"] == robot
    assert view["operator_actions"][0] | {"at": None} == {
        "action": "redispatch", "operator": "ana", "note": action["note"], "robot_id": robot, "reason": None,
        "at": None, "attention": "no robot available"}
    driver = RobotDriver(market, robot)
    await driver.to_pickup(delivery_id)
    await driver.load_and_go()
    await driver.hand_over()
    handle = market.platform.client.get_workflow_handle(wid)
    result = await asyncio.wait_for(handle.result(), 60)
    assert result["status"] == "delivered"

    # The UI shows it completed, and the saved view no longer lists it.
    await page.reload()
    await expect(page.get_by_role("status").filter(has_text=re.compile(r"^\s*Completed\s*$"))).to_be_visible()
    current = page.locator("iframe").last.content_frame
    await expect(current.get_by_text("delivered", exact=True)).to_be_visible()
    await expect(current.get_by_text(f"robot {robot}")).to_be_visible()
    await shots.take("temporal-ui-completed")
    await open_list(page, saved_view, wid, listed=False)
    assert len(shots.taken) == 4
