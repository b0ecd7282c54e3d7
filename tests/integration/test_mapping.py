"""Impact mapping on real document changes (tests/fixtures/pga): globs, keywords, reasons, no duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from spiders import KINDS
from tests.conftest import FIXTURES
from tests.support.policy_site import Document, page
from tracker.audit.trail import verify
from tracker.check.diff import Diff
from tracker.check.record import record_check
from tracker.check.state import Fetch
from tracker.impacts.mapping import (
    CrawlMapper,
    MappingContext,
    Matcher,
    glob_problem,
    keyword_problem,
    map_change,
    path_tails,
)
from tracker.impacts.remap import remap
from tracker.store.models import AuditEvent, Change, Impact, Sop, Source

REDDIT = "reddit-community-guidelines"
X = "x-privacy-policy"
T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def add_source(session: Session, slug: str) -> Source:
    """A source for a fixture document, extracted as the crawler would (article.policy, no nav)."""
    src = Source(id=slug, name=slug, url=f"http://127.0.0.1/docs/{slug}", select=["article.policy"],
                 remove=[".cookie-banner", "nav"])
    session.add(src)
    session.flush()
    return src


def record_versions(session: Session, slug: str, versions: list[int], *, on_change: Any = None,
                    start: datetime = T0) -> list[Change]:
    """Record the given fixture versions of a document in order (real pages, real extraction)."""
    doc = Document(FIXTURES / "pga" / slug)
    src = session.get(Source, slug) or add_source(session, slug)
    out: list[Change] = []
    for n, v in enumerate(versions):
        fetch = Fetch(source_id=slug, url=src.url, status=200, headers={"content-type": "text/html; charset=utf-8"},
                      body=page(doc, v).encode(), fetched_at=start + timedelta(hours=n))
        outcome = record_check(kinds=KINDS, session=session, source=src, fetch=fetch, on_change=on_change)
        if outcome.change_id is not None:
            change = session.get(Change, outcome.change_id)
            assert change is not None
            out.append(change)
    session.flush()
    return out


def add_sop(session: Session, sop_id: str, watches: list[dict[str, Any]], *, owner: str = "alice@example.com",
            review_days: int | None = None, enabled: bool = True) -> Sop:
    sop = Sop(id=sop_id, title=f"SOP {sop_id}", owner=owner, watches=watches, review_days=review_days,
              enabled=enabled)
    session.add(sop)
    session.flush()
    return sop


def matched(change: Change, watch: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The reasons one watch gives for a change, or None when it does not match."""
    hits = Matcher([("S", [watch])]).match(change.source_id, Diff.from_json(change.diff).changes)
    return hits.get("S")


@pytest.fixture
def reddit_enforcement(session: Session) -> Change:
    """Reddit v2 -> v3: three modified blocks under 'Reddit Content Policy > Enforcement' only."""
    changes = record_versions(session, REDDIT, [2, 3])
    assert len(changes) == 1
    change = changes[0]
    assert change.sections == ["Reddit Content Policy > Enforcement"]
    session.commit()
    return change


@pytest.fixture
def x_rights_contact(session: Session) -> Change:
    """X v2 -> v3: '6. Your Rights and Ours' (Protection -> Privacy) and '10. How To Contact X' (health data)."""
    change = record_versions(session, X, [2, 3])[0]
    assert change.sections == ["X Privacy Policy > 6. Your Rights and Ours", "X Privacy Policy > 10. How To Contact X"]
    session.commit()
    return change


# --- section globs on a real change ---------------------------------------------------------------

@pytest.mark.parametrize("glob", [
    "Enforcement",                                # a tail of the path, at a level boundary
    "enforcement",                                # case-insensitive
    "Reddit Content Policy > Enforcement",        # the full path
    "*> Enforcement",                             # the issue's form, with a wildcard level
    "* > Enforcement",
    "Reddit Content Policy*",                     # a subtree: '*' spans levels
    "Reddit*Enforcement",
    "Enforce*",
    "reddit content policy>enforcement",          # spaces around '>' do not matter
    "[EQ]nforcement",
])
def test_section_glob_matches(reddit_enforcement: Change, glob: str) -> None:
    reasons = matched(reddit_enforcement, {"source": REDDIT, "sections": [glob]})
    assert reasons == [{"watch": 1, "source": REDDIT, "sections": ["Reddit Content Policy > Enforcement"],
                        "globs": [glob]}]


@pytest.mark.parametrize("glob", [
    "Reddit Content Policy",        # the parent alone is a different path (use 'Reddit Content Policy*')
    "Content Policy > Enforcement",  # tails start at level boundaries: "Content Policy" is not a level
    "Enforce",                      # no partial words without a wildcard
    "policy > enforcement > *",     # no deeper level changed
    "Rules*",
    "Enforcement > *",
])
def test_section_glob_does_not_match(reddit_enforcement: Change, glob: str) -> None:
    assert matched(reddit_enforcement, {"source": REDDIT, "sections": [glob]}) is None


def test_only_the_watched_source_matches(reddit_enforcement: Change) -> None:
    assert matched(reddit_enforcement, {"source": X, "sections": ["*"]}) is None
    assert matched(reddit_enforcement, {"source": X}) is None
    assert matched(reddit_enforcement, {"source": REDDIT}) == [{"watch": 1, "source": REDDIT}]


def test_glob_reports_only_the_sections_it_matched(x_rights_contact: Change) -> None:
    assert matched(x_rights_contact, {"source": X, "sections": ["*Your Rights*", "Privacy*"]}) == [
        {"watch": 1, "source": X, "sections": ["X Privacy Policy > 6. Your Rights and Ours"],
         "globs": ["*Your Rights*"]}]
    both = matched(x_rights_contact, {"source": X, "sections": ["X Privacy Policy*"]})
    assert both is not None and both[0]["sections"] == x_rights_contact.sections
    assert matched(x_rights_contact, {"source": X, "sections": ["1. Information We Collect"]}) is None


# --- keywords on a real change --------------------------------------------------------------------

@pytest.mark.parametrize("keyword", [
    "suspension",        # a deleted word
    "Suspension",        # case-insensitive
    "ban",               # inserted as 'removal/ban:' — punctuation is a word boundary
    "PERMANENT",         # an inserted word
    "termination",       # deleted
    "suspen*",           # a prefix
    "permanent banning",  # an inserted phrase
    "Account  Suspension",  # a deleted phrase (spaces collapse)
])
def test_keyword_matches(reddit_enforcement: Change, keyword: str) -> None:
    reasons = matched(reddit_enforcement, {"source": REDDIT, "keywords": [keyword, "nothing-like-this"]})
    assert reasons == [{"watch": 1, "source": REDDIT, "keywords": [keyword]}]


@pytest.mark.parametrize("keyword", [
    "suspend",           # whole words only: 'suspension' is not 'suspend'
    "bann",              # 'banning' is not 'bann'
    "appeal",            # not in the change at all
    "enforcement",       # in the section title, not in the changed words
    "violation",         # in the unchanged words of a modified block: only changed words count
    "spam",              # likewise
    "temporary or permanent",  # 'or' is unchanged: a phrase must lie within changed words
    "content removal",   # unchanged words
])
def test_keyword_does_not_match(reddit_enforcement: Change, keyword: str) -> None:
    if keyword == "violation":
        # Make sure the premise holds: the word is in a modified block, but unchanged.
        blocks = Diff.from_json(reddit_enforcement.diff).changes
        text = " ".join((b.old or "") + " " + (b.new or "") for b in blocks).lower()
        changed = " ".join(b.inserted_text + " " + b.deleted_text for b in blocks).lower()
        assert "violation" in text and "violation" not in changed
    assert matched(reddit_enforcement, {"source": REDDIT, "keywords": [keyword]}) is None


def test_keywords_under_sections_must_occur_in_those_sections(x_rights_contact: Change) -> None:
    # "health" was inserted under "10. How To Contact X", not under "6. Your Rights and Ours".
    assert matched(x_rights_contact, {"source": X, "sections": ["*Your Rights*"], "keywords": ["health"]}) is None
    assert matched(x_rights_contact, {"source": X, "sections": ["10. *"], "keywords": ["Consumer Health Data"]}) == [
        {"watch": 1, "source": X, "sections": ["X Privacy Policy > 10. How To Contact X"], "globs": ["10. *"],
         "keywords": ["Consumer Health Data"]}]
    assert matched(x_rights_contact, {"source": X, "keywords": ["health", "protection"]}) == [
        {"watch": 1, "source": X, "keywords": ["health", "protection"]}]
    # "EU-US Data Protection Framework" -> "EU-US Data Privacy Framework": only one word changed (docs/sops.md).
    assert matched(x_rights_contact, {"source": X, "sections": ["6. *"], "keywords": ["privacy"]}) is not None
    assert matched(x_rights_contact, {"source": X, "keywords": ["Data Privacy Framework"]}) is None


def test_added_and_removed_blocks_count_whole(session: Session) -> None:
    # X v3 -> v4 adds 21 blocks under "1. Information We Collect".
    change = record_versions(session, X, [3, 4])[0]
    assert change.added == 21 and change.modified == 0
    assert matched(change, {"source": X, "keywords": ["IP address"]}) is not None
    assert matched(change, {"source": X, "sections": ["Information We Collect"], "keywords": ["IP address"]}) is None
    assert matched(change, {"source": X, "sections": ["1. Information We Collect"], "keywords": ["bookmarks"]}) \
        is not None
    # Reddit v0 -> v1 removes whole blocks, e.g. "Do not post violent content": removed text counts too.
    removed = record_versions(session, REDDIT, [0, 1])[0]
    assert removed.removed > 0
    assert matched(removed, {"source": REDDIT, "sections": ["Do not post violent content"],
                             "keywords": ["violent"]}) is not None


# --- globs and keywords as written ----------------------------------------------------------------

def test_path_tails() -> None:
    assert path_tails("Privacy Policy >  Data  retention") == ["privacy policy > data retention", "data retention"]
    assert path_tails("") == [""]


@pytest.mark.parametrize("glob,problem", [
    ("", "empty"), ("  ", "empty"), ("A >> B", "level"), ("> A", "level"), ("A >", "level"),
    ("[abc", "never closed"), ("A [x", "never closed"),
])
def test_bad_globs(glob: str, problem: str) -> None:
    why = glob_problem(glob)
    assert why is not None and problem in why


@pytest.mark.parametrize("glob", ["How we use your information*", "*> Data retention", "[!a]*", "A > B > C", "?"])
def test_good_globs(glob: str) -> None:
    assert glob_problem(glob) is None


@pytest.mark.parametrize("keyword,problem", [
    ("", "empty"), ("a*b", "only allowed at the end"), ("--", "no letters"), ("two words*", "single word"),
])
def test_bad_keywords(keyword: str, problem: str) -> None:
    why = keyword_problem(keyword)
    assert why is not None and problem in why


# --- impacts in the database ------------------------------------------------------------------------

def test_map_change_records_one_impact_per_sop_with_reasons(session: Session, reddit_enforcement: Change) -> None:
    add_sop(session, "SOP-BANS", [{"source": REDDIT, "sections": ["Enforcement"]},
                                  {"source": X},
                                  {"source": REDDIT, "keywords": ["ban", "appeal"]}], review_days=3)
    add_sop(session, "SOP-APPEALS", [{"source": REDDIT, "keywords": ["appeal"]}], owner="bob@example.com")
    add_sop(session, "SOP-ANY", [{"source": REDDIT}], owner="carol@example.com")
    add_sop(session, "SOP-OFF", [{"source": REDDIT}], enabled=False)
    created = map_change(session, reddit_enforcement, context=MappingContext.load(session, default_review_days=7))
    session.commit()
    assert sorted(i.sop_id for i in created) == ["SOP-ANY", "SOP-BANS"]
    bans = next(i for i in created if i.sop_id == "SOP-BANS")
    assert bans.status == "open" and bans.source_id == REDDIT and bans.change_id == reddit_enforcement.id
    assert bans.reasons == [
        {"watch": 1, "source": REDDIT, "sections": ["Reddit Content Policy > Enforcement"], "globs": ["Enforcement"]},
        {"watch": 3, "source": REDDIT, "keywords": ["ban"]},
    ]
    # Assignee is the owner; due = detection day + the SOP's review_days, else the default.
    assert bans.assignee == "alice@example.com"
    assert bans.due_date == (reddit_enforcement.detected_at + timedelta(days=3)).date()
    anyone = next(i for i in created if i.sop_id == "SOP-ANY")
    assert anyone.assignee == "carol@example.com"
    assert anyone.due_date == (reddit_enforcement.detected_at + timedelta(days=7)).date()

    events = session.exec(select(AuditEvent).where(AuditEvent.action == "impact.created")
                          .order_by(col(AuditEvent.seq))).all()
    assert [(e.actor, e.entity_id) for e in events] == [("system", str(i.id)) for i in created]
    assert events[-1].after is not None and events[-1].after["sop_id"] == "SOP-BANS"
    assert events[-1].after["reasons"] == bans.reasons
    assert verify(session).ok


def test_mapping_never_duplicates(session: Session, reddit_enforcement: Change) -> None:
    add_sop(session, "SOP-1", [{"source": REDDIT, "sections": ["Enforcement"]}])
    assert len(map_change(session, reddit_enforcement)) == 1
    assert map_change(session, reddit_enforcement) == []
    session.commit()
    assert remap(session=session).impacts == []
    # A new SOP: remap maps the old change to it, and only to it.
    add_sop(session, "SOP-2", [{"source": REDDIT, "keywords": ["suspension"]}])
    report = remap(session=session)
    assert report.changes == 1 and [i.sop_id for i in report.impacts] == ["SOP-2"]
    assert remap(session=session, since=reddit_enforcement.detected_at + timedelta(days=1)).changes == 0
    session.commit()
    assert len(session.exec(select(Impact)).all()) == 2
    assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "impact.created")).all()) == 2


def test_crawl_mapper_reuses_the_compiled_watches_until_the_sops_change(
        session: Session, reddit_enforcement: Change) -> None:
    mapper = CrawlMapper()
    assert mapper(session, reddit_enforcement) == []  # no SOPs yet
    add_sop(session, "SOP-1", [{"source": REDDIT, "sections": ["Enforcement"]}])
    assert [i.sop_id for i in mapper(session, reddit_enforcement)] == ["SOP-1"]  # new SOP seen
    compiled = mapper._context
    assert mapper(session, reddit_enforcement) == [] and mapper._context is compiled  # reused, no duplicate
    add_sop(session, "SOP-2", [{"source": REDDIT, "keywords": ["ban"]}], owner="bob@example.com")
    assert [i.sop_id for i in mapper(session, reddit_enforcement)] == ["SOP-2"]
    assert mapper._context is not compiled


def test_changes_are_mapped_in_the_transaction_that_records_them(session: Session) -> None:
    add_source(session, X)
    add_sop(session, "SOP-RIGHTS", [{"source": X, "sections": ["*Your Rights*"]}])
    add_sop(session, "SOP-HEALTH", [{"source": X, "keywords": ["health data"]}])
    session.commit()
    changes = record_versions(session, X, [1, 2, 3], on_change=map_change)
    session.commit()
    impacts = session.exec(select(Impact).order_by(col(Impact.id))).all()
    # v1 -> v2 only changes the effective date; v2 -> v3 touches both watched things.
    assert [(i.change_id, i.sop_id) for i in impacts] == [(changes[1].id, "SOP-HEALTH"), (changes[1].id, "SOP-RIGHTS")]


def test_technical_changes_are_never_mapped(session: Session) -> None:
    src = add_source(session, REDDIT)
    add_sop(session, "SOP-ALL", [{"source": REDDIT}])
    record_versions(session, REDDIT, [3], on_change=map_change)
    src.remove = [".cookie-banner", "nav", "h1"]  # new rules: what they change is technical
    session.add(src)
    changes = record_versions(session, REDDIT, [3], on_change=map_change, start=T0 + timedelta(days=1))
    assert len(changes) == 1 and changes[0].technical
    assert map_change(session, changes[0]) == []
    assert remap(session=session).impacts == []
    session.commit()
    assert session.exec(select(Impact)).all() == []


def test_fast_glob_shapes_agree_with_fnmatch(session: Session) -> None:
    """Literal, prefix, suffix and contains globs take shortcuts; they must match exactly what fnmatch would."""
    import random
    import re
    from fnmatch import translate

    from tracker.impacts.mapping import _SourceWatches, normalise_glob

    sections = [c.section for ch in record_versions(session, X, [0, 1, 3, 4]) + record_versions(session, REDDIT, [1, 2])
                for c in Diff.from_json(ch.diff).changes] + ["", "A", "A > B > C"]
    rng = random.Random(3)
    globs = ["*", "**", "A", "a > b*", "*> c", "*b*", "?", "[ab]*", "*x privacy policy*", "**> c"]
    for section in sections:
        levels = section.split(" > ")
        for _ in range(4):
            tail = " > ".join(levels[rng.randrange(len(levels)):])
            cut = rng.randrange(len(tail) + 1)
            globs += [tail, tail[:cut] + "*", "*" + tail[cut:], "*" + tail[cut:cut + 5] + "*", "* > " + tail]
    idx = _SourceWatches()
    ids = {g: idx.glob_id(g) for g in globs if glob_problem(g) is None}
    reference = [(re.compile(translate(normalise_glob(g)), re.DOTALL), gid) for g, gid in ids.items()]
    for section in set(sections):
        tails = path_tails(section)
        expected = {gid for rx, gid in reference if any(rx.match(t) for t in tails)}
        assert idx.globs_matching(section) == expected, section
