"""The operators' dashboard through the test client: lists, filters, search, inlines, actions, API keys, catalog."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client

from nodeclusters.api.serializers import MAX_NODES_PER_CLUSTER
from nodeclusters.choices import ActionState, NodeClusterState
from nodeclusters.models import Action, ApiKey, NodeCluster, Region
from nodeclusters.services.api_keys import PREFIX_LENGTH
from tests import factories
from tests.api.helpers import RECONCILE_TASK, assert_error, hand_offs, set_cluster_state

pytestmark = pytest.mark.django_db

CLUSTERS_URL = "/admin/nodeclusters/nodecluster/"
API_KEYS_URL = "/admin/nodeclusters/apikey/"
RAW_KEY = re.compile(r"API key for (?P<username>\S+): (?P<raw_key>[0-9a-f]{40}) \(copy it now")


@pytest.fixture
def superuser(db):
    return factories.make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def dashboard(superuser, catalog) -> Client:
    """A browser-like client logged in to the dashboard as a superuser."""
    web = Client()
    web.force_login(superuser)
    return web


@pytest.fixture
def init_cluster(user):
    return factories.make_cluster(user, name="init-cluster")


@pytest.fixture
def deployed_cluster(user):
    cluster = factories.deploy(factories.make_cluster(user, name="deployed-cluster"))
    factories.make_node(cluster)
    return set_cluster_state(cluster, NodeClusterState.DEPLOYED)


def listed(response) -> set[str]:
    """Names of the clusters on a changelist page."""
    assert response.status_code == 200, response.status_code
    return {cluster.name for cluster in response.context["cl"].result_list}


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in response.context["messages"]]


def run_action(web: Client, action: str, objects, url: str = CLUSTERS_URL, **extra):
    """POST an admin action for `objects` the way the changelist's action bar (or an intermediate page) does."""
    data = {"action": action, "_selected_action": [str(obj.pk) for obj in objects], **extra}
    return web.post(url, data, follow=True)


# --- The cluster list -------------------------------------------------------------------------------------------------


def test_changelist_shows_state_badges_and_filters(dashboard, init_cluster, deployed_cluster):
    response = dashboard.get(CLUSTERS_URL)

    assert listed(response) == {"init-cluster", "deployed-cluster"}
    html = response.content.decode()
    assert html.count('class="state-badge"') == 2
    assert 'style="background:#6c757d;color:#fff;padding:2px 8px;border-radius:10px">Init</span>' in html
    assert 'style="background:#198754;color:#fff;padding:2px 8px;border-radius:10px">Deployed</span>' in html
    for title in ("By state", "By provider", "By region"):
        assert title in html
    assert "?state__exact=Init" in html
    assert "?state__exact=Deployed" in html


def test_filter_by_state_shows_only_matching_clusters(dashboard, init_cluster, deployed_cluster):
    assert listed(dashboard.get(CLUSTERS_URL, {"state__exact": NodeClusterState.DEPLOYED})) == {"deployed-cluster"}
    assert listed(dashboard.get(CLUSTERS_URL, {"state__exact": NodeClusterState.INIT})) == {"init-cluster"}
    assert listed(dashboard.get(CLUSTERS_URL, {"state__exact": NodeClusterState.TERMINATED})) == set()


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(lambda uuid: uuid[:8], id="first-8-hex"),
        pytest.param(lambda uuid: uuid[:13], id="with-a-hyphen"),
        pytest.param(lambda uuid: uuid[:8].upper(), id="upper-case"),
        pytest.param(lambda uuid: uuid, id="whole-uuid"),
    ],
)
def test_search_by_uuid_prefix_finds_the_cluster(dashboard, init_cluster, deployed_cluster, prefix):
    term = prefix(str(init_cluster.uuid))
    assert listed(dashboard.get(CLUSTERS_URL, {"q": term})) == {"init-cluster"}


def test_search_by_name_and_nickname(dashboard, user, init_cluster, deployed_cluster):
    factories.make_cluster(user, name="web", nickname="frontend pool")

    assert listed(dashboard.get(CLUSTERS_URL, {"q": "deployed"})) == {"deployed-cluster"}
    assert listed(dashboard.get(CLUSTERS_URL, {"q": "frontend"})) == {"web"}


def test_detail_page_shows_node_and_action_inlines_read_only(dashboard, deployed_cluster):
    node = deployed_cluster.nodes.get()

    response = dashboard.get(f"{CLUSTERS_URL}{deployed_cluster.uuid}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert str(node.uuid) in html
    assert node.public_ip in html
    assert "Node Cluster Create" in html
    assert "Node Cluster Deploy" in html
    # Read-only inlines: every shown field is read-only, no extra or new rows, no delete boxes.
    formsets = {formset.formset.prefix: formset for formset in response.context["inline_admin_formsets"]}
    assert set(formsets) == {"nodes", "actions"}
    for prefix, inline_formset in formsets.items():
        assert set(inline_formset.readonly_fields) == set(inline_formset.opts.fields), prefix
        assert not inline_formset.has_add_permission
        assert not inline_formset.formset.can_delete
        assert f'name="{prefix}-MAX_NUM_FORMS" value="0"' in html
        assert f'name="{prefix}-0-state"' not in html
        assert f'name="{prefix}-0-DELETE"' not in html
        assert f'name="{prefix}-__prefix__-state"' not in html
    assert formsets["nodes"].formset.total_form_count() == 1
    assert formsets["actions"].formset.total_form_count() == 2
    # The only editable field of the cluster itself is the nickname.
    assert set(response.context["adminform"].form.fields) == {"nickname"}


# --- Admin actions ----------------------------------------------------------------------------------------------------


def test_deploy_action_starts_deploying_and_records_an_admin_action(
    dashboard, superuser, init_cluster, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(dashboard, "deploy_selected", [init_cluster])

    assert response.status_code == 200
    assert response.redirect_chain == [(CLUSTERS_URL, 302)]
    assert ("success", "Deploying 1 node cluster(s).") in messages_of(response)
    init_cluster.refresh_from_db()
    assert init_cluster.state == NodeClusterState.DEPLOYING
    action = Action.objects.get(node_cluster=init_cluster, action="Node Cluster Deploy")
    assert action.user_agent == f"admin:{superuser.username}"
    assert action.user_agent.startswith("admin:")
    assert action.owner == init_cluster.owner
    assert action.method == "POST"
    assert action.path == CLUSTERS_URL
    assert action.state == ActionState.IN_PROGRESS
    assert action.is_user_action
    assert init_cluster.current_action_id == action.pk
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(init_cluster.uuid)])]


def test_deploy_action_on_a_deployed_cluster_names_the_state(dashboard, deployed_cluster):
    actions_before = Action.objects.count()

    response = run_action(dashboard, "deploy_selected", [deployed_cluster])

    assert response.status_code == 200
    assert response.redirect_chain == [(CLUSTERS_URL, 302)]
    errors = [text for level, text in messages_of(response) if level == "error"]
    assert len(errors) == 1
    assert errors[0].startswith("deployed-cluster: Cannot deploy node cluster in state 'Deployed'")
    assert not [text for level, text in messages_of(response) if level == "success"]
    assert "Traceback" not in response.content.decode()
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.state == NodeClusterState.DEPLOYED
    assert Action.objects.count() == actions_before


def test_deploy_action_on_a_mixed_selection_deploys_what_it_can(dashboard, init_cluster, deployed_cluster):
    response = run_action(dashboard, "deploy_selected", [init_cluster, deployed_cluster])

    found = messages_of(response)
    assert ("success", "Deploying 1 node cluster(s).") in found
    assert any(level == "error" and "'Deployed'" in text for level, text in found)
    init_cluster.refresh_from_db()
    assert init_cluster.state == NodeClusterState.DEPLOYING


def test_scale_action_first_renders_the_intermediate_form(dashboard, deployed_cluster):
    response = dashboard.post(
        CLUSTERS_URL, {"action": "scale_selected", "_selected_action": [str(deployed_cluster.pk)]}
    )

    assert response.status_code == 200
    assert response.templates[0].name == "admin/nodeclusters/scale.html"
    html = response.content.decode()
    assert 'name="target_num_nodes"' in html
    assert 'name="apply"' in html
    assert f'name="_selected_action" value="{deployed_cluster.pk}"' in html
    assert "deployed-cluster (Deployed, target 1)" in html
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.state == NodeClusterState.DEPLOYED
    assert deployed_cluster.target_num_nodes == 1


def test_scale_action_with_apply_scales(dashboard, superuser, deployed_cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(dashboard, "scale_selected", [deployed_cluster], apply="1", target_num_nodes="4")

    assert response.status_code == 200
    assert response.redirect_chain == [(CLUSTERS_URL, 302)]
    assert ("success", "Scaling 1 node cluster(s).") in messages_of(response)
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.target_num_nodes == 4
    assert deployed_cluster.state == NodeClusterState.SCALING
    action = Action.objects.get(node_cluster=deployed_cluster, action="Node Cluster Scale")
    assert action.target_num_nodes == 4
    assert action.user_agent == f"admin:{superuser.username}"
    assert deployed_cluster.current_action_id == action.pk
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(deployed_cluster.uuid)])]


@pytest.mark.parametrize("target", ["-1", "", "four", str(MAX_NODES_PER_CLUSTER + 1)])
def test_scale_action_with_a_bad_target_re_renders_the_form(dashboard, deployed_cluster, target):
    actions_before = Action.objects.count()

    response = dashboard.post(
        CLUSTERS_URL,
        {
            "action": "scale_selected",
            "_selected_action": [str(deployed_cluster.pk)],
            "apply": "1",
            "target_num_nodes": target,
        },
    )

    assert response.status_code == 200
    assert response.templates[0].name == "admin/nodeclusters/scale.html"
    assert response.context["form"].errors["target_num_nodes"]
    assert "errorlist" in response.content.decode()
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.target_num_nodes == 1
    assert deployed_cluster.state == NodeClusterState.DEPLOYED
    assert Action.objects.count() == actions_before


def test_terminate_action_first_shows_a_confirmation_page(dashboard, deployed_cluster):
    response = dashboard.post(
        CLUSTERS_URL, {"action": "terminate_selected", "_selected_action": [str(deployed_cluster.pk)]}
    )

    assert response.status_code == 200
    assert response.templates[0].name == "admin/nodeclusters/terminate.html"
    html = response.content.decode()
    assert "This cannot be undone" in html
    assert 'value="Yes, terminate"' in html
    assert "deployed-cluster (Deployed, 1 node(s))" in html
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.state == NodeClusterState.DEPLOYED


def test_terminate_action_with_apply_terminates(dashboard, deployed_cluster, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = run_action(dashboard, "terminate_selected", [deployed_cluster], apply="1")

    assert response.status_code == 200
    assert response.redirect_chain == [(CLUSTERS_URL, 302)]
    assert ("success", "Terminating 1 node cluster(s).") in messages_of(response)
    deployed_cluster.refresh_from_db()
    assert deployed_cluster.state == NodeClusterState.TERMINATING
    assert deployed_cluster.target_num_nodes == 0
    action = Action.objects.get(node_cluster=deployed_cluster, action="Node Cluster Terminate")
    assert action.user_agent.startswith("admin:")
    assert hand_offs(callbacks) == [(RECONCILE_TASK, [str(deployed_cluster.uuid)])]


@pytest.mark.parametrize(
    ("action", "extra"),
    [("deploy_selected", {}), ("scale_selected", {"apply": "1", "target_num_nodes": "3"}), ("terminate_selected", {})],
)
def test_a_view_only_operator_cannot_run_cluster_actions(user, catalog, action, extra):
    cluster = factories.make_cluster(user, name="init-cluster")
    viewer = factories.make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_nodecluster"))
    web = Client()
    web.force_login(viewer)

    response = run_action(web, action, [cluster], **({"apply": "1"} | extra))

    assert response.status_code in (200, 403)
    cluster.refresh_from_db()
    assert cluster.state == NodeClusterState.INIT
    assert cluster.target_num_nodes == 1
    assert not Action.objects.filter(user_agent="admin:viewer").exists()


# --- API keys ---------------------------------------------------------------------------------------------------------


def create_key_in_dashboard(dashboard: Client, user, label: str = "ci") -> tuple[ApiKey, str, str]:
    """Add a key on the add page; returns the row, the raw key from the message and the page shown after."""
    keys_before = set(ApiKey.objects.values_list("pk", flat=True))
    response = dashboard.post(f"{API_KEYS_URL}add/", {"user": str(user.pk), "label": label}, follow=True)
    assert response.status_code == 200
    (api_key,) = ApiKey.objects.exclude(pk__in=keys_before)
    found = [RAW_KEY.search(text) for _, text in messages_of(response)]
    matches = [match for match in found if match]
    assert len(matches) == 1, messages_of(response)
    assert matches[0]["username"] == user.username
    return api_key, matches[0]["raw_key"], response.content.decode()


def test_api_key_add_shows_the_key_once_and_it_authenticates(dashboard, user, anonymous_client):
    api_key, raw_key, page = create_key_in_dashboard(dashboard, user)

    assert page.count(raw_key) == 1
    assert api_key.user == user
    assert api_key.label == "ci"
    assert api_key.prefix == raw_key[: len(api_key.prefix)]
    assert raw_key not in (api_key.digest, api_key.prefix)
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"ApiKey {user.username}:{raw_key}")
    response = anonymous_client.get("/api/v1/auth/")
    assert response.status_code == 200, response.content
    assert response.json()["username"] == user.username
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_api_key_message_is_kept_in_the_session_never_in_a_cookie(dashboard, user, settings):
    assert settings.MESSAGE_STORAGE == "django.contrib.messages.storage.session.SessionStorage"

    added = dashboard.post(f"{API_KEYS_URL}add/", {"user": str(user.pk), "label": "ci"})
    assert added.status_code == 302
    assert "messages" not in added.cookies
    shown = dashboard.get(added["Location"])
    (match,) = filter(None, (RAW_KEY.search(text) for _, text in messages_of(shown)))

    raw_key = match["raw_key"]
    for response in (added, shown):
        assert all(raw_key not in morsel.value for morsel in response.cookies.values())
    assert all(raw_key not in morsel.value for morsel in dashboard.cookies.values())
    # Shown once: the session no longer holds it after the page that displayed it.
    assert raw_key not in dashboard.get(added["Location"]).content.decode()
    assert raw_key not in str(dict(dashboard.session))


def test_api_key_change_page_never_shows_the_key_again(dashboard, user):
    api_key, raw_key, _ = create_key_in_dashboard(dashboard, user)

    change_page = dashboard.get(f"{API_KEYS_URL}{api_key.pk}/change/")
    list_page = dashboard.get(API_KEYS_URL)

    assert change_page.status_code == 200
    assert list_page.status_code == 200
    for page in (change_page, list_page):
        html = page.content.decode()
        assert raw_key not in html
        assert api_key.digest not in html
        assert api_key.prefix in html  # the prefix is how operators tell keys apart
    assert set(change_page.context["adminform"].form.fields) == {"label"}


def test_api_key_add_names_the_key_by_its_prefix_in_the_message_and_history(dashboard, user):
    api_key, _, page = create_key_in_dashboard(dashboard, user)

    assert f'<a href="{API_KEYS_URL}{api_key.pk}/change/">{api_key}</a>” was added successfully' in page
    history = LogEntry.objects.get(object_id=str(api_key.pk), content_type__model="apikey")
    assert history.is_addition()
    assert history.object_repr == str(api_key)
    assert str(api_key).startswith(api_key.prefix)


def test_api_key_revoke_action_makes_the_key_fail(dashboard, user, anonymous_client):
    api_key, raw_key, _ = create_key_in_dashboard(dashboard, user)
    anonymous_client.credentials(HTTP_AUTHORIZATION=f"ApiKey {user.username}:{raw_key}")
    assert anonymous_client.get("/api/v1/auth/").status_code == 200

    response = run_action(dashboard, "revoke_selected", [api_key], url=API_KEYS_URL)

    assert response.status_code == 200
    assert ("success", "Revoked 1 key(s).") in messages_of(response)
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert_error(anonymous_client.get("/api/v1/auth/"), 401)


def test_api_key_revoke_from_the_active_keys_filter_reports_the_count(dashboard, user):
    api_key, _, _ = create_key_in_dashboard(dashboard, user)

    response = run_action(dashboard, "revoke_selected", [api_key], url=f"{API_KEYS_URL}?revoked_at__isnull=True")

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert ("success", "Revoked 1 key(s).") in messages_of(response)


def test_a_view_only_operator_cannot_revoke_keys(user, catalog):
    raw_key = factories.make_api_key(user)
    api_key = ApiKey.objects.get(prefix=raw_key[:PREFIX_LENGTH])
    viewer = factories.make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    web = Client()
    web.force_login(viewer)

    response = run_action(web, "revoke_selected", [api_key], url=API_KEYS_URL)

    assert response.status_code in (200, 403)
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


# --- The catalog ------------------------------------------------------------------------------------------------------


def region_form(region: Region, **changes) -> dict:
    data = {"provider": str(region.provider_id), "name": region.name, "label": region.label}
    if region.available:
        data["available"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_a_staff_operator_who_is_not_superuser_cannot_change_a_region(catalog):
    region = factories.region("digitalocean", "lon1")
    operator = factories.make_user("operator", is_staff=True)
    operator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_region", "change_region", "add_region"])
    )
    web = Client()
    web.force_login(operator)
    change_url = f"/admin/nodeclusters/region/{region.pk}/change/"

    response = web.post(change_url, region_form(region, available=None))

    assert response.status_code == 403
    assert web.get("/admin/nodeclusters/region/add/").status_code == 403
    page = web.get(change_url)  # viewing is fine, read-only
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    region.refresh_from_db()
    assert region.available


def test_a_superuser_marks_a_region_unavailable_and_the_api_refuses_it(dashboard, client):
    region = factories.region("digitalocean", "lon1")
    clusters_before = NodeCluster.objects.count()

    response = dashboard.post(f"/admin/nodeclusters/region/{region.pk}/change/", region_form(region, available=None))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else None
    region.refresh_from_db()
    assert not region.available
    response = client.post(
        "/api/v1/nodecluster/",
        {
            "name": "blocked",
            "region": "/api/v1/region/digitalocean/lon1/",
            "node_type": "/api/v1/nodetype/digitalocean/1gb/",
        },
        format="json",
    )
    body = assert_error(response, 400)
    assert "not available" in body["error"]
    assert NodeCluster.objects.count() == clusters_before
    # Other regions still take new clusters.
    response = client.post(
        "/api/v1/nodecluster/",
        {
            "name": "fine",
            "region": "/api/v1/region/digitalocean/nyc3/",
            "node_type": "/api/v1/nodetype/digitalocean/1gb/",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
