"""The console's case list: one filtered, scoped, sorted page of cases and its counts.

The caller (bot/services/caselist.py) turns a person's roles into `scopes` and the page's
filters into a `CaseQuery`; here they become one WHERE clause with `?` parameters only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.domain.clock import iso, parse_iso
from bot.domain.workflow import Case, State
from store.cases import OPEN_STATES, case_from_json
from store.db import Connection, Row, fetch, is_postgres

# Columns a scope may restrict on: (column, value); ("*", None) is everything.
SCOPE_COLUMNS = frozenset({"grid_code", "community_code", "street_code", "department", "*"})
SORTS = {
    # NULL deadlines (cases not registered yet) come first in SQLite, last in PostgreSQL:
    # "deadline IS NULL" first would put them last in both but stop either using an index.
    "deadline": "deadline, id",
    "newest": "created_at DESC, id DESC",
    "changed": "changed_at DESC, id DESC",
}
# Reading the page (`CaseQuery.read_by`). SQLite: when the counts say a half (the open
# or the finished cases) has at most FEW_MATCHES, the page reads them all by the filters'
# most selective index and sorts them ("matches": the order's columns as expressions,
# which no index can give), instead of walking the order's index past every case that
# fails a rare filter (closed, U1 and from Open311 is one case in seventy). With more,
# among the finished cases, the order's index is read (INDEXED BY, "order"): one in
# FINISHED_SQL / FEW_MATCHES or more matches, and the walk stops at the page's end,
# where the planner, not knowing the filters go together, would sort ten thousands read
# by an index of the filters (0026's). PostgreSQL's planner has measured the rows and
# chooses alone, but for a short date range over the finished cases (`dates_first`): the
# deadline follows the creation, so a recent week's cases all lie at the end of the
# deadline's index, which it walked from the start, as if they were spread along it
# (1 s): "matches" there too.
FEW_MATCHES = 5_000
UNSORTED = {
    "deadline": "(deadline || ''), id + 0",
    "newest": "(created_at || '') DESC, id + 0 DESC",
    "changed": "(changed_at || '') DESC, id + 0 DESC",
}
ORDER_INDEX = {"deadline": "deadline", "newest": "created", "changed": "changed"}
MAX_PAGE = 200
# The open states written out: the partial indexes of migration 0010 are on exactly this
# condition, and SQLite (and PostgreSQL) use a partial index only when the query says the
# same (tests/test_console_cases.py checks the migration against these).
OPEN_SQL = "state IN (" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"
FINISHED_STATES = tuple(s.value for s in State if s.value not in OPEN_STATES)
FINISHED_SQL = "state IN (" + ", ".join(f"'{s}'" for s in FINISHED_STATES) + ")"
COUNT_CAP = 10_000  # counts per state stop here ("10000+"): a count reads at most this
# A text search's counts stop sooner ("1000+"): a common text's count in a finished state
# reads cap / frequency rows (a tenth of the cases say 井盖: 100,000 rows for 10,000),
# and a search is for finding a few cases, not for counting thousands.
TEXT_COUNT_CAP = 1_000
# The text search (migration 0017). SQLite: the trigram index cases_text gives the cases
# that may contain the text, LIKE then checks each. When more than TEXT_CANDIDATES may,
# the text is common and LIKE alone, in the list's order, meets matches soon enough (and
# stops at the page's end and the count cap); but a finished state's count then reads
# cap / frequency rows, so up to FILTER_CANDIDATES the index still sifts those
# counts: the state's index read in order, each id checked against the candidates (a
# table built once) before its row is read. A text of 1 or 2 characters is first looked for
# with LIKE in the newest SAMPLE cases (in COMMON_IN_SAMPLE of them, a fifth: common); if
# rarer, among the indexed trigrams that begin with it (at most SHORT_TEXT_TERMS of them;
# more, and it is common): the vocabulary reads each such trigram's whole list of cases,
# cheap for a rare text only. PostgreSQL: LIKE alone, which its trigram GIN indexes serve (1 or 2
# characters: its index of the cases' characters, `text_chars`).
TEXT_CANDIDATES, FILTER_CANDIDATES = 5_000, 200_000
SHORT_TEXT_TERMS = 200
SAMPLE, COMMON_IN_SAMPLE = 5_000, 1_000
COMMON_ON_POSTGRES = SAMPLE // 100
NO_MATCH = ""  # a `text_match` no case can meet: no trigram begins with the text
# The expression of PostgreSQL's index of each case's characters (migration 0027).
TEXT_CHARS_SQL = ("string_to_array(lower(coalesce(description, '') || coalesce(address, '')),"
                  " NULL)")


@dataclass(frozen=True)
class CaseQuery:
    """What the list shows: who may see what (`scopes`, OR-ed) and the filters (AND-ed)."""

    scopes: Sequence[tuple[str, str | None]]
    states: Sequence[str] | None = None
    counted_states: Sequence[str] = ()  # the states whose counts the page shows
    category: str | None = None
    urgency: str | None = None
    community: str | None = None
    grid: str | None = None
    channel: str | None = None
    text: str | None = None
    overdue_at: datetime | None = None  # open and past the deadline at this moment
    due_between: tuple[datetime, datetime] | None = None  # open, deadline in [from, to)
    created_from: datetime | None = None
    created_before: datetime | None = None
    # The report dates span a few months at most: finished cases are then found by their
    # date first (SQLite's planner cannot tell, and would walk the whole order index).
    # PostgreSQL (`as_read`): not so, but its finished half is read by "matches".
    narrow_dates: bool = False
    dates_first: bool = False
    # The full-text query that narrows `text` to its candidates (`with_text_index`), or
    # None: LIKE alone; `text_common`: it sifts the finished states' counts only.
    text_match: str | None = None
    text_common: bool = False
    # PostgreSQL: a text of 1 or 2 characters, which pg_trgm cannot look up, narrowed to
    # the cases holding all of its characters (migration 0027), lower-cased.
    text_chars: tuple[str, ...] = ()
    # PostgreSQL: the text has letters of two cases, so it is compared with ILIKE (SQLite's
    # LIKE ignores the case of ASCII letters; PostgreSQL's does not, and its ILIKE folds
    # every row, twice as slow: used only when the text has letters to fold).
    text_folds: bool = False
    # How the page is read (SQLite): None as the planner chooses, "matches" (few: sort
    # them) or "order" (many finished ones: walk the order's index); see FEW_MATCHES.
    read_by: str | None = None
    sort: str = "deadline"
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class ListedCase:
    """One line of the list."""

    case: Case
    description: str
    address: str | None
    source_channel: str | None
    changed_at: datetime | None
    lat: float | None = None
    lon: float | None = None
    subcategory: str | None = None  # with the category, the case's time limit


@dataclass(frozen=True)
class CasePage:
    """A page of the list, how many match in all, and the counts per state."""

    cases: list[ListedCase]
    total: int  # at most `cap` for each state counted
    by_state: dict[str, int] = field(default_factory=dict)
    capped: bool = False  # some count reached `cap`
    cap: int = COUNT_CAP  # where the counts stop (`count_cap`)


def like_pattern(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its wildcards escaped with `\\`."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scope_sql(scopes: Sequence[tuple[str, str | None]]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in scopes:
        if column not in SCOPE_COLUMNS:
            raise ValueError(f"not a scope column: {column}")
        if column == "*":
            return "1 = 1", []
        clauses.append(f"{column} = ?")
        params.append(value)
    return ("(" + " OR ".join(clauses) + ")", params) if clauses else ("1 = 0", [])


def where(query: CaseQuery, *, state: str | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause (without the word) and its parameters; with `state`, for that one
    state instead of the query's (the counts per state)."""
    sifted = query.text_match is not None and (
        not query.text_common or state in FINISHED_STATES)
    scope, params = _scope_sql(query.scopes)
    clauses = [scope]
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    elif query.states is not None:
        if tuple(query.states) == OPEN_STATES:
            clauses.append(OPEN_SQL)
        elif tuple(query.states) == FINISHED_STATES:
            clauses.append(FINISHED_SQL)
        elif query.states:
            clauses.append(f"state IN ({', '.join('?' * len(query.states))})")
            params += list(query.states)
        else:
            clauses.append("1 = 0")
    for column, value in (("category", query.category), ("urgency", query.urgency),
                          ("community_code", query.community), ("grid_code", query.grid),
                          ("source_channel", query.channel)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.overdue_at is not None:
        clauses.append(f"deadline < ? AND {OPEN_SQL}")
        params.append(iso(query.overdue_at))
    if query.due_between is not None:
        clauses.append(f"deadline >= ? AND deadline < ? AND {OPEN_SQL}")
        params += [iso(query.due_between[0]), iso(query.due_between[1])]
    dates: list[str] = []
    if query.created_from is not None:
        dates.append("created_at >= ?")
        params.append(iso(query.created_from))
    if query.created_before is not None:
        dates.append("created_at < ?")
        params.append(iso(query.created_before))
    finished = state is None and query.states is not None and bool(query.states) \
        and set(query.states) <= set(FINISHED_STATES)  # one state: (state, created_at)
    if dates and query.narrow_dates and finished:
        clauses.append(f"id IN (SELECT id FROM cases WHERE {FINISHED_SQL} AND"
                       f" {' AND '.join(dates)})")
    else:
        clauses += dates
    if query.text_match == NO_MATCH and query.text:
        clauses.append("1 = 0")
    elif query.text:
        if sifted:
            # `+id`: a common text's candidates are a filter, not where the reading starts.
            column = "+id" if query.text_common else "id"
            clauses.append(f"{column} IN (SELECT rowid FROM cases_text WHERE"
                           " cases_text MATCH ?)")
            params.append(query.text_match)
        if query.text_chars:
            clauses.append(f"{TEXT_CHARS_SQL} @> CAST(? AS TEXT[])")
            params.append(list(query.text_chars))
        pattern = like_pattern(query.text)
        like = "ILIKE" if query.text_folds else "LIKE"
        clauses.append(f"(description {like} ? ESCAPE '\\' OR address {like} ? ESCAPE '\\')")
        params += [pattern, pattern]
    return " AND ".join(clauses), params


def _phrase(text: str) -> str:
    """`text` as one FTS5 string (a phrase: with trigrams, the text as a substring)."""
    return '"' + text.replace('"', '""') + '"'


def short_terms_sql(text: str) -> tuple[str, list[Any]] | None:
    """The indexed trigrams that begin with a 1- or 2-character `text` (case folded as
    the index folds it), at most SHORT_TEXT_TERMS + 1; None for a longer text, or one
    whose folding changes its length."""
    folded = text.lower()
    if len(text) >= 3 or len(folded) != len(text):
        return None
    highest = folded + "\U0010ffff" * (3 - len(folded))
    return ("SELECT term FROM cases_text_terms WHERE term >= ? AND term <= ? LIMIT ?",
            [folded, highest, SHORT_TEXT_TERMS + 1])


def sample_sql(text: str, most: int = COMMON_IN_SAMPLE) -> tuple[str, list[Any]]:
    """In how many of the newest SAMPLE cases `text` is, counting to `most`."""
    # The newest cases taken first, then searched: asked in one condition, PostgreSQL
    # read a short text through its trigram indexes, that is every case (1.4 s).
    pattern = like_pattern(text)
    return ("SELECT count(*) FROM (SELECT 1 FROM (SELECT description, address FROM cases"
            " ORDER BY id DESC LIMIT ?) AS newest WHERE description LIKE ? ESCAPE '\\' OR"
            " address LIKE ? ESCAPE '\\' LIMIT ?) AS sample", [SAMPLE, pattern, pattern, most])


def candidates_sql(match: str) -> tuple[str, list[Any]]:
    """How many cases the index says may contain the text, counting to
    FILTER_CANDIDATES + 1 at most."""
    return ("SELECT count(*) FROM (SELECT 1 FROM cases_text WHERE cases_text MATCH ?"
            " LIMIT ?) AS found", [match, FILTER_CANDIDATES + 1])


def _in_grids(query: CaseQuery) -> bool:
    """Whether the query keeps to a grid or a few (a grid chief's, or the grid filter):
    about a thousandth of the cases, fewer than the full-text index's questions cost."""
    return bool(query.grid) or (bool(query.scopes) and all(
        column == "grid_code" for column, _ in query.scopes))


async def as_read(conn: Connection, query: CaseQuery) -> CaseQuery:
    """The query as this database reads it best: its text narrowed (`with_text_index`),
    and on PostgreSQL a text with letters compared with ILIKE (`text_folds`) and a short
    date range read as `dates_first` instead of `narrow_dates`
    (asked to find the finished cases by their date first, it walked the order index
    and looked each case up: 1.2 s for a week's; see `read_by`)."""
    if is_postgres(conn):
        if query.narrow_dates:
            query = replace(query, narrow_dates=False, dates_first=True)
        if query.text and query.text.lower() != query.text.upper():
            query = replace(query, text_folds=True)
    return await with_text_index(conn, query)


async def with_text_index(conn: Connection, query: CaseQuery) -> CaseQuery:
    """The query with its text narrowed by the full-text index where that is the faster
    way (a text found in at most TEXT_CANDIDATES cases; up to FILTER_CANDIDATES, for the
    finished states' counts); as it is otherwise, within grids, and always on PostgreSQL
    (its LIKE uses its own trigram indexes; a text of 1 or 2 characters, its index of
    the cases' characters)."""
    if not query.text or _in_grids(query):
        return query
    if is_postgres(conn):
        # A short text in one case in a hundred or more is met soon in the list's order
        # (PostgreSQL's planner reads it so); a rarer one by its characters' index.
        if len(query.text) >= 3 or int((await fetch(
                conn, *sample_sql(query.text, COMMON_ON_POSTGRES)))[0][0]) >= COMMON_ON_POSTGRES:
            return query
        return replace(query, text_chars=tuple(sorted(set(query.text.lower()))))
    match = _phrase(query.text)
    terms_sql = short_terms_sql(query.text)
    if terms_sql is not None:
        if int((await fetch(conn, *sample_sql(query.text)))[0][0]) >= COMMON_IN_SAMPLE:
            return query
        terms = [str(r[0]) for r in await fetch(conn, *terms_sql)]
        if len(terms) > SHORT_TEXT_TERMS:
            return query
        if not terms:
            return replace(query, text_match=NO_MATCH)
        match = " OR ".join(_phrase(term) for term in terms)
    elif len(query.text) < 3:
        return query  # a short text the index cannot look up as the LIKE folds it
    found = int((await fetch(conn, *candidates_sql(match)))[0][0])
    if found > FILTER_CANDIDATES:
        return query
    return replace(query, text_match=match, text_common=found > TEXT_CANDIDATES)


_COLUMNS = ("id, workflow, description, address, source_channel, changed_at, lat, lon,"
            " deadline, created_at, subcategory")


def select_sql(query: CaseQuery, max_page: int = MAX_PAGE, columns: str = _COLUMNS
               ) -> tuple[str, list[Any]]:
    """The page's SELECT (for the benchmark's EXPLAIN QUERY PLAN too). Without a state
    filter it is the first of two (see `page`): the open cases."""
    if query.states is None:
        query = replace(query, states=OPEN_STATES)
    condition, params = where(query)
    sort = query.sort if query.sort in SORTS else "deadline"
    order, indexed = SORTS[sort], ""
    if query.read_by == "matches":
        order = UNSORTED[sort]
    elif query.read_by == "order":
        group = "done" if tuple(query.states or ()) == FINISHED_STATES else "state"
        indexed = f" INDEXED BY cases_{group}_{ORDER_INDEX[sort]}"
    sql = (f"SELECT {columns} FROM cases{indexed} WHERE {condition} ORDER BY {order}"
           " LIMIT ? OFFSET ?")
    return sql, [*params, max(1, min(query.limit, max_page)), max(0, query.offset)]


def count_cap(query: CaseQuery) -> int:
    """Where the query's counts per state stop: COUNT_CAP, TEXT_COUNT_CAP for a text."""
    return TEXT_COUNT_CAP if query.text else COUNT_CAP


# What the open and the finished cases' pages are merged by (`_sort_key`), and where
# those columns are in a row of _KEYS and of _COLUMNS: (deadline, created_at, changed_at).
_KEYS = "id, deadline, created_at, changed_at"
_AT_KEYS, _AT_COLUMNS = (1, 2, 3), (8, 9, 5)


def _sort_key(sort: str, row: Row, at: tuple[int, int, int]) -> tuple[Any, ...]:
    """The order of `SORTS` in Python, to merge the open and the finished cases' pages
    (`at`: where the row holds the deadline, the creation and the last change)."""
    deadline, created, changed = row[at[0]], row[at[1]], row[at[2]]
    if sort == "newest":
        return (created, row[0])
    if sort == "changed":
        return (changed or "", row[0])
    return (deadline is not None, deadline or "", row[0])  # NULLs first, as SQLite


def read_by(query: CaseQuery, counted: dict[str, int], *, postgres: bool = False
            ) -> CaseQuery:
    """The query (one half: its `states` set) with how to read its page, from the counts
    per state (`count_sql`'s, capped at `count_cap` + 1); see FEW_MATCHES."""
    states = tuple(query.states or ())
    if postgres:
        finished = bool(states) and set(states) <= set(FINISHED_STATES)
        return replace(query, read_by="matches") if query.dates_first and finished else query
    if not states or query.text or not set(states) <= set(counted):
        return query  # a text search keeps the full-text index's own plan (with_text_index)
    matches = sum(counted[state] for state in states)
    if matches <= FEW_MATCHES and all(counted[state] <= COUNT_CAP for state in states):
        return replace(query, read_by="matches")
    # Not with dates: the deadline follows the creation, so a recent range's matches all
    # lie at one end of the order's index (the planner reads them by date and sorts).
    dated = query.created_from is not None or query.created_before is not None
    if not dated and (states == FINISHED_STATES
                      or (len(states) == 1 and states[0] in FINISHED_STATES)):
        return replace(query, read_by="order")
    return query


def halves(query: CaseQuery, counted: dict[str, int], *, postgres: bool = False
           ) -> list[CaseQuery]:
    """The page's SELECTs as queries: the one of a status, or for every status the open
    cases' and the finished ones', each with how to read it (`read_by`)."""
    parts = [query] if query.states is not None else [
        replace(query, states=OPEN_STATES), replace(query, states=FINISHED_STATES)]
    return [read_by(part, counted, postgres=postgres) for part in parts]


async def counts(conn: Connection, query: CaseQuery) -> dict[str, int]:
    """The counts per state shown (`count_sql`; 0 for none), each capped at `count_cap` + 1."""
    sql, params = count_sql(query)
    found = {str(r[0]): int(r[1]) for r in await fetch(conn, sql, params)}
    return {**{state: 0 for state in query.counted_states}, **found}


async def _rows(conn: Connection, query: CaseQuery, counted: dict[str, int],
                max_page: int = MAX_PAGE) -> list[Row]:
    """The page's rows. Every status is two queries, the open cases and the finished
    ones, each read in order from its own partial index, merged here: one query over both
    would scan the whole table, or a full index the planner prefers wrongly."""
    parts = halves(query, counted, postgres=is_postgres(conn))
    if query.states is not None:
        sql, params = select_sql(parts[0], max_page)
        return await fetch(conn, sql, params)
    limit = max(1, min(query.limit, max_page))
    offset = max(0, query.offset)
    wanted = limit + offset
    # A later page merges the first `wanted` of each half by their order's columns alone
    # (page 40: 2,050 a half), then reads the page's own rows whole.
    columns, at = (_KEYS, _AT_KEYS) if offset else (_COLUMNS, _AT_COLUMNS)
    both: list[Row] = []
    for part in parts:
        sql, params = select_sql(replace(part, limit=wanted, offset=0), wanted, columns)
        both += await fetch(conn, sql, params)
    descending = query.sort in ("newest", "changed")
    both.sort(key=lambda row: _sort_key(query.sort, row, at), reverse=descending)
    if not offset:
        return both[:wanted]
    chosen = [int(row[0]) for row in both[offset:wanted]]
    if not chosen:
        return []
    rows = await fetch(conn, f"SELECT {_COLUMNS} FROM cases WHERE id IN"
                       f" ({', '.join('?' * len(chosen))})", chosen)
    by_id = {int(row[0]): row for row in rows}
    return [by_id[case_id] for case_id in chosen if case_id in by_id]


def count_sql(query: CaseQuery) -> tuple[str, list[Any]]:
    """The counts of the states shown (`counted_states`) within the other filters: the
    open ones in one grouped query (a few thousand rows), each finished one stopping at
    `count_cap` + 1 (there are hundreds of thousands)."""
    parts: list[str] = []
    params: list[Any] = []
    if set(OPEN_STATES) <= set(query.counted_states):
        condition, more = where(replace(query, states=OPEN_STATES))
        parts.append(f"SELECT state, count(*) FROM cases WHERE {condition} GROUP BY state")
        params += more
    for state in query.counted_states:
        if state in OPEN_STATES and parts:
            continue
        condition, more = where(query, state=state)
        parts.append(f"SELECT ?, (SELECT count(*) FROM (SELECT 1 FROM cases WHERE {condition}"
                     " LIMIT ?) AS capped)")
        params += [state, *more, count_cap(query) + 1]
    return " UNION ALL ".join(parts) or "SELECT '', 0 WHERE 1 = 0", params


async def page(conn: Connection, query: CaseQuery) -> CasePage:
    """One page of the list, the total matching, and the counts per state."""
    query = await as_read(conn, query)
    counted = await counts(conn, query)  # first: they tell how to read the page
    rows = await _rows(conn, query, counted)
    cases = [ListedCase(case_from_json(r[1], r[0]), r[2], r[3], r[4],
                        parse_iso(r[5]) if r[5] else None, r[6], r[7], r[10]) for r in rows]
    cap = count_cap(query)
    capped = any(n > cap for n in counted.values())
    by_state = {state: min(n, cap) for state, n in counted.items() if n}
    wanted = set(query.states) if query.states is not None else set(counted)
    total = sum(n for state, n in by_state.items() if state in wanted)
    return CasePage(cases, total, by_state, capped, cap)


async def all_matching(conn: Connection, query: CaseQuery, limit: int = 50_000
                       ) -> list[ListedCase]:
    """Every case the filters match, in the list's order (the CSV export), up to `limit`."""
    query = await as_read(conn, query)
    counted = await counts(conn, query)
    rows = await _rows(conn, replace(query, limit=limit, offset=0), counted, max_page=limit)
    return [ListedCase(case_from_json(r[1], r[0]), r[2], r[3], r[4],
                       parse_iso(r[5]) if r[5] else None, r[6], r[7], r[10]) for r in rows]


async def last_change(conn: Connection) -> int:
    """The id of the newest audit line anywhere: it grows whenever any case changes (the
    console's pages poll it to know when to refresh)."""
    rows = await fetch(conn, "SELECT max(id) FROM case_events")
    return int(rows[0][0] or 0)


async def case_version(conn: Connection, number: str) -> int | None:
    """A case's version, to tell whether it changed since a page showed it."""
    rows = await fetch(conn, "SELECT version FROM cases WHERE number = ?", (number,))
    return int(rows[0][0]) if rows else None
