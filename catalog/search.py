"""Course search (GET /api/courses): the filters as SQL, a total capped at COUNT_CAP, and a plan chosen by
how many courses match. Up to COUNT_CAP matches are collected and sorted whole by the statement that
counts them; past it, the page is read in the sort's own order (an index) and the reading stops after it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Row,
    Select,
    Text,
    bindparam,
    exists,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from catalog import forms
from catalog.courses import COURSE_COLUMNS, course_view
from catalog.db import Database
from catalog.domain import Caller, CourseStatus
from catalog.fields import Page
from catalog.models import Course, Organization, Session, UTCDateTime
from infra.errors import Forbidden

AnySelect: TypeAlias = Select[*tuple[Any, ...]]
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

COUNT_CAP = 2000  # totals beyond this are reported as a lower bound ("2000+ courses")

# Migration 0005's lower-cased title, industry and description (a stored column on PostgreSQL only).
SEARCH_TEXT_PG = literal_column("courses.search_text", Text)
# Migration 0005's GIN index: the search text's bigrams, `category:<category>`, `delivery:<delivery>`.
SEARCH_KEYS: ColumnElement[Any] = literal_column(
    "catalog_search_keys(courses.search_text, courses.category, courses.delivery)"
)
# SQLite searches the same text, put together per row (no index can help a LIKE '%word%' there).
SEARCH_TEXT_SQLITE = literal_column(
    "(courses.title || ' ' || courses.industry || ' ' || courses.description)", Text
)

# The column each sort orders by (ties by course id); next_session orders by _next_start.
_SORT_COLUMNS: dict[str, Any] = {
    "title": Course.title,
    "-created_at": Course.created_at,
    "credit_hours": Course.credit_hours,
}

TextMatch = Literal["", "like", "keys", "keys_sql"]


def like_pattern(text: str) -> str:
    """`%text%` for LIKE/ILIKE with the wildcards in `text` escaped (escape character: backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def bigrams(text: str) -> list[str] | None:
    """The distinct lower-cased character bigrams of `text`, as migration 0004's catalog_bigrams()
    computes them, or None when Python's lower() might differ from the database's (letters outside
    ASCII that have a case): then the database computes them."""
    if any(not ch.isascii() and (ch.lower() != ch or ch.upper() != ch) for ch in text):
        return None
    lowered = text.lower()
    return sorted({lowered[i : i + 2] for i in range(len(lowered) - 1)})


@dataclass(frozen=True)
class Shape:
    """Which filters a search uses; its statements depend on nothing else (values are bound)."""

    postgres: bool
    status: bool
    category: bool
    industry: bool
    provider: bool
    delivery: bool
    starts_from: bool
    starts_to: bool
    text: TextMatch


def shape_and_params(query: forms.CourseQuery, *, postgres: bool) -> tuple[Shape, dict[str, Any]]:
    params: dict[str, Any] = {
        "status": query.status.value if query.status else None,
        "category": query.category.value if query.category else None,
        "industry": query.industry,
        "provider_id": query.provider_id,
        "delivery": query.delivery.value if query.delivery else None,
        "starts_from": query.starts_from,
        "starts_to": query.starts_to,
    }
    text: TextMatch = ""
    if query.q:
        params["pattern"] = like_pattern(query.q)
        text = "like"
        if postgres and len(query.q) >= 2:
            # The index keys the courses must all hold: q's bigrams, their category and delivery.
            tokens = [f"category:{query.category.value}"] if query.category else []
            tokens += [f"delivery:{query.delivery.value}"] if query.delivery else []
            q_bigrams = bigrams(query.q)
            if q_bigrams is not None:
                text = "keys"
                params["keys"] = q_bigrams + tokens
            else:
                text = "keys_sql"
                params.update(q=query.q, tokens=tokens)
    shape = Shape(
        postgres=postgres,
        status=query.status is not None,
        category=query.category is not None,
        industry=bool(query.industry),
        provider=bool(query.provider_id),
        delivery=query.delivery is not None,
        starts_from=query.starts_from is not None,
        starts_to=query.starts_to is not None,
        text=text,
    )
    return shape, {k: v for k, v in params.items() if v is not None}


_NOW = bindparam("now", type_=UTCDateTime())


@dataclass(frozen=True)
class Filters:
    """The search's conditions on courses, twice: `narrow` finds the courses through the GIN index of
    migration 0005 (a few hundred among 100,000 at once); `broad` leaves it out, for checking course
    by course while walking a sort's index (where the index's bitmap for a common word would cost more
    than the walk). Both select the same courses."""

    narrow: tuple[ColumnElement[bool], ...]
    broad: tuple[ColumnElement[bool], ...]


def filters(shape: Shape) -> Filters:
    conds: list[ColumnElement[bool]] = []
    if shape.status:
        conds.append(Course.status == bindparam("status"))
    if shape.industry:
        conds.append(Course.industry == bindparam("industry"))
    if shape.provider:
        conds.append(Course.provider_org_id == bindparam("provider_id"))
    if shape.starts_from or shape.starts_to:
        in_range: list[ColumnElement[bool]] = [Session.course_id == Course.id]
        if shape.starts_from:
            in_range.append(Session.scheduled_start >= bindparam("starts_from"))
        if shape.starts_to:
            in_range.append(Session.scheduled_start <= bindparam("starts_to"))
        conds.append(exists().where(*in_range))
    # Category and delivery: index keys in `narrow`, so the planner cannot prefer their own indexes.
    keyed: list[ColumnElement[bool]] = []
    if shape.category:
        keyed.append(Course.category == bindparam("category"))
    if shape.delivery:
        keyed.append(Course.delivery == bindparam("delivery"))
    if not shape.text:
        return Filters((*conds, *keyed), (*conds, *keyed))
    pattern = bindparam("pattern", type_=Text)
    if not shape.postgres:
        text_match = SEARCH_TEXT_SQLITE.ilike(pattern, escape="\\")
        return Filters((*conds, *keyed, text_match), (*conds, *keyed, text_match))
    # search_text is lower-cased, so LIKE lower(pattern) is exactly PostgreSQL's ILIKE (which lower-cases
    # both sides in a UTF-8 database) without lower-casing every row.
    text_match = SEARCH_TEXT_PG.like(func.lower(pattern), escape="\\")
    if shape.text == "like":
        return Filters((*conds, *keyed, text_match), (*conds, *keyed, text_match))
    # The course holds every bigram of q (a superset of the matches: the bigrams may lie apart; the LIKE
    # keeps the exact ones) and the category and delivery asked for (exact).
    wanted = (
        bindparam("keys", type_=ARRAY(Text))
        if shape.text == "keys"
        else func.array_cat(
            func.catalog_bigrams(bindparam("q", type_=Text)), bindparam("tokens", type_=ARRAY(Text))
        )
    )
    has_keys = SEARCH_KEYS.op("@>", is_comparison=True)(wanted)
    return Filters((*conds, has_keys, text_match), (*conds, *keyed, text_match))


def _next_start(course_id: Any) -> Any:
    """The start of the course's next session (NULL when none is upcoming), one index probe."""
    return (
        select(func.min(Session.scheduled_start))
        .where(Session.course_id == course_id, Session.scheduled_start >= _NOW)
        .scalar_subquery()
    )


def _order(key: Any, sort: str) -> list[Any]:
    if sort == "-created_at":
        return [key.desc()]
    if sort == "next_session":
        return [key.asc().nulls_last()]
    return [key.asc()]


_LIMIT = bindparam("limit", type_=Integer)
_OFFSET = bindparam("offset", type_=Integer)
_CAP = bindparam("cap", type_=Integer)
_CAP_PLUS_ONE = bindparam("cap_plus_one", type_=Integer)

# Statements are built once per shape and sort (a few hundred at most), with every value bound:
# building one and computing its cache key costs more than executing it.


@functools.lru_cache(maxsize=1024)
def collect_statement(shape: Shape, sort: str) -> AnySelect:
    """One statement: the number of matches up to COUNT_CAP + 1 (column `total`) and, when they are at
    most COUNT_CAP, the page of them sorted whole; past the cap only `total` (other columns NULL)."""
    next_session = sort == "next_session"
    matched_columns: list[Any] = [Course.id]
    if not next_session:
        matched_columns.append(_SORT_COLUMNS[sort].label("k"))
    conds = filters(shape).narrow
    matched = select(*matched_columns).where(*conds).limit(_CAP_PLUS_ONE).cte("matched")
    total = select(func.count().label("total")).select_from(matched).subquery("t")
    # Evaluated once, before the page: past the cap nothing is sorted (nor probed for next_session).
    complete = select(func.count()).select_from(matched).scalar_subquery() <= _CAP
    key = _next_start(matched.c.id) if next_session else matched.c.k
    on_page = (
        select(matched.c.id, key.label("k"))
        .where(complete)
        .order_by(*_order(key, sort), matched.c.id)
        .limit(_LIMIT)
        .offset(_OFFSET)
        .subquery("p")
    )
    # Joined after the LIMIT: only the page's courses are read in full.
    details = (
        select(
            *COURSE_COLUMNS,
            (on_page.c.k if next_session else _next_start(Course.id)).label("next_start"),
            on_page.c.k,
        )
        .select_from(on_page)
        .join(Course, Course.id == on_page.c.id)
        .join(Organization, Organization.id == Course.provider_org_id)
        .subquery("d")
    )
    return (
        select(total.c.total, details)
        .select_from(total.outerjoin(details, true()))
        .order_by(*_order(details.c.k, sort), details.c.id)
    )


@functools.lru_cache(maxsize=1024)
def walk_statement(shape: Shape, sort: str) -> AnySelect:
    """The page of a large match set in title, -created_at or credit_hours order: the planner walks the
    sort's index (migrations 0004, 0005) and checks each course until the page is full."""
    return (
        select(*COURSE_COLUMNS, _next_start(Course.id).label("next_start"))
        .join(Organization, Organization.id == Course.provider_org_id)
        .where(*filters(shape).broad)
        .order_by(*_order(_SORT_COLUMNS[sort], sort), Course.id)
        .limit(_LIMIT)
        .offset(_OFFSET)
    )


@functools.lru_cache(maxsize=1024)
def upcoming_walk_statement(shape: Shape) -> AnySelect:
    """The first `limit` matching courses by next session: upcoming sessions in start order (an index),
    each kept when it is its course's first upcoming one and the course matches."""
    earlier = aliased(Session)
    first_upcoming = ~exists().where(
        earlier.course_id == Session.course_id,
        earlier.scheduled_start >= _NOW,
        tuple_(earlier.scheduled_start, earlier.id) < tuple_(Session.scheduled_start, Session.id),
    )
    return (
        select(Session.course_id, Session.scheduled_start)
        .join(Course, Course.id == Session.course_id)
        .where(Session.scheduled_start >= _NOW, first_upcoming, *filters(shape).broad)
        .order_by(Session.scheduled_start, Session.course_id)
        .limit(_LIMIT)
    )


@functools.lru_cache(maxsize=1024)
def without_upcoming_statement(shape: Shape) -> AnySelect:
    """Matching courses with no upcoming session, which next_session lists last, by id."""
    upcoming = exists().where(Session.course_id == Course.id, Session.scheduled_start >= _NOW)
    return (
        select(Course.id)
        .where(*filters(shape).broad, ~upcoming)
        .order_by(Course.id)
        .limit(_LIMIT)
        .offset(_OFFSET)
    )


_COURSES_BY_ID = (
    select(*COURSE_COLUMNS)
    .join(Organization, Organization.id == Course.provider_org_id)
    .where(Course.id.in_(bindparam("ids", expanding=True)))
)


async def _by_next_session(
    conn: AsyncConnection, shape: Shape, params: dict[str, Any], page: Page
) -> list[tuple[AnyRow, datetime | None]]:
    wanted = page.offset + page.page_size
    walked = (await conn.execute(upcoming_walk_statement(shape), {**params, "limit": wanted})).all()
    starts: dict[int, datetime | None] = {
        course_id: start for course_id, start in walked[page.offset : page.offset + page.page_size]
    }
    if len(walked) < wanted:
        # Fewer courses with an upcoming session than the page needs: the rest come from those without.
        rest = {
            **params,
            "limit": page.page_size - len(starts),
            "offset": max(0, page.offset - len(walked)),
        }
        tail = await conn.execute(without_upcoming_statement(shape), rest)
        starts.update((course_id, None) for (course_id,) in tail)
    if not starts:
        return []
    by_id = {row.id: row for row in await conn.execute(_COURSES_BY_ID, {"ids": list(starts)})}
    return [(by_id[course_id], start) for course_id, start in starts.items() if course_id in by_id]


def _check_access(caller: Caller | None, query: forms.CourseQuery) -> None:
    if query.status != CourseStatus.PUBLISHED:
        assert query.provider_id is not None  # forms.course_query guarantees it
        if caller is None or not caller.reads_provider(query.provider_id):
            raise Forbidden("only the provider's administrators may list its unpublished courses")


async def search(
    db: Database, caller: Caller | None, query: forms.CourseQuery, page: Page, now: datetime
) -> dict[str, Any]:
    """Courses matching the filters, one page of them and the total. Anyone sees published courses;
    a provider's own drafts and archive only its administrators and supervisors."""
    _check_access(caller, query)
    shape, params = shape_and_params(query, postgres=db.engine.dialect.name == "postgresql")
    params.update(now=now, limit=page.page_size, offset=page.offset)
    async with db.reading() as conn:
        collected = (
            await conn.execute(
                collect_statement(shape, query.sort),
                {**params, "cap": COUNT_CAP, "cap_plus_one": COUNT_CAP + 1},
            )
        ).all()
        total = int(collected[0].total)
        found: list[tuple[AnyRow, datetime | None]]
        if total <= COUNT_CAP:
            found = [(row, row.next_start) for row in collected if row.id is not None]
        elif query.sort == "next_session":
            found = await _by_next_session(conn, shape, params, page)
        else:
            rows = await conn.execute(walk_statement(shape, query.sort), params)
            found = [(row, row.next_start) for row in rows]
    items = []
    for row, next_at in found:
        view = course_view(row, provider_name=row.provider_name)
        view["next_session_start"] = next_at.isoformat() if next_at else None
        items.append(view)
    return {
        "items": items,
        "total": min(total, COUNT_CAP),
        "total_is_lower_bound": total > COUNT_CAP,
        "page": page.page,
        "page_size": page.page_size,
    }
