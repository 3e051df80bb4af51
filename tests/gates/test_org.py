import pytest

from gates.org import Org, OrgFile, SpecError

ORG = Org(OrgFile.from_data({
    "users": {"bob": {"name": "Bob", "slack_id": "U0BOB0001"}, "dave": {"slack_id": "U0DAVE001"}},
    "roles": {"approver": ["bob", "group:team"], "lead": ["dave"]},
    "groups": {"team": {"slack_id": "S0TEAM", "members": ["dave"]}},
    "channels": {"finance": {"slack_id": "C0FIN"}},
    "admins": ["role:lead"],
}))


def test_principals_from_keys_and_slack_ids() -> None:
    assert ORG.principal("bob") == ORG.principal("@bob") == ORG.principal("U0BOB0001") == "bob"
    assert ORG.principal("U0STRANGER") == "U0STRANGER"
    with pytest.raises(SpecError, match="unknown user 'bobby'"):
        ORG.principal("bobby")


def test_roles_resolve_through_groups_and_live_directory() -> None:
    assert ORG.resolve("role:approver") == {"bob", "dave"}

    class Slack:
        def group_members(self, group_id: str) -> set[str]:
            return {"U0NEWHIRE"} if group_id == "S0TEAM" else set()

    ORG.directory = Slack()
    try:
        assert ORG.resolve("group:team") == {"dave", "U0NEWHIRE"}
    finally:
        ORG.directory = None


def test_admins_and_channels() -> None:
    assert ORG.is_admin("dave") and not ORG.is_admin("bob")
    assert ORG.channel_id("#finance") == "C0FIN"
    ORG.check_spec("channel:finance", allow_channel=True)
    with pytest.raises(SpecError, match="cannot decide"):
        ORG.check_spec("channel:finance")
    with pytest.raises(SpecError, match="unknown role 'aprover'"):
        ORG.check_spec("role:aprover")
