"""The dashboard in a real headless Chromium: log in, filter, deploy and terminate a cluster through admin actions."""

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from nodeclusters.choices import NodeClusterState
from nodeclusters.models import Action
from nodeclusters.services import actions as action_services
from tests import factories
from tests.reconciler.conftest import converge

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RECONCILE_TASK = "nodeclusters.reconcile_node_cluster"
PASSWORD = "correct-horse-battery-staple"
CLUSTERS_PATH = "/admin/nodeclusters/nodecluster/"
WAIT_MS = 10_000  # any one page load or element; the whole scenario takes a few seconds


def _unavailable(reason: str):
    """Skip on a developer's machine; in CI the browser test must run, so a missing piece is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser test cannot run in CI: {reason} (.ci/browser installs Chromium)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not CHROMIUM.exists():
    _unavailable(f"{CHROMIUM} is missing; run .ci/browser")
try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:
    _unavailable("the playwright package is not installed (requirements-dev.txt)")


@pytest.fixture
def engine_hand_offs(monkeypatch) -> list[tuple[str, list[str]]]:
    """Engine hand-offs recorded instead of queued: the test drives the engine itself, and no broker is needed."""
    sent = []
    monkeypatch.setattr(action_services, "_enqueue", lambda task_name, args: sent.append((task_name, args)))
    return sent


@pytest.fixture
def instant_simulated_cloud(settings):
    settings.SIMULATE_PROVIDERS = True
    settings.SIMULATED_BOOT_SECONDS = 0
    settings.SIMULATED_FAILURE_RATE = 0.0
    settings.SIMULATED_SEED = "tests"


@pytest.fixture
def page(monkeypatch):
    """A fresh headless Chromium page, with explicit timeouts on every wait."""
    # Playwright's sync API runs an event loop in this thread, which trips Django's guard against ORM calls from
    # async code when the test itself then queries the database.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.set_default_navigation_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            yield page
        finally:
            browser.close()


def cluster_row(page, name: str):
    return page.locator("#result_list tbody tr").filter(has_text=name)


def run_action(page, name: str, label: str) -> None:
    """Tick a cluster's box on the list, pick an action from the dropdown and press Go."""
    cluster_row(page, name).locator("input.action-select").check()
    page.select_option("select[name=action]", label=label)
    with page.expect_navigation():
        page.locator("button[name=index], input[name=index]").first.click()


def test_operator_deploys_and_terminates_a_cluster_from_the_dashboard(
    live_server, transactional_db, instant_simulated_cloud, engine_hand_offs, page, tmp_path
):
    get_user_model().objects.create_superuser("operator", "operator@example.test", PASSWORD)
    owner = factories.make_user("alice")
    cluster = factories.make_cluster(owner, name="init-cluster")
    deployed = factories.deploy(factories.make_cluster(owner, name="deployed-cluster"))
    assert converge(deployed.uuid).state == NodeClusterState.DEPLOYED
    engine_hand_offs.clear()
    static_responses = []
    page.on("response", lambda response: "/static/" in response.url and static_responses.append(response))

    # Log in through the form.
    page.goto(f"{live_server.url}{CLUSTERS_PATH}")
    expect(page).to_have_url(f"{live_server.url}/admin/login/?next={CLUSTERS_PATH}")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    with page.expect_navigation():
        page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}{CLUSTERS_PATH}")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)

    # Filter by state: only the Init cluster is left.
    with page.expect_navigation():
        page.locator("#changelist-filter").get_by_role("link", name="Init", exact=True).click()
    assert "state__exact=Init" in page.url
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(cluster_row(page, "init-cluster").locator(".state-badge")).to_have_text("Init")
    expect(cluster_row(page, "deployed-cluster")).to_have_count(0)

    # Deploy it with the admin action.
    run_action(page, "init-cluster", "Deploy selected node clusters")
    expect(page.locator(".messagelist .success")).to_have_text("Deploying 1 node cluster(s).")
    assert engine_hand_offs == [(RECONCILE_TASK, [str(cluster.uuid)])]
    action = Action.objects.get(node_cluster=cluster, action="Node Cluster Deploy")
    assert action.user_agent == "admin:operator"
    page.goto(f"{live_server.url}{CLUSTERS_PATH}")
    expect(cluster_row(page, "init-cluster").locator(".state-badge")).to_have_text("Deploying")

    # The engine converges; a reload shows it.
    assert converge(cluster.uuid).state == NodeClusterState.DEPLOYED
    page.reload()
    expect(cluster_row(page, "init-cluster").locator(".state-badge")).to_have_text("Deployed")
    expect(cluster_row(page, "deployed-cluster").locator(".state-badge")).to_have_text("Deployed")

    # Terminate it, through the confirmation page.
    engine_hand_offs.clear()
    run_action(page, "init-cluster", "Terminate selected node clusters")
    expect(page.locator("#content")).to_contain_text("This cannot be undone")
    expect(page.locator("#content li")).to_have_text(["init-cluster (Deployed, 1 node(s))"])
    assert cluster.nodes.get().state == "Deployed"  # nothing happens before the operator confirms
    with page.expect_navigation():
        page.click("input[value='Yes, terminate']")
    expect(page).to_have_url(f"{live_server.url}{CLUSTERS_PATH}")
    expect(page.locator(".messagelist .success")).to_have_text("Terminating 1 node cluster(s).")
    expect(cluster_row(page, "init-cluster").locator(".state-badge")).to_have_text("Terminating")
    assert engine_hand_offs == [(RECONCILE_TASK, [str(cluster.uuid)])]

    assert converge(cluster.uuid).state == NodeClusterState.TERMINATED
    page.reload()
    expect(cluster_row(page, "init-cluster").locator(".state-badge")).to_have_text("Terminated")
    expect(cluster_row(page, "deployed-cluster").locator(".state-badge")).to_have_text("Deployed")

    # The admin's own CSS was served (WhiteNoise), so the page looks like the dashboard, not bare HTML.
    stylesheets = [response for response in static_responses if response.url.endswith("/admin/css/base.css")]
    assert stylesheets
    assert all(response.status == 200 for response in static_responses), [
        (response.url, response.status) for response in static_responses if response.status != 200
    ]
    screenshot = tmp_path / "dashboard.png"
    page.screenshot(path=screenshot, full_page=True)
    assert screenshot.exists()
    assert screenshot.stat().st_size > 0
