"""The admin in a real browser (Debian's headless Chromium via Selenium and /usr/bin/chromedriver):
an operator logs in, finds a running order, sees its payment legs, intents and ledger entries, runs
"Stop market making" (cancels really happen on the simulator over loopback HTTP) and sees it stopped;
a staff user with view rights only gets no action. Screenshots: test-artifacts/admin_browser/.
"""
import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from orders.models import MarketMakingOrder, OrderState
from intents import ids
from strategy.tick import tick_run
from tests.factories import UserFactory
from tests.runtime_fixtures import BTC, USDT, make_running_order

pytestmark = [pytest.mark.slow]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "admin_browser"
WAIT_S = 20
PASSWORD = "browser-test-pw"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Chromium is not installed: run scripts/ensure_browser.sh (make test does)")
    profile = tempfile.mkdtemp(prefix="mm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def sync_driver(settings):
    """Intents are executed inside the tick (no worker), so a tick leaves orders open on the simulator."""
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8


def login(driver, base_url, username):
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{base_url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, "#user-tools")


def wait_for(driver, css):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))


def shot(driver, name):
    """A screenshot of the whole page (the window grows to the page's height for it)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 1000), 8000))
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def open_orders_of(sim, order):
    prefix = ids.client_order_prefix(order.order_id)
    client = sim.client(sim.accounts[0])
    return [o for o in client.fetch_open_orders("BTC/USDT") if o["clientOrderId"].startswith(prefix)]


def test_an_operator_stops_a_running_order_in_the_browser_and_a_viewer_cannot(
        live_server, sim, sync_driver, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # given a running order with its orders open on the simulator, an operator and a view-only staff user
    order = make_running_order(sim.accounts[0], layers=2)
    tick_run()
    assert len(open_orders_of(sim, order)) == 4
    UserFactory(username="operator", password=PASSWORD, superuser=True)
    UserFactory(username="viewer", password=PASSWORD, staff=True, permissions=["view_marketmakingorder"])
    base = live_server.url

    # when the operator logs in and finds the running order
    login(browser, base, "operator")
    browser.get(f"{base}/admin/orders/marketmakingorder/?state__exact=running")
    browser.find_element(By.LINK_TEXT, str(order.order_id)).click()
    legs = wait_for(browser, "#payment-legs")
    shot(browser, "1-order-page")
    # then its page shows the payment legs, its intents and its ledger entries
    assert f"base {BTC} 1 1 yes" in legs.text and f"quote {USDT} 40000 40000 yes" in legs.text
    intents = browser.find_element(By.ID, "order-intents").text
    assert intents.count("create") >= 4 and "done" in intents
    ledger = browser.find_element(By.ID, "order-ledger-entries").text
    assert ledger.count("lock_funds") == 2 and f"mm_order:{order.order_id}" in ledger

    # when it runs "Stop market making" on that order
    browser.get(f"{base}/admin/orders/marketmakingorder/?q={order.order_id}")
    browser.find_element(By.CSS_SELECTOR, f"input[name=_selected_action][value='{order.pk}']").click()
    Select(browser.find_element(By.NAME, "action")).select_by_visible_text("Stop market making")
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    message = wait_for(browser, "ul.messagelist li").text
    shot(browser, "2-after-stop")
    # then the admin says it stopped, the order page shows it stopped, and nothing is left open on the exchange
    assert f"{order.order_id}: stopped" in message
    browser.find_element(By.LINK_TEXT, str(order.order_id)).click()
    wait_for(browser, "#payment-legs")
    state = browser.find_element(By.CSS_SELECTOR, ".field-state .readonly").text
    shot(browser, "3-order-stopped")
    assert state == OrderState.STOPPED.label  # the admin shows the choice label, "Stopped"
    assert MarketMakingOrder.objects.get(pk=order.pk).state == OrderState.STOPPED
    assert open_orders_of(sim, order) == []

    # and a staff user with view rights only sees the orders but no action
    other = make_running_order(sim.accounts[0], session=False)
    login(browser, base, "viewer")
    browser.get(f"{base}/admin/orders/marketmakingorder/")
    wait_for(browser, "#result_list")
    shot(browser, "4-viewer-list")
    assert str(other.order_id) in browser.page_source
    assert browser.find_elements(By.NAME, "action") == []
    assert browser.find_elements(By.NAME, "_selected_action") == []
