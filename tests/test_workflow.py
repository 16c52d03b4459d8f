"""The case workflow, one behaviour per test: the four procedures, escalation, dispatch and
return, rework, reopening, merge and reject, refusals, extensions and suspensions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.workflow import (
    Actor,
    ApprovalStage,
    AuditRecord,
    Case,
    Effect,
    Event,
    EventKind,
    Level,
    Procedure,
    Role,
    State,
    Transition,
    TransitionRefused,
    allowed_events,
    apply,
    new_case,
    procedure_for,
    submit,
)

K = EventKind
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
STREET = "440305001"
COMMUNITY = "44030500100200"
GRID = "44030500100201"
NEXT_GRID = "44030500100202"

REPORTER = Actor(1, Role.RESIDENT)
NEIGHBOUR = Actor(2, Role.RESIDENT)
OFFICER = Actor(3, Role.INFO_OFFICER, GRID)
CHIEF = Actor(10, Role.GRID_CHIEF, GRID)
NEXT_CHIEF = Actor(11, Role.GRID_CHIEF, NEXT_GRID)
STAFF = Actor(20, Role.COMMUNITY_STAFF, COMMUNITY)
DIRECTOR = Actor(21, Role.COMMUNITY_DIRECTOR, COMMUNITY)
DISPATCHER = Actor(30, Role.DISPATCHER, STREET)
SANITATION = Actor(40, Role.DEPARTMENT, "sanitation")
HOUSING = Actor(41, Role.DEPARTMENT, "housing")
SUPERVISOR = Actor(50, Role.SUPERVISOR, STREET)
ADMIN = Actor(60, Role.ADMIN)
SYSTEM = Actor(None, Role.SYSTEM)
EVERYONE = (
    REPORTER,
    NEIGHBOUR,
    OFFICER,
    CHIEF,
    NEXT_CHIEF,
    STAFF,
    DIRECTOR,
    DISPATCHER,
    SANITATION,
    HOUSING,
    SUPERVISOR,
    ADMIN,
    SYSTEM,
)


class Story:
    """A case and its history, moved on by events ten minutes apart."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.now = case.created_at
        self.history: list[AuditRecord] = []
        self.last: Transition | None = None

    def later(self, **delta: float) -> datetime:
        """A moment after the story's current time (one day unless told)."""
        return self.now + (timedelta(**delta) if delta else timedelta(days=1))

    def do(self, actor: Actor, kind: EventKind, **fields: object) -> Transition:
        """Apply one event and keep the result."""
        self.now += timedelta(minutes=10)
        transition = apply(self.case, Event(kind, **fields), actor, self.now)  # type: ignore[arg-type]
        assert transition.case.version == self.case.version + 1
        assert (transition.audit.from_state, transition.audit.to_state) == (
            self.case.state,
            transition.case.state,
        )
        self.case = transition.case
        self.history.append(transition.audit)
        self.last = transition
        return transition

    def refused(self, actor: Actor, kind: EventKind, **fields: object) -> str:
        """Apply an event expected to be refused; check nothing moved; return the code."""
        before = self.case
        with pytest.raises(TransitionRefused) as refusal:
            apply(self.case, Event(kind, **fields), actor, self.now)  # type: ignore[arg-type]
        assert self.case is before
        assert refusal.value.message
        return refusal.value.code

    def states(self) -> list[State]:
        """The states the case went through, starting from submitted."""
        return [State.SUBMITTED] + [record.to_state for record in self.history]


def fresh(urgency: str = "U2") -> Story:
    """A case a resident just submitted in GRID."""
    return Story(
        new_case("GB-20250303-0001", "sanitation", urgency, None, GRID, COMMUNITY, STREET, 1, START)
    )


def registered(urgency: str = "U2", **fields: object) -> Story:
    """A case the grid chief registered (and is in charge of)."""
    story = fresh(urgency)
    story.do(CHIEF, K.REGISTER, deadline=story.later(hours=4), **fields)
    return story


def notices(transition: Transition) -> set[tuple[str | None, str | None]]:
    """The (audience, template) pairs of a transition's notices."""
    return {(e.audience, e.template) for e in transition.effects if e.kind == "notify"}


def kinds(transition: Transition) -> list[str]:
    """The kinds of a transition's effects."""
    return [effect.kind for effect in transition.effects]


# --- The four procedures -------------------------------------------------------------------


def test_general_procedure_the_chief_handles_it_on_site_and_the_loop_closes() -> None:
    story = fresh()
    received = submit(story.case, REPORTER, START)
    assert received.audit.event == K.SUBMIT
    assert ("reporter", "case_received") in notices(received)
    assert ("grid", "case_new") in notices(received)

    story.do(CHIEF, K.REGISTER, deadline=story.later(hours=4))
    assert story.case.assignee_id == CHIEF.person_id
    assert story.case.registered_at is not None and story.case.deadline is not None
    story.do(CHIEF, K.SIGN)
    story.do(CHIEF, K.REPORT_DONE, note="garbage removed, photo attached")
    story.do(CHIEF, K.CHECK_PASS)
    closed = story.last
    assert closed is not None
    assert ("reporter", "case_closed") in notices(closed)
    assert "clear_deadline" in kinds(closed)
    story.do(REPORTER, K.RATE, rating=5)

    assert story.states() == [
        State.SUBMITTED,
        State.REGISTERED,
        State.IN_PROGRESS,
        State.RESOLVED,
        State.CLOSED,
        State.EVALUATED,
    ]
    assert story.case.closed_by_level == Level.GRID
    assert story.case.rating == 5
    assert story.case.version == 5
    assert story.case.rework_count == story.case.return_count == 0


def test_chief_closes_his_own_patrol_find_straight_after_registering_it() -> None:
    case = new_case(
        "GB-1", "street_order", "U2", None, GRID, COMMUNITY, STREET, 10, START, found_on_patrol=True
    )
    story = Story(case)
    submit(case, CHIEF, START)
    story.do(CHIEF, K.REGISTER, deadline=story.later(hours=4))
    story.do(CHIEF, K.REPORT_DONE, note="vendor moved on")
    assert story.last is not None and notices(story.last) == set()  # he checks it himself
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.state == State.CLOSED
    assert story.case.found_on_patrol
    assert story.case.closed_by_level == Level.GRID


def test_coordination_the_chief_hands_it_to_a_department_and_checks_the_result() -> None:
    story = registered(procedure=Procedure.COORDINATION)
    assert story.case.procedure == Procedure.COORDINATION
    dispatched = story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    assert story.case.state == State.DISPATCHED
    assert (story.case.level, story.case.department) == (Level.DEPARTMENT, "sanitation")
    assert ("department", "case_dispatched") in notices(dispatched)
    assert dict(dispatched.effects[-1].data)["scope"] == "sanitation"

    assert story.refused(HOUSING, K.SIGN) == "out_of_scope"
    assert story.refused(CHIEF, K.SIGN) == "out_of_scope"
    story.do(SANITATION, K.SIGN)
    assert story.case.assignee_id == SANITATION.person_id
    resolved = story.do(SANITATION, K.REPORT_DONE, note="cleared")
    assert ("grid", "case_resolved") in notices(resolved)
    assert story.refused(SANITATION, K.CHECK_PASS) == "role_not_allowed"
    story.do(CHIEF, K.CHECK_PASS, note="checked on site")
    assert story.case.state == State.CLOSED
    assert story.case.closed_by_level == Level.DEPARTMENT


def test_urgent_case_notifies_community_and_street_at_once() -> None:
    story = fresh("U1")
    assert story.case.procedure == Procedure.URGENT
    received = submit(story.case, REPORTER, START)
    assert {("community", "case_urgent"), ("street", "case_urgent")} <= notices(received)

    registered_ = story.do(CHIEF, K.REGISTER, deadline=story.later(hours=2))
    assert {("community", "case_urgent"), ("street", "case_urgent")} <= notices(registered_)
    assert story.case.level == Level.GRID  # the chief tracks it on site
    story.do(CHIEF, K.SIGN)
    story.do(CHIEF, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.state == State.CLOSED


def test_registering_with_a_higher_urgency_switches_to_the_urgent_procedure() -> None:
    story = registered(urgency="U1")
    assert (story.case.urgency, story.case.procedure) == ("U1", Procedure.URGENT)


def test_approval_procedure_goes_through_check_review_and_street_approval() -> None:
    story = registered(procedure=Procedure.APPROVAL)
    assert story.refused(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="housing") == (
        "not_allowed_in_state"
    )
    assert story.refused(CHIEF, K.REPORT_DONE) == "not_allowed_in_state"

    asked = story.do(CHIEF, K.REQUEST_APPROVAL, note="facts and photos collected")
    assert (story.case.approval_stage, story.case.level) == (
        ApprovalStage.COMMUNITY_CHECK,
        Level.COMMUNITY,
    )
    assert ("community", "approval_requested") in notices(asked)
    assert story.refused(CHIEF, K.SIGN) == "not_allowed_in_state"  # nothing moves meanwhile

    story.do(STAFF, K.APPROVE)
    assert story.case.approval_stage == ApprovalStage.DIRECTOR_REVIEW
    story.do(DIRECTOR, K.APPROVE)
    assert (story.case.approval_stage, story.case.level) == (
        ApprovalStage.STREET_APPROVAL,
        Level.STREET,
    )
    granted = story.do(DISPATCHER, K.APPROVE, note="approved")
    assert (story.case.approval_stage, story.case.level) == (ApprovalStage.APPROVED, Level.GRID)
    assert ("assignee", "approval_granted") in notices(granted)
    assert ("reporter", "approval_granted") in notices(granted)

    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="housing")
    story.do(HOUSING, K.SIGN)
    story.do(HOUSING, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.state == State.CLOSED
    assert all(record.to_state != State.SUSPENDED for record in story.history)


@pytest.mark.parametrize(
    ("stage_approvers", "wrong"),
    [((), DIRECTOR), ((STAFF,), STAFF), ((STAFF, DIRECTOR), DIRECTOR)],
    ids=["check_is_for_staff", "review_is_for_the_director", "approval_is_for_the_street"],
)
def test_each_approval_stage_needs_its_own_role(
    stage_approvers: tuple[Actor, ...], wrong: Actor
) -> None:
    story = registered(procedure=Procedure.APPROVAL)
    story.do(CHIEF, K.REQUEST_APPROVAL)
    for approver in stage_approvers:
        story.do(approver, K.APPROVE)
    assert story.refused(wrong, K.APPROVE) == "role_not_allowed"
    assert story.refused(wrong, K.DENY_APPROVAL, note="no") == "role_not_allowed"
    assert story.refused(CHIEF, K.APPROVE) == "role_not_allowed"


def test_denied_approval_goes_back_to_the_chief_who_may_ask_again_or_report_the_outcome() -> None:
    story = registered(procedure=Procedure.APPROVAL)
    story.do(CHIEF, K.REQUEST_APPROVAL)
    story.do(STAFF, K.APPROVE)
    assert story.refused(DIRECTOR, K.DENY_APPROVAL) == "bad_event"  # a reason is required
    denied = story.do(DIRECTOR, K.DENY_APPROVAL, note="the land is not ours")
    assert (story.case.approval_stage, story.case.level) == (ApprovalStage.DENIED, Level.GRID)
    assert story.case.state == State.REGISTERED
    (notice,) = denied.effects
    assert (notice.audience, notice.template) == ("assignee", "approval_denied")
    assert notice.data["reason"] == "the land is not ours"

    story.do(CHIEF, K.REQUEST_APPROVAL, note="added the property deed")
    assert story.case.approval_stage == ApprovalStage.COMMUNITY_CHECK
    story.do(STAFF, K.DENY_APPROVAL, note="still not ours")
    story.do(CHIEF, K.REPORT_DONE, note="explained the refusal to the resident")
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.state == State.CLOSED


# --- Escalation, dispatch and return -------------------------------------------------------


def test_escalation_climbs_from_grid_to_community_to_street_and_stops_there() -> None:
    story = registered()
    story.do(CHIEF, K.SIGN)
    up = story.do(CHIEF, K.ESCALATE, note="needs the community")
    assert (story.case.state, story.case.level) == (State.REGISTERED, Level.COMMUNITY)
    assert ("community", "case_escalated") in notices(up)
    assert story.refused(CHIEF, K.SIGN) == "out_of_scope"

    story.do(STAFF, K.ESCALATE, note="needs the street")
    assert story.case.level == Level.STREET
    assert story.case.escalation_count == 2
    assert story.case.assignee_id is None
    assert story.refused(DISPATCHER, K.ESCALATE) == "role_not_allowed"
    assert story.refused(SUPERVISOR, K.ESCALATE) == "not_allowed_in_state"
    assert K.ESCALATE not in allowed_events(story.case, SYSTEM)


def test_street_dispatches_to_a_department_which_returns_it_as_not_theirs() -> None:
    story = registered()
    story.do(CHIEF, K.ESCALATE)
    story.do(STAFF, K.ESCALATE)
    story.do(
        DISPATCHER,
        K.DISPATCH,
        level=Level.DEPARTMENT,
        department="housing",
        deadline=story.later(days=2),
    )
    assert (story.case.dispatched_by_level, story.case.dispatched_by_id) == (Level.STREET, 30)
    assert story.refused(HOUSING, K.RETURN) == "bad_event"  # a reason is required
    back = story.do(HOUSING, K.RETURN, note="sanitation, not housing")
    assert (story.case.state, story.case.level) == (State.REGISTERED, Level.STREET)
    assert story.case.department is None
    assert story.case.assignee_id == DISPATCHER.person_id
    assert story.case.return_count == 1
    (notice,) = back.effects
    assert (notice.audience, notice.data["returned_by"]) == ("assignee", "housing")

    story.do(DISPATCHER, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    story.do(SANITATION, K.SIGN)
    story.do(SANITATION, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.state == State.CLOSED
    assert story.case.closed_by_level == Level.DEPARTMENT


def test_street_may_dispatch_down_to_the_community_but_a_grid_only_to_a_department() -> None:
    story = registered()
    assert story.refused(CHIEF, K.DISPATCH, level=Level.COMMUNITY) == "bad_event"
    assert story.refused(CHIEF, K.DISPATCH, level=Level.DEPARTMENT) == "bad_event"
    assert story.refused(CHIEF, K.DISPATCH) == "bad_event"
    story.do(CHIEF, K.ESCALATE)
    story.do(STAFF, K.ESCALATE)
    story.do(DISPATCHER, K.DISPATCH, level=Level.COMMUNITY, assignee_id=DIRECTOR.person_id)
    assert (story.case.state, story.case.level, story.case.assignee_id) == (
        State.DISPATCHED,
        Level.COMMUNITY,
        21,
    )
    story.do(DIRECTOR, K.SIGN)
    assert story.case.state == State.IN_PROGRESS


def test_system_escalation_on_a_breached_deadline_is_a_supervision_notice() -> None:
    story = registered()
    story.do(CHIEF, K.SIGN)
    assert story.case.deadline is not None
    story.now = story.case.deadline + timedelta(minutes=1)
    new_deadline = story.later(hours=8)
    escalated = story.do(SYSTEM, K.ESCALATE, note="deadline passed", deadline=new_deadline)
    assert ("community", "case_supervision") in notices(escalated)
    assert ("assignee", "case_overdue") in notices(escalated)
    assert story.case.deadline == new_deadline
    assert "set_deadline" in kinds(escalated)
    assert story.history[-1].actor == SYSTEM


def test_a_department_escalates_to_the_street_command_center() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    story.do(SANITATION, K.SIGN)
    story.do(SANITATION, K.ESCALATE, note="needs several departments")
    assert (story.case.level, story.case.department) == (Level.STREET, None)


def test_the_scheduler_warns_without_changing_the_state() -> None:
    story = registered()
    warned = story.do(SYSTEM, K.WARN)
    assert story.case.state == State.REGISTERED
    assert notices(warned) == {("assignee", "deadline_warning")}
    supervised = story.do(SUPERVISOR, K.WARN, note="please hurry")
    assert notices(supervised) == {("assignee", "case_supervision")}


# --- Rework, reopening, merge and reject ---------------------------------------------------


def test_check_fail_sends_it_back_to_the_same_handler_and_counts_rework() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    story.do(SANITATION, K.SIGN)
    for attempt in (1, 2):
        story.do(SANITATION, K.REPORT_DONE)
        assert story.refused(CHIEF, K.CHECK_FAIL) == "bad_event"  # a reason is required
        rework = story.do(CHIEF, K.CHECK_FAIL, note="still garbage behind building 3")
        assert story.case.state == State.IN_PROGRESS
        assert (story.case.department, story.case.assignee_id) == ("sanitation", 40)
        assert story.case.rework_count == attempt
        assert story.case.resolved_at is None
        assert ("assignee", "case_rework") in notices(rework)
    story.do(SANITATION, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.case.rework_count == 2


def test_reopen_after_rating_goes_back_in_progress_at_the_level_that_closed_it() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    story.do(SANITATION, K.SIGN)
    story.do(SANITATION, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    story.do(REPORTER, K.RATE, rating=2)
    assert story.refused(REPORTER, K.RATE, rating=1) == "not_allowed_in_state"
    assert story.refused(NEIGHBOUR, K.REOPEN) == "out_of_scope"

    reopened = story.do(REPORTER, K.REOPEN, note="not fixed", deadline=story.later())
    assert story.case.state == State.IN_PROGRESS
    assert (story.case.level, story.case.department, story.case.assignee_id) == (
        Level.DEPARTMENT,
        "sanitation",
        40,
    )
    assert story.case.rating is None and story.case.closed_at is None
    assert story.case.reopen_count == 1
    assert ("assignee", "case_reopened") in notices(reopened)
    story.do(SANITATION, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    story.do(REPORTER, K.RATE, rating=4)
    assert story.case.state == State.EVALUATED


def test_reopening_a_force_closed_case_lands_at_the_street() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    assert story.refused(SUPERVISOR, K.FORCE_CLOSE) == "bad_event"  # a reason is required
    closed = story.do(SUPERVISOR, K.FORCE_CLOSE, note="duplicate of a district case")
    assert story.case.state == State.CLOSED
    assert story.case.force_closed and story.case.closed_by_level == Level.STREET
    assert ("reporter", "case_force_closed") in notices(closed)
    story.do(REPORTER, K.REOPEN)
    assert (story.case.state, story.case.level, story.case.department) == (
        State.IN_PROGRESS,
        Level.STREET,
        None,
    )
    assert not story.case.force_closed


def test_merge_tells_the_reporter_and_makes_them_follow_the_other_case() -> None:
    story = fresh()
    assert story.refused(CHIEF, K.MERGE) == "bad_event"
    assert story.refused(CHIEF, K.MERGE, merged_into=story.case.number) == "bad_event"
    merged = story.do(CHIEF, K.MERGE, merged_into="GB-20250302-0042")
    assert (story.case.state, story.case.merged_into) == (State.MERGED, "GB-20250302-0042")
    assert ("reporter", "case_merged") in notices(merged)
    follows = [e for e in merged.effects if e.kind == "add_follower"]
    assert [dict(e.data) for e in follows] == [{"person_id": 1, "case_number": "GB-20250302-0042"}]


def test_reject_needs_a_reason_and_tells_the_reporter_why() -> None:
    story = fresh()
    assert story.refused(STAFF, K.REJECT, note="   ") == "bad_event"
    rejected = story.do(STAFF, K.REJECT, note="private matter between tenants")
    assert story.case.state == State.REJECTED
    reporter_notice = next(e for e in rejected.effects if e.audience == "reporter")
    assert reporter_notice.data["reason"] == "private matter between tenants"


@pytest.mark.parametrize("terminal", ["reject", "merge"])
def test_rejected_and_merged_cases_accept_nothing_at_all(terminal: str) -> None:
    story = fresh()
    if terminal == "reject":
        story.do(CHIEF, K.REJECT, note="not a case")
    else:
        story.do(CHIEF, K.MERGE, merged_into="GB-2")
    for actor in EVERYONE:
        assert allowed_events(story.case, actor) == []
    assert story.refused(ADMIN, K.COMMENT, note="hello") == "not_allowed_in_state"
    assert story.refused(REPORTER, K.REOPEN) == "not_allowed_in_state"


def test_a_closed_case_only_accepts_rate_reopen_and_comments() -> None:
    story = registered()
    story.do(CHIEF, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert allowed_events(story.case, REPORTER) == [K.RATE, K.REOPEN, K.COMMENT]
    assert allowed_events(story.case, CHIEF) == [K.COMMENT]
    assert story.refused(DISPATCHER, K.FORCE_CLOSE, note="x") == "not_allowed_in_state"
    story.do(REPORTER, K.RATE, rating=5)
    assert allowed_events(story.case, REPORTER) == [K.REOPEN, K.COMMENT]


# --- Refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "kind"),
    [
        (REPORTER, K.REGISTER),
        (REPORTER, K.DISPATCH),
        (OFFICER, K.REGISTER),
        (SANITATION, K.REGISTER),
        (SYSTEM, K.REJECT),
        (SUPERVISOR, K.REGISTER),
    ],
)
def test_roles_that_may_not_triage_are_refused(actor: Actor, kind: EventKind) -> None:
    story = fresh()
    assert story.refused(actor, kind, deadline=story.later(), note="x") == "role_not_allowed"


def test_the_bot_registers_and_routes_a_new_report_to_the_grid_chief() -> None:
    story = fresh()
    story.do(SYSTEM, K.REGISTER, deadline=story.later(hours=4), assignee_id=CHIEF.person_id)
    assert (story.case.state, story.case.level, story.case.assignee_id) == (
        State.REGISTERED,
        Level.GRID,
        CHIEF.person_id,
    )
    assert story.last is not None and ("assignee", "case_assigned") in notices(story.last)
    story.do(CHIEF, K.SIGN)


def test_information_officers_may_report_and_comment_but_never_close() -> None:
    story = registered()
    story.do(CHIEF, K.REPORT_DONE)
    assert allowed_events(story.case, OFFICER) == [K.COMMENT]
    assert story.refused(OFFICER, K.CHECK_PASS) == "role_not_allowed"
    assert story.refused(OFFICER, K.FORCE_CLOSE, note="x") == "role_not_allowed"
    commented = story.do(OFFICER, K.COMMENT, note="still smells")
    assert notices(commented) == {("assignee", "case_comment")}


@pytest.mark.parametrize(
    ("actor", "kind"),
    [
        (NEXT_CHIEF, K.REGISTER),
        (Actor(22, Role.COMMUNITY_STAFF, "44030500100300"), K.REGISTER),
        (Actor(31, Role.DISPATCHER, "440305002"), K.REJECT),
        (Actor(12, Role.GRID_CHIEF, None), K.REGISTER),
        (Actor(51, Role.SUPERVISOR, "440305002"), K.COMMENT),
    ],
)
def test_staff_outside_the_case_area_are_refused(actor: Actor, kind: EventKind) -> None:
    story = fresh()
    code = story.refused(actor, kind, deadline=story.later(), note="because")
    assert code == "out_of_scope"


def test_a_department_acts_only_on_cases_sent_to_it() -> None:
    story = registered()
    assert story.refused(SANITATION, K.COMMENT, note="hi") == "out_of_scope"
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    assert story.refused(HOUSING, K.SIGN) == "out_of_scope"
    assert story.refused(HOUSING, K.RETURN, note="x") == "out_of_scope"
    story.do(SANITATION, K.COMMENT, note="on our way")


def test_residents_rate_and_reopen_only_their_own_cases_and_follow_only_others() -> None:
    story = registered()
    assert story.refused(REPORTER, K.FOLLOW) == "out_of_scope"
    followed = story.do(NEIGHBOUR, K.FOLLOW)
    assert story.case.state == State.REGISTERED
    assert [dict(e.data) for e in followed.effects] == [
        {"person_id": 2, "case_number": story.case.number}
    ]
    story.do(CHIEF, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.refused(NEIGHBOUR, K.RATE, rating=5) == "out_of_scope"
    assert story.refused(Actor(None, Role.RESIDENT), K.RATE, rating=5) == "out_of_scope"
    assert story.refused(CHIEF, K.RATE, rating=5) == "role_not_allowed"


@pytest.mark.parametrize("rating", [0, 6, None, True])
def test_ratings_are_whole_numbers_from_one_to_five(rating: object) -> None:
    story = registered()
    story.do(CHIEF, K.REPORT_DONE)
    story.do(CHIEF, K.CHECK_PASS)
    assert story.refused(REPORTER, K.RATE, rating=rating) == "bad_event"


@pytest.mark.parametrize(
    ("actor", "kind", "state"),
    [
        (CHIEF, K.SIGN, "submitted"),
        (CHIEF, K.CHECK_PASS, "registered"),
        (REPORTER, K.RATE, "registered"),
        (REPORTER, K.REOPEN, "registered"),
        (DIRECTOR, K.RESUME, "registered"),
        (CHIEF, K.REGISTER, "registered"),
        (DIRECTOR, K.APPROVE, "registered"),
        (DIRECTOR, K.APPROVE_EXTENSION, "registered"),
        (CHIEF, K.RETURN, "registered"),
        (CHIEF, K.SUBMIT, "registered"),
    ],
)
def test_events_that_do_not_fit_the_state_are_refused(
    actor: Actor, kind: EventKind, state: str
) -> None:
    story = fresh() if state == "submitted" else registered()
    code = story.refused(actor, kind, note="x", rating=3, deadline=story.later())
    assert code == ("bad_event" if kind == K.SUBMIT else "not_allowed_in_state")


def test_deadlines_must_be_in_the_future_and_carry_a_time_zone() -> None:
    story = fresh()
    assert story.refused(CHIEF, K.REGISTER) == "bad_event"
    assert story.refused(CHIEF, K.REGISTER, deadline=story.now - timedelta(hours=1)) == (
        "bad_event"
    )
    naive = datetime(2030, 1, 1)
    assert story.refused(CHIEF, K.REGISTER, deadline=naive) == "bad_event"
    with pytest.raises(ValueError):
        apply(story.case, Event(K.COMMENT, note="x"), CHIEF, datetime(2025, 3, 3))


def test_register_checks_level_and_urgency() -> None:
    story = fresh()
    deadline = story.later()
    assert story.refused(CHIEF, K.REGISTER, deadline=deadline, level=Level.STREET) == "bad_event"
    assert story.refused(DISPATCHER, K.REGISTER, deadline=deadline, level=Level.DEPARTMENT) == (
        "bad_event"
    )
    assert story.refused(CHIEF, K.REGISTER, deadline=deadline, urgency="U9") == "bad_event"
    story.do(DISPATCHER, K.REGISTER, deadline=deadline, level=Level.STREET)
    assert (story.case.level, story.case.assignee_id) == (Level.STREET, 30)


def test_admin_passes_role_and_scope_checks_but_not_state_checks() -> None:
    story = fresh()
    story.do(ADMIN, K.REGISTER, deadline=story.later(), assignee_id=CHIEF.person_id)
    assert story.case.assignee_id == CHIEF.person_id
    assert story.refused(ADMIN, K.RATE, rating=5) == "not_allowed_in_state"
    story.do(ADMIN, K.SUSPEND, note="waiting for the district")
    assert story.case.state == State.SUSPENDED


def test_residents_submit_only_their_own_reports_and_a_case_is_submitted_once() -> None:
    story = fresh()
    with pytest.raises(TransitionRefused) as refusal:
        submit(story.case, NEIGHBOUR, START)
    assert refusal.value.code == "out_of_scope"
    with pytest.raises(TransitionRefused) as refusal:
        submit(story.case, SYSTEM, START)
    assert refusal.value.code == "role_not_allowed"
    story.do(CHIEF, K.REGISTER, deadline=story.later())
    with pytest.raises(TransitionRefused) as refusal:
        submit(story.case, REPORTER, START)
    assert refusal.value.code == "not_allowed_in_state"


@pytest.mark.parametrize(
    ("kind", "actor"),
    [
        (K.REJECT, CHIEF),
        (K.SUSPEND, DIRECTOR),
        (K.FORCE_CLOSE, DISPATCHER),
        (K.REQUEST_EXTENSION, CHIEF),
        (K.COMMENT, REPORTER),
    ],
)
def test_events_that_need_a_reason_refuse_an_empty_one(kind: EventKind, actor: Actor) -> None:
    story = fresh() if kind == K.REJECT else registered()
    assert story.refused(actor, kind, deadline=story.later(days=3), note=" ") == "bad_event"


# --- Extensions and suspensions ------------------------------------------------------------


def test_extension_round_trip_approved_then_denied() -> None:
    story = registered()
    story.do(CHIEF, K.SIGN)
    first_deadline = story.case.deadline
    assert first_deadline is not None
    assert story.refused(CHIEF, K.REQUEST_EXTENSION, note="x", deadline=first_deadline) == (
        "bad_event"  # not later than the current deadline
    )
    asked = story.do(
        CHIEF,
        K.REQUEST_EXTENSION,
        note="parts on order",
        deadline=first_deadline + timedelta(days=2),
    )
    assert ("community", "extension_requested") in notices(asked)
    assert (
        story.refused(
            CHIEF, K.REQUEST_EXTENSION, note="again", deadline=first_deadline + timedelta(days=3)
        )
        == "not_allowed_in_state"
    )
    assert story.refused(CHIEF, K.APPROVE_EXTENSION) == "role_not_allowed"
    assert story.refused(SANITATION, K.APPROVE_EXTENSION) == "role_not_allowed"
    approved = story.do(DIRECTOR, K.APPROVE_EXTENSION)
    assert story.case.deadline == first_deadline + timedelta(days=2)
    assert story.case.extension_count == 1 and story.case.extension_requested is None
    assert "set_deadline" in kinds(approved)
    assert story.case.state == State.IN_PROGRESS

    story.do(CHIEF, K.REQUEST_EXTENSION, note="more", deadline=story.later(days=9))
    assert story.refused(DIRECTOR, K.DENY_EXTENSION) == "bad_event"
    denied = story.do(DIRECTOR, K.DENY_EXTENSION, note="finish it this week")
    assert story.case.deadline == first_deadline + timedelta(days=2)
    assert story.case.extension_count == 1 and story.case.extension_requested is None
    assert notices(denied) == {("assignee", "extension_denied")}
    assert story.refused(DIRECTOR, K.DENY_EXTENSION, note="x") == "not_allowed_in_state"


def test_extension_for_a_department_is_decided_by_the_street_not_the_community() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="sanitation")
    story.do(SANITATION, K.REQUEST_EXTENSION, note="truck broken", deadline=story.later(days=3))
    assert story.refused(DIRECTOR, K.APPROVE_EXTENSION) == "out_of_scope"
    granted = story.later(days=2)  # the street grants less than asked
    story.do(DISPATCHER, K.APPROVE_EXTENSION, deadline=granted)
    assert story.case.deadline == granted


def test_suspension_round_trip_returns_to_the_state_it_left() -> None:
    story = registered()
    story.do(CHIEF, K.DISPATCH, level=Level.DEPARTMENT, department="housing")
    assert story.refused(CHIEF, K.SUSPEND, note="x") == "role_not_allowed"
    assert story.refused(DIRECTOR, K.SUSPEND, note="x") == "out_of_scope"  # held by a department
    parked = story.do(DISPATCHER, K.SUSPEND, note="waiting for the owners' meeting")
    assert (story.case.state, story.case.suspended_from) == (State.SUSPENDED, State.DISPATCHED)
    assert story.case.suspension_count == 1
    assert "clear_deadline" in kinds(parked)
    assert ("reporter", "case_suspended") in notices(parked)
    assert story.refused(HOUSING, K.SIGN) == "not_allowed_in_state"
    assert story.refused(SYSTEM, K.ESCALATE) == "not_allowed_in_state"

    new_deadline = story.later(days=5)
    resumed = story.do(DISPATCHER, K.RESUME, deadline=new_deadline)
    assert (story.case.state, story.case.suspended_from) == (State.DISPATCHED, None)
    assert story.case.deadline == new_deadline
    assert "set_deadline" in kinds(resumed)
    story.do(HOUSING, K.SIGN)


def test_a_suspended_case_can_be_force_closed() -> None:
    story = registered()
    story.do(DIRECTOR, K.SUSPEND, note="owner abroad")
    story.do(DISPATCHER, K.FORCE_CLOSE, note="owner sold the flat")
    assert (story.case.state, story.case.suspended_from) == (State.CLOSED, None)


# --- Comments, follows, menus and plumbing -------------------------------------------------


def test_comments_change_nothing_but_the_version_and_staff_notes_notify_nobody() -> None:
    story = registered()
    before = story.case
    staff_note = story.do(STAFF, K.COMMENT, note="called the property company")
    assert staff_note.effects == ()
    assert story.case == Case(**{**before.__dict__, "version": before.version + 1})
    resident_note = story.do(REPORTER, K.COMMENT, note="it is getting worse")
    assert notices(resident_note) == {("assignee", "case_comment")}
    assert story.history[-1].note == "it is getting worse"


def test_menus_offer_what_each_actor_may_do() -> None:
    story = fresh()
    assert allowed_events(story.case, CHIEF) == [K.REGISTER, K.REJECT, K.MERGE, K.COMMENT]
    assert allowed_events(story.case, REPORTER) == [K.COMMENT]
    assert allowed_events(story.case, NEIGHBOUR) == [K.COMMENT, K.FOLLOW]
    assert allowed_events(story.case, SYSTEM) == [K.REGISTER]
    story.do(CHIEF, K.REGISTER, deadline=story.later())
    assert K.SIGN in allowed_events(story.case, CHIEF)
    assert K.SIGN not in allowed_events(story.case, STAFF)
    assert allowed_events(story.case, SYSTEM) == [K.ESCALATE, K.WARN]


def test_every_menu_entry_is_accepted_by_apply_and_nothing_else_is() -> None:
    story = registered()
    story.do(CHIEF, K.SIGN)
    for actor in EVERYONE:
        menu = allowed_events(story.case, actor)
        for kind in K:
            try:
                apply(
                    story.case,
                    Event(
                        kind,
                        note="n",
                        level=Level.DEPARTMENT,
                        department="sanitation",
                        deadline=story.later(days=3),
                        rating=3,
                        merged_into="GB-9",
                    ),
                    actor,
                    story.now,
                )
            except TransitionRefused as refusal:
                assert kind not in menu or refusal.code == "bad_event", (actor, kind)
            else:
                assert kind in menu, (actor, kind)


def test_new_case_starts_submitted_at_the_lowest_level_it_knows() -> None:
    case = new_case("GB-1", "roads", "U3", None, None, COMMUNITY, STREET, None, START)
    assert (case.state, case.level, case.version, case.procedure) == (
        State.SUBMITTED,
        Level.COMMUNITY,
        0,
        Procedure.GENERAL,
    )
    with pytest.raises(ValueError):
        new_case("GB-1", "roads", "U7", None, GRID, None, None, None, START)
    with pytest.raises(ValueError):
        new_case("GB-1", "roads", "U3", None, GRID, None, None, None, datetime(2025, 1, 1))


def test_procedure_for_urgency_and_needs() -> None:
    assert procedure_for("U1", needs_approval=True) == Procedure.URGENT
    assert procedure_for("U3") == Procedure.GENERAL
    assert procedure_for("U4", needs_approval=True) == Procedure.APPROVAL
    assert procedure_for("U2", needs_coordination=True) == Procedure.COORDINATION


def test_effects_are_read_only() -> None:
    effect = registered().last
    assert effect is not None
    with pytest.raises(TypeError):
        effect.effects[0].data["deadline"] = None  # type: ignore[index]
    assert Effect("clear_deadline").data == {}
