"""The case workflow: a pure state machine for grid-management cases (网格化管理).

Nothing here reads a clock, a database or the network: `apply(case, event, actor, now)`
takes an immutable `Case`, checks who may do what, and returns a `Transition` holding the
new case, exactly one `AuditRecord` and the `Effect`s (notices, deadline timers) the
caller carries out in the same transaction. A refused event raises `TransitionRefused`
and changes nothing. A new case comes from `new_case`; `submit` checks the reporter and
returns its audit record and first notices.

States and who holds a case
---------------------------
`state` says where the case is in the closed loop (collect → register → dispatch →
handle → check → close → evaluate); `level` says who holds it now: the grid chief
(GRID), the community staff and director (COMMUNITY), the street command center's
dispatchers (STREET) or a functional department (DEPARTMENT, with `department` set).
The person in charge at that level is `assignee_id` when known. REGISTERED means "on the
desk of `level`, to triage": sign for it, dispatch it down or across, escalate it up.
DISPATCHED means "sent to `level`, waiting to be signed for (签收)".

Transition table (ADMIN passes every role and scope check, never a state check)
-------------------------------------------------------------------------------
=================  ===========================  =======================  =====================
event              from                         to                       who
=================  ===========================  =======================  =====================
(submit)           -                            submitted                anyone but SYSTEM
                                                                         (resident: own)
register           submitted                    registered (at the       grid chief, community,
                                                case's level unless      dispatcher in area;
                                                told; needs a deadline)  SYSTEM (automatic
                                                                         routing on submission)
reject             submitted                    rejected (terminal)      grid chief, community,
merge              submitted, registered        merged (terminal)        dispatcher in area
dispatch           registered, in_progress      dispatched (down a       holder at an area
                                                level or to a dept.)     level
sign               registered, dispatched       in_progress              holder
return             dispatched, in_progress      registered, back at the  holder
                   (was dispatched)             dispatching level
escalate           registered, dispatched,      registered, one level    holder, supervisor,
                   in_progress                  up: grid → community →   system
                                                street; dept. → street
request_extension  registered, dispatched,      (same; request pending)  holder
                   in_progress
approve_extension  (same, request pending)      (same; new deadline)     level above holder,
deny_extension                                                           supervisor
request_approval   registered, in_progress      (same) community_check   holder at the grid
                   at the grid (community if                             (the community if
                   the case has no grid)                                 there is no grid)
approve            (same, stage pending)        next stage; the last     staff → director →
                                                goes back to the grid    dispatcher, one role
                                                as "approved"            per stage
deny_approval      (same, stage pending)        back to the grid,        the stage's role
                                                "denied"
suspend            registered, dispatched,      suspended (remembers     director/dispatcher
                   in_progress                  suspended_from)          at or above holder
resume             suspended                    suspended_from           same
report_done        in_progress;                 resolved                 holder
                   registered at grid (on site)
check_pass         resolved                     closed (closed_by_level  grid chief, community,
                                                = level that handled)    dispatcher in area
check_fail         resolved                     in_progress (same        same
                                                handler, rework + 1)
rate               closed                       evaluated                the reporter
reopen             closed, evaluated            in_progress at           the reporter,
                                                closed_by_level          supervisor
force_close        registered, dispatched,      closed (by the street)   dispatcher,
                   in_progress, resolved,                                supervisor
                   suspended
comment            every non-terminal state     (same)                   anyone but SYSTEM
                                                                         (staff: in area)
follow             open states                  (same)                   residents but the
                                                                         reporter
warn               registered, dispatched,      (same)                   system, supervisor
                   in_progress
=================  ===========================  =======================  =====================

"Holder" means the staff role of the case's `level` whose scope matches the case (the
grid chief of its grid, the community staff or director of its community, a dispatcher
of its street, the handler of its department). Refusal codes: "role_not_allowed" (the
role never may), "not_allowed_in_state" (not now), "out_of_scope" (not your area, not
your case, or held by someone else), "bad_event" (the payload: missing reason, deadline
in the past or without a time zone, rating outside 1..5, impossible target).

Choices where the domain notes are silent
-----------------------------------------
- REJECTED and MERGED are terminal and accept no event at all, not even a comment.
  A closed case leaves CLOSED only by `reopen` or `rate`; EVALUATED only by `reopen`.
- Procedures. General: the chief registers (and so is in charge), signs, reports done
  and checks on site; a chief who fixed it on the spot may report done straight from
  REGISTERED at his grid. Coordination: the chief dispatches to a department, the
  department signs and reports done, the chief checks. Urgent (U1): submitting and
  registering notify the community and the street at once.
- Approval: the grid chief (the community when the case has no grid) collects the facts;
  `request_approval` moves the case to the community (community_check, by
  community staff), then director_review (the community director), then street_approval
  (a dispatcher). The last approval hands it back to the grid (the community when the
  case has no grid) to carry out, `approval_stage` reading "approved". A denial at any
  stage sends it back the same way ("denied", with the reason): ask again with more
  facts, or report the refusal to the resident as the result (report_done → check_pass).
  While a stage is pending the case is frozen: only the decision, suspend/resume,
  force_close, comments, follows and warnings. Until approved it cannot go to a
  department, and it cannot be reported done before approval was asked for.
- `return` goes back to the level (and person) that dispatched the case; a department can
  not dispatch, only return, escalate (to the street) or report done.
- `escalate` moves the case one level up and onto that level's desk (REGISTERED); the
  street has nothing above it, so escalation stops there. Escalation by SYSTEM or a
  supervisor is supervision (督办): the new level gets "case_supervision" and the former
  holder "case_overdue". An escalating caller should pass a new `deadline`, or the case
  stays overdue. Handing a case on (dispatch, return, escalate) drops a pending
  extension request.
- `check_pass` records `closed_by_level` = the level that held the case (micro, small or
  big loop); `reopen` puts it back in progress at that level with the same handler.
  `force_close` counts as closed by the street (`force_closed` is set); reopening it
  lands on the street's desk.
- Suspension stops the deadline timer ("clear_deadline"); `resume` restores the state
  and re-arms the timer with the event's new deadline or the old one.
- Comments by residents and information officers notify the holder; staff comments are
  internal notes and notify nobody.
- `warn` (an addition to the event list) is the scheduler's 80% deadline warning, or a
  supervisor's supervision notice, recorded without a state change.
- Every applied event, comments and follows included, bumps `version` by one.

Effects
-------
`Effect.kind` is "notify", "set_deadline", "clear_deadline" or "add_follower".
A notice's `audience` is one of "reporter", "followers", "assignee" (data["person_id"]),
"grid", "community", "street", "department" (everyone with that role whose scope is
data["scope"]) or "supervisors"; `template` names the message and `data` fills it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType


class State(StrEnum):
    """Where a case stands in the closed loop."""

    SUBMITTED = "submitted"
    REGISTERED = "registered"
    DISPATCHED = "dispatched"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    EVALUATED = "evaluated"
    REJECTED = "rejected"
    MERGED = "merged"
    SUSPENDED = "suspended"


class Procedure(StrEnum):
    """The four work procedures of a grid (seed 001)."""

    GENERAL = "general"
    COORDINATION = "coordination"
    URGENT = "urgent"
    APPROVAL = "approval"


class Level(StrEnum):
    """Who holds a case: an area level or a functional department."""

    GRID = "grid"
    COMMUNITY = "community"
    STREET = "street"
    DEPARTMENT = "department"


class Role(StrEnum):
    """What a person (or the scheduler) acts as."""

    RESIDENT = "resident"
    INFO_OFFICER = "info_officer"
    GRID_CHIEF = "grid_chief"
    COMMUNITY_STAFF = "community_staff"
    COMMUNITY_DIRECTOR = "community_director"
    DISPATCHER = "dispatcher"
    DEPARTMENT = "department"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    SYSTEM = "system"


class EventKind(StrEnum):
    """Everything that can happen to a case."""

    SUBMIT = "submit"
    REGISTER = "register"
    REJECT = "reject"
    MERGE = "merge"
    DISPATCH = "dispatch"
    SIGN = "sign"
    RETURN = "return"
    ESCALATE = "escalate"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    DENY_EXTENSION = "deny_extension"
    REQUEST_APPROVAL = "request_approval"
    APPROVE = "approve"
    DENY_APPROVAL = "deny_approval"
    SUSPEND = "suspend"
    RESUME = "resume"
    REPORT_DONE = "report_done"
    CHECK_PASS = "check_pass"
    CHECK_FAIL = "check_fail"
    RATE = "rate"
    REOPEN = "reopen"
    FORCE_CLOSE = "force_close"
    COMMENT = "comment"
    FOLLOW = "follow"
    WARN = "warn"


class ApprovalStage(StrEnum):
    """Progress of the approval procedure: check → review → approval, then a verdict."""

    COMMUNITY_CHECK = "community_check"
    DIRECTOR_REVIEW = "director_review"
    STREET_APPROVAL = "street_approval"
    APPROVED = "approved"
    DENIED = "denied"


URGENCIES = ("U1", "U2", "U3", "U4")
TERMINAL_STATES = frozenset({State.REJECTED, State.MERGED})
OPEN_STATES = frozenset(
    {
        State.SUBMITTED,
        State.REGISTERED,
        State.DISPATCHED,
        State.IN_PROGRESS,
        State.RESOLVED,
        State.SUSPENDED,
    }
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a person in a role with a scope (area code or department code)."""

    person_id: int | None
    role: Role
    scope: str | None = None


@dataclass(frozen=True, kw_only=True)
class Case:
    """A reported problem and everything the workflow needs to know about it."""

    id: int | None
    number: str
    state: State
    category: str
    urgency: str
    procedure: Procedure
    level: Level
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    department: str | None
    assignee_id: int | None
    reporter_id: int | None
    created_at: datetime
    registered_at: datetime | None = None
    deadline: datetime | None = None
    time_limit_seconds: int | None = None
    dispatched_by_level: Level | None = None
    dispatched_by_id: int | None = None
    extension_requested: datetime | None = None
    rework_count: int = 0
    return_count: int = 0
    extension_count: int = 0
    escalation_count: int = 0
    suspension_count: int = 0
    reopen_count: int = 0
    approval_stage: ApprovalStage | None = None
    suspended_from: State | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by_level: Level | None = None
    force_closed: bool = False
    rating: int | None = None
    merged_into: str | None = None
    found_on_patrol: bool = False
    version: int = 0


@dataclass(frozen=True)
class Event:
    """Something an actor asks to happen to a case, with what that event needs."""

    kind: EventKind
    note: str = ""
    level: Level | None = None
    department: str | None = None
    assignee_id: int | None = None
    deadline: datetime | None = None
    time_limit_seconds: int | None = None
    rating: int | None = None
    merged_into: str | None = None
    urgency: str | None = None
    procedure: Procedure | None = None


@dataclass(frozen=True)
class Effect:
    """Something the caller must do after storing the transition (see module docstring)."""

    kind: str
    audience: str | None = None
    template: str | None = None
    data: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class AuditRecord:
    """One line of a case's history."""

    case_id: int | None
    event: EventKind
    actor: Actor
    from_state: State
    to_state: State
    at: datetime
    note: str


@dataclass(frozen=True)
class Transition:
    """The result of an applied event: the new case, its audit record and the effects."""

    case: Case
    audit: AuditRecord
    effects: tuple[Effect, ...]


class TransitionRefused(Exception):
    """An event that may not happen; `code` is for programs, `message` for people.

    Codes: "not_allowed_in_state", "role_not_allowed", "out_of_scope", "bad_event".
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Levels, roles and scope -------------------------------------------------------------

AREA_LEVELS = (Level.GRID, Level.COMMUNITY, Level.STREET)  # bottom to top
_RANK = {level: rank for rank, level in enumerate(AREA_LEVELS)}
_UP: Mapping[Level, Level] = {
    Level.GRID: Level.COMMUNITY,
    Level.COMMUNITY: Level.STREET,
    Level.DEPARTMENT: Level.STREET,
}
_ABOVE: Mapping[Level, frozenset[Level]] = {
    Level.GRID: frozenset({Level.COMMUNITY, Level.STREET}),
    Level.COMMUNITY: frozenset({Level.STREET}),
    Level.DEPARTMENT: frozenset({Level.STREET}),
    Level.STREET: frozenset(),
}
# The level a staff role works at; its scope is that level's code.
ROLE_LEVEL: Mapping[Role, Level] = {
    Role.GRID_CHIEF: Level.GRID,
    Role.COMMUNITY_STAFF: Level.COMMUNITY,
    Role.COMMUNITY_DIRECTOR: Level.COMMUNITY,
    Role.DISPATCHER: Level.STREET,
    Role.DEPARTMENT: Level.DEPARTMENT,
}
# The approval procedure: stage -> (the role that decides it, who holds the case meanwhile,
# the stage an approval leads to).
_APPROVAL_STEPS: Mapping[ApprovalStage, tuple[Role, Level, ApprovalStage]] = {
    ApprovalStage.COMMUNITY_CHECK: (
        Role.COMMUNITY_STAFF,
        Level.COMMUNITY,
        ApprovalStage.DIRECTOR_REVIEW,
    ),
    ApprovalStage.DIRECTOR_REVIEW: (
        Role.COMMUNITY_DIRECTOR,
        Level.COMMUNITY,
        ApprovalStage.STREET_APPROVAL,
    ),
    ApprovalStage.STREET_APPROVAL: (Role.DISPATCHER, Level.STREET, ApprovalStage.APPROVED),
}


def code_for(case: Case, level: Level) -> str | None:
    """The case's area code at an area level, or its department."""
    return {
        Level.GRID: case.grid_code,
        Level.COMMUNITY: case.community_code,
        Level.STREET: case.street_code,
        Level.DEPARTMENT: case.department,
    }[level]


def in_area(case: Case, actor: Actor) -> bool:
    """Whether the case lies within the actor's scope (always true for unscoped roles)."""
    own_level = ROLE_LEVEL.get(actor.role)
    if own_level is not None:
        return actor.scope is not None and actor.scope == code_for(case, own_level)
    if actor.role in (Role.SUPERVISOR, Role.INFO_OFFICER):
        codes = {case.grid_code, case.community_code, case.street_code} - {None}
        return actor.scope is None or actor.scope in codes
    return True


def _refuse(code: str, message: str) -> typing.NoReturn:
    raise TransitionRefused(code, message)


def _awaiting_approval(case: Case) -> bool:
    return case.approval_stage in _APPROVAL_STEPS


def _levels_below(case: Case) -> list[Level]:
    """The area levels below the holder that the case has a code for."""
    if case.level not in _RANK:
        return []
    return [
        level
        for level in AREA_LEVELS
        if _RANK[level] < _RANK[case.level] and code_for(case, level) is not None
    ]


def _applicant_level(case: Case) -> Level:
    """Where an approval verdict goes: the grid, or the community when there is no grid."""
    return Level.GRID if case.grid_code is not None else Level.COMMUNITY


# --- Who may act (ADMIN skips these) -------------------------------------------------------

Guard = Callable[[Case, Actor], None]


def _anyone_in_area(case: Case, actor: Actor) -> None:
    if not in_area(case, actor):
        _refuse("out_of_scope", f"case {case.number} is outside your area ({actor.scope})")


def _holder(case: Case, actor: Actor) -> None:
    _anyone_in_area(case, actor)
    own_level = ROLE_LEVEL.get(actor.role)
    if own_level is not None and own_level != case.level:
        held_by = case.department if case.level == Level.DEPARTMENT else case.level.value
        _refuse("out_of_scope", f"case {case.number} is held by {held_by}, not by you")


def _above_holder(case: Case, actor: Actor) -> None:
    _anyone_in_area(case, actor)
    own_level = ROLE_LEVEL.get(actor.role)
    if own_level is not None and own_level not in _ABOVE[case.level]:
        _refuse("out_of_scope", f"only a level above the {case.level} may decide this")


def _holder_or_above(case: Case, actor: Actor) -> None:
    _anyone_in_area(case, actor)
    own_level = ROLE_LEVEL.get(actor.role)
    if own_level is not None and own_level not in _ABOVE[case.level] | {case.level}:
        _refuse("out_of_scope", f"case {case.number} is held below or beside you")


def _reporter(case: Case, actor: Actor) -> None:
    if actor.role == Role.RESIDENT:
        if actor.person_id is None or actor.person_id != case.reporter_id:
            _refuse("out_of_scope", f"only the reporter of case {case.number} may do this")
    else:
        _anyone_in_area(case, actor)


def _not_reporter(case: Case, actor: Actor) -> None:
    if actor.person_id is not None and actor.person_id == case.reporter_id:
        _refuse("out_of_scope", f"you reported case {case.number}; you already follow it")


def _stage_decider(case: Case, actor: Actor) -> None:
    stage = case.approval_stage
    if stage is not None and stage in _APPROVAL_STEPS:
        role = _APPROVAL_STEPS[stage][0]
        if actor.role != role:
            _refuse("role_not_allowed", f"the {case.approval_stage} stage is for a {role}")
    _anyone_in_area(case, actor)


# --- Conditions on the case (ADMIN too) ----------------------------------------------------


def _not_awaiting_approval(case: Case, actor: Actor) -> None:
    if _awaiting_approval(case):
        _refuse("not_allowed_in_state", f"case {case.number} is awaiting approval")


def _needs_approval(case: Case) -> bool:
    return case.procedure == Procedure.APPROVAL and case.approval_stage != ApprovalStage.APPROVED


def _resolvable(case: Case, actor: Actor) -> None:
    _not_awaiting_approval(case, actor)
    if case.procedure == Procedure.APPROVAL and case.approval_stage is None:
        _refuse("not_allowed_in_state", f"case {case.number} needs a request for approval")
    if case.state == State.REGISTERED and case.level != Level.GRID:
        _refuse("not_allowed_in_state", "sign for the case before reporting it done")


def _awaiting_decision(case: Case, actor: Actor) -> None:
    if not _awaiting_approval(case):
        _refuse("not_allowed_in_state", f"case {case.number} is not awaiting approval")


def _can_request_approval(case: Case, actor: Actor) -> None:
    _not_awaiting_approval(case, actor)
    if case.level != _applicant_level(case):
        _refuse(
            "not_allowed_in_state", "approval is requested by the grid chief, who has the facts"
        )
    if case.approval_stage == ApprovalStage.APPROVED:
        _refuse("not_allowed_in_state", f"case {case.number} is approved already")
    if case.community_code is None or case.street_code is None:
        _refuse("not_allowed_in_state", f"case {case.number} has no community or street")


def _dispatchable(case: Case, actor: Actor) -> None:
    _not_awaiting_approval(case, actor)
    if case.level == Level.DEPARTMENT:
        _refuse("not_allowed_in_state", "a department returns or reports; it does not dispatch")
    if _needs_approval(case) and not _levels_below(case):
        _refuse("not_allowed_in_state", f"case {case.number} needs approval first")


def _was_dispatched(case: Case, actor: Actor) -> None:
    if case.dispatched_by_level is None:
        _refuse("not_allowed_in_state", f"case {case.number} was not dispatched; escalate it")


def _has_level_above(case: Case, actor: Actor) -> None:
    _not_awaiting_approval(case, actor)
    up = _UP.get(case.level)
    if up is None:
        _refuse("not_allowed_in_state", "the street command center has no level above it")
    if code_for(case, up) is None:
        _refuse("not_allowed_in_state", f"case {case.number} has no {up} to escalate to")


def _no_extension_pending(case: Case, actor: Actor) -> None:
    _not_awaiting_approval(case, actor)
    if case.extension_requested is not None:
        _refuse("not_allowed_in_state", "an extension request is already pending")


def _extension_pending(case: Case, actor: Actor) -> None:
    if case.extension_requested is None:
        _refuse("not_allowed_in_state", "no extension has been requested")


# --- Payload checks ------------------------------------------------------------------------


def _reason(event: Event) -> str:
    note = event.note.strip()
    if not note:
        _refuse("bad_event", f"{event.kind} needs a reason")
    return note


def _future(moment: datetime | None, now: datetime, what: str) -> datetime:
    if moment is None:
        _refuse("bad_event", f"{what} is missing")
    if moment.tzinfo is None:
        _refuse("bad_event", f"{what} must carry a time zone")
    if moment <= now:
        _refuse("bad_event", f"{what} must be in the future")
    return moment


def _optional_future(moment: datetime | None, now: datetime, what: str) -> datetime | None:
    return None if moment is None else _future(moment, now, what)


def _check_urgency(urgency: str) -> str:
    if urgency not in URGENCIES:
        _refuse("bad_event", f"urgency must be one of {', '.join(URGENCIES)}, not {urgency!r}")
    return urgency


# --- Effects -------------------------------------------------------------------------------


def _notice(case: Case, audience: str, template: str, **extra: object) -> Effect:
    data: dict[str, object] = {
        "number": case.number,
        "category": case.category,
        "urgency": case.urgency,
        "state": case.state.value,
        "level": case.level.value,
    }
    if audience == "assignee":
        data["person_id"] = case.assignee_id
    elif audience in {level.value for level in Level}:
        data["scope"] = code_for(case, Level(audience))
    elif audience == "supervisors":
        data["scope"] = case.street_code
    data.update(extra)
    return Effect("notify", audience, template, MappingProxyType(data))


def _to_holder(case: Case, template: str, **extra: object) -> Effect:
    """A notice to whoever holds the case: its person in charge, or the level's desk."""
    if _awaiting_approval(case):
        return _notice(case, case.level.value, template, **extra)
    if case.assignee_id is not None:
        return _notice(case, "assignee", template, **extra)
    return _notice(case, case.level.value, template, **extra)


def _to_public(case: Case, template: str, **extra: object) -> tuple[Effect, ...]:
    """Notices to the reporter (when known) and to everyone following the case."""
    known = case.reporter_id is not None
    reporter = (_notice(case, "reporter", template, **extra),) if known else ()
    return (*reporter, _notice(case, "followers", template, **extra))


def _to_checker(case: Case, template: str) -> tuple[Effect, ...]:
    """Whoever checks the result on site: the grid chief, else the community, else street."""
    if case.level == Level.GRID:
        return ()  # the chief handled it himself and checks it himself
    for level in AREA_LEVELS:
        if code_for(case, level) is not None:
            return (_notice(case, level.value, template),)
    return ()


def _set_deadline(deadline: datetime | None) -> tuple[Effect, ...]:
    if deadline is None:
        return ()
    return (Effect("set_deadline", data=MappingProxyType({"deadline": deadline})),)


_CLEAR_DEADLINE = Effect("clear_deadline")

# --- What each event does ------------------------------------------------------------------

Outcome = tuple[Case, tuple[Effect, ...]]
Handler = Callable[[Case, Event, Actor, datetime], Outcome]


def _register(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    deadline = _future(event.deadline, now, "the deadline")
    level = event.level or case.level
    if level not in _RANK:
        _refuse("bad_event", "register at an area level; dispatch to reach a department")
    if code_for(case, level) is None:
        _refuse("bad_event", f"case {case.number} has no {level} to register at")
    own_level = ROLE_LEVEL.get(actor.role)
    if own_level is not None and _RANK[level] > _RANK[own_level]:
        _refuse("bad_event", f"a {actor.role} registers at the {own_level} or below")
    urgency = _check_urgency(event.urgency or case.urgency)
    procedure = event.procedure or (
        procedure_for(urgency) if event.urgency is not None else case.procedure
    )
    limit = event.time_limit_seconds or int((deadline - now).total_seconds())
    assignee = event.assignee_id or (actor.person_id if own_level == level else None)
    new = replace(
        case,
        state=State.REGISTERED,
        level=level,
        urgency=urgency,
        procedure=procedure,
        assignee_id=assignee,
        registered_at=now,
        deadline=deadline,
        time_limit_seconds=limit,
    )
    effects = [*_set_deadline(deadline), *_to_public(new, "case_registered")]
    if assignee is None or assignee != actor.person_id:
        effects.append(_to_holder(new, "case_assigned"))
    if procedure == Procedure.URGENT:
        effects += [
            _notice(new, other.value, "case_urgent")
            for other in (Level.COMMUNITY, Level.STREET)
            if code_for(new, other) is not None and other != new.level
        ]
    return new, tuple(effects)


def _reject(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    new = replace(case, state=State.REJECTED)
    return new, _to_public(new, "case_rejected", reason=reason)


def _merge(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    into = (event.merged_into or "").strip()
    if not into or into == case.number:
        _refuse("bad_event", "merge needs the number of another case")
    new = replace(case, state=State.MERGED, merged_into=into, extension_requested=None)
    effects = [*_to_public(new, "case_merged", merged_into=into), _CLEAR_DEADLINE]
    if case.reporter_id is not None:
        follow = {"person_id": case.reporter_id, "case_number": into}
        effects.append(Effect("add_follower", data=MappingProxyType(follow)))
    return new, tuple(effects)


def _dispatch(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    target = event.level
    department = (event.department or "").strip() or None
    if target is None:
        _refuse("bad_event", "dispatch needs a level or a department")
    if target == Level.DEPARTMENT:
        if department is None:
            _refuse("bad_event", "dispatch to a department needs the department")
        if _needs_approval(case):
            _refuse("not_allowed_in_state", f"case {case.number} needs approval first")
    else:
        if department is not None:
            _refuse("bad_event", "a department is named only when dispatching to a department")
        if _RANK[target] >= _RANK[case.level]:
            _refuse("bad_event", f"the {case.level} dispatches down a level or to a department")
        if code_for(case, target) is None:
            _refuse("bad_event", f"case {case.number} has no {target} to dispatch to")
    deadline = _optional_future(event.deadline, now, "the deadline")
    new = replace(
        case,
        state=State.DISPATCHED,
        level=target,
        department=department,
        assignee_id=event.assignee_id,
        dispatched_by_level=case.level,
        dispatched_by_id=actor.person_id,
        extension_requested=None,
        deadline=deadline or case.deadline,
    )
    return new, (*_set_deadline(deadline), _to_holder(new, "case_dispatched"))


def _sign(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    assignee = event.assignee_id or actor.person_id or case.assignee_id
    new = replace(case, state=State.IN_PROGRESS, assignee_id=assignee)
    return new, _to_public(new, "case_in_progress")


def _return(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    assert case.dispatched_by_level is not None  # guaranteed by _was_dispatched
    new = replace(
        case,
        state=State.REGISTERED,
        level=case.dispatched_by_level,
        department=None,
        assignee_id=case.dispatched_by_id,
        dispatched_by_level=None,
        dispatched_by_id=None,
        extension_requested=None,
        return_count=case.return_count + 1,
    )
    returned_by = case.department or case.level.value
    return new, (_to_holder(new, "case_returned", reason=reason, returned_by=returned_by),)


def _escalate(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    deadline = _optional_future(event.deadline, now, "the deadline")
    new = replace(
        case,
        state=State.REGISTERED,
        level=_UP[case.level],
        department=None,
        assignee_id=event.assignee_id,
        dispatched_by_level=None,
        dispatched_by_id=None,
        extension_requested=None,
        deadline=deadline or case.deadline,
        escalation_count=case.escalation_count + 1,
    )
    effects = list(_set_deadline(deadline))
    if actor.role in (Role.SYSTEM, Role.SUPERVISOR):
        effects.append(_notice(new, new.level.value, "case_supervision", reason=event.note))
        effects.append(_to_holder(case, "case_overdue", escalated_to=new.level.value))
    else:
        effects.append(_notice(new, new.level.value, "case_escalated", reason=event.note))
    return new, tuple(effects)


def _request_extension(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    wanted = _future(event.deadline, now, "the requested deadline")
    if case.deadline is not None and wanted <= case.deadline:
        _refuse("bad_event", "the requested deadline must be later than the current one")
    new = replace(case, extension_requested=wanted)
    up = _UP.get(case.level)
    audience = up.value if up is not None else "supervisors"
    notice = _notice(new, audience, "extension_requested", requested=wanted, reason=reason)
    return new, (notice,)


def _approve_extension(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    deadline = _future(event.deadline or case.extension_requested, now, "the new deadline")
    new = replace(
        case,
        deadline=deadline,
        extension_requested=None,
        extension_count=case.extension_count + 1,
    )
    return new, (*_set_deadline(deadline), _to_holder(new, "extension_approved"))


def _deny_extension(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    new = replace(case, extension_requested=None)
    return new, (_to_holder(new, "extension_denied", reason=reason),)


def _request_approval(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    new = replace(
        case,
        procedure=Procedure.APPROVAL,
        approval_stage=ApprovalStage.COMMUNITY_CHECK,
        level=Level.COMMUNITY,
        extension_requested=None,
    )
    return new, (_notice(new, "community", "approval_requested", note=event.note),)


def _approve(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    assert case.approval_stage is not None  # guaranteed by _awaiting_decision
    following = _APPROVAL_STEPS[case.approval_stage][2]
    if following in _APPROVAL_STEPS:
        level = _APPROVAL_STEPS[following][1]
        new = replace(case, approval_stage=following, level=level)
        return new, (_notice(new, level.value, f"approval_{following}", note=event.note),)
    new = replace(case, approval_stage=following, level=_applicant_level(case))
    effects = (_to_holder(new, "approval_granted", note=event.note),)
    return new, effects + _to_public(new, "approval_granted")


def _deny_approval(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    denied_at = case.approval_stage
    new = replace(case, approval_stage=ApprovalStage.DENIED, level=_applicant_level(case))
    return new, (_to_holder(new, "approval_denied", reason=reason, stage=denied_at),)


def _suspend(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    new = replace(
        case,
        state=State.SUSPENDED,
        suspended_from=case.state,
        suspension_count=case.suspension_count + 1,
    )
    effects = [_CLEAR_DEADLINE, _to_holder(new, "case_suspended", reason=reason)]
    return new, (*effects, *_to_public(new, "case_suspended", reason=reason))


def _resume(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    assert case.suspended_from is not None  # every suspension records it
    deadline = _optional_future(event.deadline, now, "the deadline") or case.deadline
    new = replace(case, state=case.suspended_from, suspended_from=None, deadline=deadline)
    effects = [*_set_deadline(deadline), _to_holder(new, "case_resumed")]
    return new, (*effects, *_to_public(new, "case_resumed"))


def _report_done(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    assignee = case.assignee_id or actor.person_id
    new = replace(
        case,
        state=State.RESOLVED,
        resolved_at=now,
        assignee_id=assignee,
        extension_requested=None,
    )
    return new, (_CLEAR_DEADLINE, *_to_checker(new, "case_resolved"))


def _check_pass(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    new = replace(case, state=State.CLOSED, closed_at=now, closed_by_level=case.level)
    return new, (_CLEAR_DEADLINE, *_to_public(new, "case_closed", note=event.note))


def _check_fail(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    deadline = _optional_future(event.deadline, now, "the deadline") or case.deadline
    new = replace(
        case,
        state=State.IN_PROGRESS,
        resolved_at=None,
        deadline=deadline,
        rework_count=case.rework_count + 1,
    )
    return new, (*_set_deadline(deadline), _to_holder(new, "case_rework", reason=reason))


def _rate(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    rating = event.rating
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        _refuse("bad_event", "a rating is a whole number from 1 to 5")
    new = replace(case, state=State.EVALUATED, rating=rating)
    return new, (_to_holder(new, "case_rated", rating=rating, note=event.note),)


def _reopen(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    deadline = _optional_future(event.deadline, now, "the deadline") or case.deadline
    level = case.closed_by_level or case.level
    same_handler = level == case.level
    new = replace(
        case,
        state=State.IN_PROGRESS,
        level=level,
        department=case.department if same_handler else None,
        assignee_id=case.assignee_id if same_handler else None,
        deadline=deadline,
        rating=None,
        resolved_at=None,
        closed_at=None,
        closed_by_level=None,
        force_closed=False,
        reopen_count=case.reopen_count + 1,
    )
    notice = _to_holder(new, "case_reopened", reason=event.note, by=actor.role.value)
    return new, (*_set_deadline(deadline), notice)


def _force_close(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    reason = _reason(event)
    new = replace(
        case,
        state=State.CLOSED,
        closed_at=now,
        closed_by_level=Level.STREET if case.street_code is not None else case.level,
        force_closed=True,
        suspended_from=None,
        extension_requested=None,
        approval_stage=None if _awaiting_approval(case) else case.approval_stage,
    )
    effects = [_CLEAR_DEADLINE, _to_holder(case, "case_force_closed", reason=reason)]
    return new, (*effects, *_to_public(new, "case_force_closed", reason=reason))


def _comment(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    note = event.note.strip()
    if not note:
        _refuse("bad_event", "a comment needs some text")
    if actor.role in (Role.RESIDENT, Role.INFO_OFFICER):
        return case, (_to_holder(case, "case_comment", note=note),)
    return case, ()


def _follow(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    if actor.person_id is None:
        _refuse("bad_event", "only a known person can follow a case")
    follow = {"person_id": actor.person_id, "case_number": case.number}
    return case, (Effect("add_follower", data=MappingProxyType(follow)),)


def _warn(case: Case, event: Event, actor: Actor, now: datetime) -> Outcome:
    template = "deadline_warning" if actor.role == Role.SYSTEM else "case_supervision"
    return case, (_to_holder(case, template, deadline=case.deadline, note=event.note),)


# --- The rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """When an event may happen: from which states, for which roles, under which checks."""

    sources: frozenset[State]
    roles: frozenset[Role]
    who: Guard
    handle: Handler
    conditions: tuple[Guard, ...] = ()


def _states(*states: State) -> frozenset[State]:
    return frozenset(states)


def _roles(*roles: Role) -> frozenset[Role]:
    return frozenset(roles) | {Role.ADMIN}


_HANDLING = _states(State.REGISTERED, State.DISPATCHED, State.IN_PROGRESS)
_TRIAGE = _roles(Role.GRID_CHIEF, Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR, Role.DISPATCHER)
_HOLDERS = _TRIAGE | {Role.DEPARTMENT}
_CHECKERS = _TRIAGE
_APPROVERS = _roles(Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR, Role.DISPATCHER, Role.SUPERVISOR)
_PARKERS = _roles(Role.COMMUNITY_DIRECTOR, Role.DISPATCHER)
_EVERYONE = frozenset(Role)

RULES: Mapping[EventKind, Rule] = {
    # SYSTEM registers what the bot routes automatically on submission.
    EventKind.REGISTER: Rule(
        _states(State.SUBMITTED), _TRIAGE | {Role.SYSTEM}, _anyone_in_area, _register
    ),
    EventKind.REJECT: Rule(_states(State.SUBMITTED), _TRIAGE, _anyone_in_area, _reject),
    EventKind.MERGE: Rule(
        _states(State.SUBMITTED, State.REGISTERED),
        _TRIAGE,
        _anyone_in_area,
        _merge,
        (_not_awaiting_approval,),
    ),
    EventKind.DISPATCH: Rule(
        _states(State.REGISTERED, State.IN_PROGRESS),
        _TRIAGE,
        _holder,
        _dispatch,
        (_dispatchable,),
    ),
    EventKind.SIGN: Rule(
        _states(State.REGISTERED, State.DISPATCHED),
        _HOLDERS,
        _holder,
        _sign,
        (_not_awaiting_approval,),
    ),
    EventKind.RETURN: Rule(
        _states(State.DISPATCHED, State.IN_PROGRESS),
        _HOLDERS,
        _holder,
        _return,
        (_not_awaiting_approval, _was_dispatched),
    ),
    EventKind.ESCALATE: Rule(
        _HANDLING,
        _roles(
            Role.GRID_CHIEF,
            Role.COMMUNITY_STAFF,
            Role.COMMUNITY_DIRECTOR,
            Role.DEPARTMENT,
            Role.SUPERVISOR,
            Role.SYSTEM,
        ),
        _holder,
        _escalate,
        (_has_level_above,),
    ),
    EventKind.REQUEST_EXTENSION: Rule(
        _HANDLING, _HOLDERS, _holder, _request_extension, (_no_extension_pending,)
    ),
    EventKind.APPROVE_EXTENSION: Rule(
        _HANDLING, _APPROVERS, _above_holder, _approve_extension, (_extension_pending,)
    ),
    EventKind.DENY_EXTENSION: Rule(
        _HANDLING, _APPROVERS, _above_holder, _deny_extension, (_extension_pending,)
    ),
    EventKind.REQUEST_APPROVAL: Rule(
        _states(State.REGISTERED, State.IN_PROGRESS),
        _roles(Role.GRID_CHIEF, Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR),
        _holder,
        _request_approval,
        (_can_request_approval,),
    ),
    EventKind.APPROVE: Rule(
        _states(State.REGISTERED, State.IN_PROGRESS),
        _roles(Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR, Role.DISPATCHER),
        _stage_decider,
        _approve,
        (_awaiting_decision,),
    ),
    EventKind.DENY_APPROVAL: Rule(
        _states(State.REGISTERED, State.IN_PROGRESS),
        _roles(Role.COMMUNITY_STAFF, Role.COMMUNITY_DIRECTOR, Role.DISPATCHER),
        _stage_decider,
        _deny_approval,
        (_awaiting_decision,),
    ),
    EventKind.SUSPEND: Rule(_HANDLING, _PARKERS, _holder_or_above, _suspend),
    EventKind.RESUME: Rule(_states(State.SUSPENDED), _PARKERS, _holder_or_above, _resume),
    EventKind.REPORT_DONE: Rule(
        _states(State.REGISTERED, State.IN_PROGRESS),
        _HOLDERS,
        _holder,
        _report_done,
        (_resolvable,),
    ),
    EventKind.CHECK_PASS: Rule(_states(State.RESOLVED), _CHECKERS, _anyone_in_area, _check_pass),
    EventKind.CHECK_FAIL: Rule(_states(State.RESOLVED), _CHECKERS, _anyone_in_area, _check_fail),
    EventKind.RATE: Rule(_states(State.CLOSED), _roles(Role.RESIDENT), _reporter, _rate),
    EventKind.REOPEN: Rule(
        _states(State.CLOSED, State.EVALUATED),
        _roles(Role.RESIDENT, Role.SUPERVISOR),
        _reporter,
        _reopen,
    ),
    EventKind.FORCE_CLOSE: Rule(
        _HANDLING | {State.RESOLVED, State.SUSPENDED},
        _roles(Role.DISPATCHER, Role.SUPERVISOR),
        _anyone_in_area,
        _force_close,
    ),
    EventKind.COMMENT: Rule(
        frozenset(State) - TERMINAL_STATES,
        _EVERYONE - {Role.SYSTEM},
        _anyone_in_area,
        _comment,
    ),
    EventKind.FOLLOW: Rule(OPEN_STATES, _roles(Role.RESIDENT), _not_reporter, _follow),
    EventKind.WARN: Rule(_HANDLING, _roles(Role.SYSTEM, Role.SUPERVISOR), _anyone_in_area, _warn),
}
SUBMITTERS = _EVERYONE - {Role.SYSTEM}


# --- The public functions ------------------------------------------------------------------


def procedure_for(
    urgency: str, *, needs_approval: bool = False, needs_coordination: bool = False
) -> Procedure:
    """The procedure a case starts in: U1 is urgent; otherwise approval, coordination, general."""
    if urgency == "U1":
        return Procedure.URGENT
    if needs_approval:
        return Procedure.APPROVAL
    if needs_coordination:
        return Procedure.COORDINATION
    return Procedure.GENERAL


def new_case(
    number: str,
    category: str,
    urgency: str,
    procedure: Procedure | None,
    grid_code: str | None,
    community_code: str | None,
    street_code: str | None,
    reporter_id: int | None,
    now: datetime,
    found_on_patrol: bool = False,
) -> Case:
    """A freshly submitted case, held by the lowest area level it has a code for."""
    _require_aware(now)
    if not number.strip() or not category.strip():
        raise ValueError("a case needs a number and a category")
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {', '.join(URGENCIES)}, not {urgency!r}")
    codes = {Level.GRID: grid_code, Level.COMMUNITY: community_code, Level.STREET: street_code}
    level = next((lvl for lvl in AREA_LEVELS if codes[lvl] is not None), Level.STREET)
    return Case(
        id=None,
        number=number,
        state=State.SUBMITTED,
        category=category,
        urgency=urgency,
        procedure=procedure or procedure_for(urgency),
        level=level,
        grid_code=grid_code,
        community_code=community_code,
        street_code=street_code,
        department=None,
        assignee_id=None,
        reporter_id=reporter_id,
        created_at=now,
        found_on_patrol=found_on_patrol,
    )


def submit(case: Case, actor: Actor, now: datetime) -> Transition:
    """Record the submission of a case from `new_case`: its audit record and first notices."""
    _require_aware(now)
    if actor.role not in SUBMITTERS:
        _refuse("role_not_allowed", f"a {actor.role} cannot submit cases")
    if case.state != State.SUBMITTED or case.version != 0:
        _refuse("not_allowed_in_state", f"case {case.number} was submitted already")
    if actor.role == Role.RESIDENT and actor.person_id != case.reporter_id:
        _refuse("out_of_scope", "residents submit their own reports")
    effects = [*_to_public(case, "case_received"), _notice(case, case.level.value, "case_new")]
    if case.urgency == "U1":
        effects += [
            _notice(case, level.value, "case_urgent")
            for level in (Level.COMMUNITY, Level.STREET)
            if code_for(case, level) is not None and level != case.level
        ]
    audit = AuditRecord(case.id, EventKind.SUBMIT, actor, State.SUBMITTED, State.SUBMITTED, now, "")
    return Transition(case, audit, tuple(effects))


def authorize(case: Case, kind: EventKind, actor: Actor) -> None:
    """Raise `TransitionRefused` unless `actor` may make `kind` happen to `case` now."""
    rule = RULES.get(kind)
    if rule is None:
        _refuse("bad_event", f"{kind} is not applied to an existing case")
    if actor.role not in rule.roles:
        _refuse("role_not_allowed", f"a {actor.role} cannot {kind}")
    if case.state not in rule.sources:
        _refuse("not_allowed_in_state", f"cannot {kind} a case that is {case.state}")
    for condition in rule.conditions:
        condition(case, actor)
    if actor.role != Role.ADMIN:
        rule.who(case, actor)


def apply(case: Case, event: Event, actor: Actor, now: datetime) -> Transition:
    """Apply one event: the new case (version + 1), its audit record and the effects."""
    _require_aware(now)
    authorize(case, event.kind, actor)
    changed, effects = RULES[event.kind].handle(case, event, actor, now)
    changed = replace(changed, version=case.version + 1)
    audit = AuditRecord(
        case.id, event.kind, actor, case.state, changed.state, now, event.note.strip()
    )
    return Transition(changed, audit, effects)


def allowed_events(case: Case, actor: Actor) -> list[EventKind]:
    """The events `actor` may apply to `case` now (payload aside), in loop order."""
    allowed = []
    for kind, rule in RULES.items():
        if actor.role not in rule.roles or case.state not in rule.sources:
            continue  # the cheap refusals, without raising
        try:
            authorize(case, kind, actor)
        except TransitionRefused:
            continue
        allowed.append(kind)
    return allowed


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("the workflow works in aware datetimes")
