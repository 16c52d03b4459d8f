"""Random walks through the case workflow: whatever happens, the rules of the loop hold.

Two kinds of step drive the case: a random event by a random actor with a random payload
(mostly refused), and a sensible one drawn from what `allowed_events` offers, with a
payload that must be accepted. Time passes in between.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from bot.domain.workflow import (
    AREA_LEVELS,
    OPEN_STATES,
    TERMINAL_STATES,
    URGENCIES,
    Actor,
    ApprovalStage,
    AuditRecord,
    Case,
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
    code_for,
    new_case,
)

K = EventKind
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
STREET = "440305001"
COMMUNITY = "44030500100200"
GRID = "44030500100201"
DEPARTMENTS = ("sanitation", "housing")

ACTORS = (
    Actor(1, Role.RESIDENT),  # the reporter
    Actor(2, Role.RESIDENT),
    Actor(3, Role.INFO_OFFICER, GRID),
    Actor(10, Role.GRID_CHIEF, GRID),
    Actor(11, Role.GRID_CHIEF, "44030500100202"),
    Actor(20, Role.COMMUNITY_STAFF, COMMUNITY),
    Actor(21, Role.COMMUNITY_DIRECTOR, COMMUNITY),
    Actor(30, Role.DISPATCHER, STREET),
    Actor(31, Role.DISPATCHER, "440305002"),
    Actor(40, Role.DEPARTMENT, "sanitation"),
    Actor(41, Role.DEPARTMENT, "housing"),
    Actor(50, Role.SUPERVISOR, STREET),
    Actor(60, Role.ADMIN),
    Actor(None, Role.SYSTEM),
)
ODD_ACTORS = ACTORS + (Actor(None, Role.RESIDENT), Actor(12, Role.GRID_CHIEF, None))

CODES = {"not_allowed_in_state", "role_not_allowed", "out_of_scope", "bad_event"}
EFFECT_KINDS = {"notify", "set_deadline", "clear_deadline", "add_follower"}
AUDIENCES = {"reporter", "followers", "assignee", "supervisors", *(level.value for level in Level)}
COUNTERS = (
    "rework_count",
    "return_count",
    "extension_count",
    "escalation_count",
    "suspension_count",
    "reopen_count",
)
NEED_DEADLINE = {K.REGISTER, K.REQUEST_EXTENSION}
NAIVE = 25  # hours ahead, without a time zone
TARGETS = [  # (level, department) of random events, good and bad
    (None, None),
    (None, ""),
    (Level.GRID, None),
    (Level.COMMUNITY, None),
    (Level.STREET, None),
    (Level.GRID, "housing"),
    (Level.DEPARTMENT, None),
    *((Level.DEPARTMENT, department) for department in DEPARTMENTS),
]
QUIET = {K.COMMENT, K.FOLLOW, K.WARN}  # no state change; random_event covers them
WEIGHTS = {  # how often a sensible step picks an event: the happy path first, detours 2
    **dict.fromkeys([K.MERGE, K.REJECT, K.FORCE_CLOSE], 1),
    **dict.fromkeys([K.REGISTER, K.SIGN, K.REPORT_DONE, K.CHECK_PASS, K.APPROVE, K.RATE], 5),
}


def needs_approval(case: Case) -> bool:
    """An approval case that has not been approved yet."""
    return case.procedure == Procedure.APPROVAL and case.approval_stage != ApprovalStage.APPROVED


def dispatch_targets(case: Case) -> list[tuple[Level, str | None]]:
    """Where the holder of the case may send it."""
    targets: list[tuple[Level, str | None]] = []
    if not needs_approval(case):
        targets += [(Level.DEPARTMENT, department) for department in DEPARTMENTS]
    if case.level in AREA_LEVELS:
        below = AREA_LEVELS[: AREA_LEVELS.index(case.level)]
        targets += [(level, None) for level in below if code_for(case, level) is not None]
    return targets


class CaseWalk(RuleBasedStateMachine):
    """One case at a time, driven by random events from random actors."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.case = new_case("GB-1", "sanitation", "U2", None, GRID, COMMUNITY, STREET, 1, START)
        self.applied = 0
        self.history: list[AuditRecord] = []

    @initialize(
        urgency=st.sampled_from(URGENCIES),
        procedure=st.sampled_from([None, *Procedure]),
        has_grid=st.booleans(),
        patrol=st.booleans(),
    )
    def start(
        self, urgency: str, procedure: Procedure | None, has_grid: bool, patrol: bool
    ) -> None:
        """A freshly submitted case, sometimes without a grid, sometimes from a patrol."""
        grid = GRID if has_grid else None
        reporter = 10 if patrol else 1
        self.case = new_case(
            "GB-1",
            "sanitation",
            urgency,
            procedure,
            grid,
            COMMUNITY,
            STREET,
            reporter,
            self.now,
            found_on_patrol=patrol,
        )
        self.applied = 0
        self.history = []

    @rule(
        kind=st.sampled_from(EventKind),
        actor=st.sampled_from(ODD_ACTORS),
        note=st.sampled_from(["", "  ", "a reason"]),
        where=st.sampled_from(TARGETS),
        hours=st.sampled_from([None, -48, 0, 1, 24, 120, NAIVE]),
        rating=st.sampled_from([None, -1, 0, 1, 3, 5, 6]),
        merged_into=st.sampled_from([None, "", "GB-1", "GB-2"]),
    )
    def random_event(
        self,
        kind: EventKind,
        actor: Actor,
        note: str,
        where: tuple[Level | None, str | None],
        hours: int | None,
        rating: int | None,
        merged_into: str | None,
    ) -> None:
        """Anything at all; most of it is refused, and a refusal changes nothing."""
        deadline = None if hours is None else self.now + timedelta(hours=hours)
        if deadline is not None and hours == NAIVE:
            deadline = deadline.replace(tzinfo=None)
        event = Event(
            kind,
            note=note,
            level=where[0],
            department=where[1],
            deadline=deadline,
            rating=rating,
            merged_into=merged_into,
        )
        self.attempt(event, actor)

    @rule(data=st.data())
    def sensible_event(self, data: st.DataObject) -> None:
        """Something the menus offer, with a good payload: it must be accepted."""
        offered: dict[EventKind, list[Actor]] = {}
        for someone in ACTORS:
            for offer in allowed_events(self.case, someone):
                offered.setdefault(offer, []).append(someone)
        if not offered:  # rejected or merged: done with; walk a new case
            assert self.case.state in TERMINAL_STATES
            self.case = new_case("GB-3", "roads", "U3", None, GRID, COMMUNITY, STREET, 1, self.now)
            self.applied = 0
            self.history = []
            return
        # Choose the event first: notes and follows are offered to nearly everyone, always,
        # and would crowd out the events that move the case along; shortcuts to the end of
        # the walk are drawn less often than the happy path, so walks get deep into the loop.
        moves = [
            kind
            for kind in sorted(offered.keys() - QUIET) or sorted(offered)
            for _ in range(WEIGHTS.get(kind, 2))
        ]
        kind = data.draw(st.sampled_from(moves))
        actor = data.draw(st.sampled_from(offered[kind]))
        # One more draw picks the payload's details (fewer draws keep the walk fast).
        variant = data.draw(st.integers(0, 599))
        later = max(self.now, self.case.deadline or self.now)
        later += timedelta(hours=1 + variant % 120)
        requested = self.case.extension_requested
        keep_requested = requested is not None and requested > self.now
        optional = kind not in NEED_DEADLINE and (kind != K.APPROVE_EXTENSION or keep_requested)
        level, department = None, None
        if kind == K.DISPATCH:
            targets = dispatch_targets(self.case)
            level, department = targets[variant % len(targets)]
        event = Event(
            kind,
            note="because",
            level=level,
            department=department,
            deadline=None if optional and variant % 2 else later,
            rating=1 + variant // 120,
            merged_into="GB-2",
        )
        assert self.attempt(event, actor) is not None, (kind, actor, self.case)

    @rule(minutes=st.integers(1, 3 * 24 * 60))
    def time_passes(self, minutes: int) -> None:
        """The clock moves on between events."""
        self.now += timedelta(minutes=minutes)

    def attempt(self, event: Event, actor: Actor) -> Transition | None:
        """Apply an event, check the transition or the refusal, and keep the result."""
        before = self.case
        snapshot = replace(before)
        offered = event.kind in allowed_events(before, actor)
        try:
            transition = apply(before, event, actor, self.now)
        except TransitionRefused as refusal:
            assert refusal.code in CODES
            assert not offered or refusal.code == "bad_event", (refusal.code, refusal.message)
            assert before == snapshot and before.version == self.applied
            return None
        except ValueError:
            raise AssertionError(f"{event} raised ValueError") from None
        assert offered, (event.kind, actor)
        self.check(before, event, actor, transition)
        self.case = transition.case
        self.applied += 1
        self.history.append(transition.audit)
        return transition

    def check(self, before: Case, event: Event, actor: Actor, transition: Transition) -> None:
        """What every applied transition must satisfy."""
        after, audit = transition.case, transition.audit
        assert isinstance(after.state, State)
        assert after.version == before.version + 1
        assert isinstance(audit, AuditRecord)
        assert (audit.event, audit.actor, audit.at) == (event.kind, actor, self.now)
        assert (audit.from_state, audit.to_state) == (before.state, after.state)
        assert audit.case_id == before.id
        assert before.state not in TERMINAL_STATES
        if before.state == State.CLOSED and after.state != State.CLOSED:
            assert event.kind in (K.REOPEN, K.RATE)
        if before.state == State.EVALUATED and after.state != State.EVALUATED:
            assert event.kind == K.REOPEN
        if event.kind in (K.COMMENT, K.FOLLOW, K.WARN):
            assert after == Case(**{**before.__dict__, "version": after.version})
        for counter in COUNTERS:
            assert getattr(after, counter) >= getattr(before, counter)
        if event.kind == K.CHECK_FAIL:
            assert after.rework_count == before.rework_count + 1
        for effect in transition.effects:
            assert effect.kind in EFFECT_KINDS
            if effect.kind == "notify":
                assert effect.audience in AUDIENCES and effect.template

    @invariant()
    def case_is_coherent(self) -> None:
        """The case's fields agree with its state."""
        case = self.case
        assert isinstance(case.state, State)
        assert case.version == self.applied == len(self.history)
        assert code_for(case, case.level) is not None  # the holder exists
        assert (case.level == Level.DEPARTMENT) == (case.department is not None)
        assert (case.state == State.SUSPENDED) == (case.suspended_from is not None)
        assert case.suspended_from not in (State.SUSPENDED, *TERMINAL_STATES)
        closed = case.state in (State.CLOSED, State.EVALUATED)
        assert closed == (case.closed_at is not None) == (case.closed_by_level is not None)
        assert (case.state == State.EVALUATED) == (case.rating is not None)
        assert (case.state == State.MERGED) == (case.merged_into is not None)
        if case.state == State.RESOLVED:
            assert case.resolved_at is not None
        if case.state not in (State.SUBMITTED, *TERMINAL_STATES):
            assert case.registered_at is not None and case.deadline is not None
        assert all(getattr(case, counter) >= 0 for counter in COUNTERS)
        if case.approval_stage in (
            ApprovalStage.COMMUNITY_CHECK,
            ApprovalStage.DIRECTOR_REVIEW,
            ApprovalStage.STREET_APPROVAL,
        ):
            assert case.procedure == Procedure.APPROVAL
            assert case.state in (State.REGISTERED, State.IN_PROGRESS, State.SUSPENDED)
        if case.state in OPEN_STATES or case.state in TERMINAL_STATES:
            assert case.closed_by_level is None

    @invariant()
    def terminal_cases_accept_nothing(self) -> None:
        """Rejected and merged cases offer no event to anyone."""
        if self.case.state in TERMINAL_STATES:
            assert all(allowed_events(self.case, actor) == [] for actor in ODD_ACTORS)

    @invariant()
    def history_is_a_chain(self) -> None:
        """Each audit record starts where the previous one ended."""
        for earlier, later in zip(self.history, self.history[1:], strict=False):
            assert earlier.to_state == later.from_state
        if self.history:
            assert self.history[0].from_state == State.SUBMITTED
            assert self.history[-1].to_state == self.case.state


CaseWalk.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCaseWalk = CaseWalk.TestCase
