"""The official CLI's session (tests/clients/test_official_cli.py), unchanged, run against the new `tutum` command.

The tests are imported from there and collected here, where this directory's fixtures stand in for that one's:
`tutum` runs `PYTHONPATH=<dir> python3 <dir>/bin/tutum ...` with the package `pip install`ed into `<dir>`
(instead of Python 2.7 and tutum 0.21.1), `cli_dir` is that directory and `background` starts Python 3. Every
command, argument and assertion is the official session's: the same exit codes, the same table columns, the
same uuids and states, the events printed as Python dicts.
"""

from tests.clients.test_official_cli import (  # noqa: F401 (collected as this module's tests and fixture)
    deployed_cluster,
    test_action_inspect_by_short_uuid,
    test_action_list_shows_the_deploy,
    test_action_logs_follow_streams_until_the_action_ends,
    test_action_logs_prints_the_finished_deploys_log,
    test_catalog_commands_list_the_seeded_catalog,
    test_create_with_sync_returns_once_the_cluster_is_deployed,
    test_create_without_sync_returns_at_once_and_the_cluster_deploys,
    test_event_shows_a_deploy_and_a_scale_as_they_happen,
    test_inspect_scale_upgrade_and_rm_by_identifier,
    test_list_shows_each_cluster_with_its_short_uuid_and_state,
    test_node_list_and_inspect,
)
