from gates.quorum import Vote, tally

PEOPLE = {"bob", "carol", "dave"}


def test_quorum_two_needs_two_distinct_approvers() -> None:
    one = tally([Vote("bob", "approve", "approve")], quorum=2, reject_ends=True, eligible=PEOPLE)
    assert one.outcome is None and one.explanation == "1 of 2 approvals"
    two = tally([Vote("bob", "approve", "approve"), Vote("carol", "approve", "approve")],
                quorum=2, reject_ends=True, eligible=PEOPLE)
    assert two.outcome == "approve" and two.approvals == ("bob", "carol")


def test_any_reject_ends_the_gate_by_default() -> None:
    result = tally([Vote("bob", "approve", "approve"), Vote("dave", "reject", "reject")],
                   quorum=2, reject_ends=True, eligible=PEOPLE)
    assert result.outcome == "reject" and result.option == "reject"


def test_without_reject_ends_a_reject_only_ends_it_when_quorum_is_out_of_reach() -> None:
    votes = [Vote("bob", "reject", "reject")]
    assert tally(votes, quorum=2, reject_ends=False, eligible=PEOPLE).outcome is None
    votes.append(Vote("carol", "reject", "reject"))
    result = tally(votes, quorum=2, reject_ends=False, eligible=PEOPLE)
    assert result.outcome == "reject"
    assert "fewer than the 2 needed" in result.explanation


def test_request_changes_sends_it_back() -> None:
    result = tally([Vote("bob", "request_changes", "request_changes")], quorum=2,
                   reject_ends=True, eligible=PEOPLE, name=str.upper)
    assert result.outcome == "request_changes" and result.explanation == "BOB requested changes"
