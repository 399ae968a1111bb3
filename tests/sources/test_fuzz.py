"""Every webhook parser on arbitrary JSON: a task, a command, or a documented refusal.

The refusals are the ones the webhook route answers without a 5xx: :class:`Ignored` and
:class:`UnknownCommand` (200, ignored), :class:`PayloadError` (422), and the
:class:`WorkspaceError` (422) intake raises for a repository name that is not
``owner/name``. Anything else escaping a parser is a bug.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import example, given
from hypothesis import strategies as st

from hookagent.errors import PayloadError, WorkspaceError
from hookagent.models import NewTask
from hookagent.sources import (
    ChangeEnded,
    Command,
    Ending,
    Feedback,
    Ignored,
    UnknownCommand,
    Verb,
    parse_github,
    parse_gitlab,
    parse_jira,
    parse_linear,
    parse_sentry,
)
from hookagent.sources.base import PROMPT_MAX_CHARS
from hookagent.sources.commands import parse_mention
from hookagent.sources.jira import find_repo
from hookagent.sources.repos import validate_repo
from tests.helpers import FIXTURES, REPO
from tests.strategies import Json, any_json, load_json_files, mutations, strings

PROMPT_MARGIN = 100  # clip_prompt's "[context truncated]" note

DOCS = load_json_files(FIXTURES.glob("*.json"))
ALL_DOCS = list(DOCS.values())


def payloads(source: str) -> st.SearchStrategy[Json]:
    """Random JSON, the source's fixtures mutated, or any fixture mutated."""
    own = [doc for name, doc in DOCS.items() if name.startswith(source)]
    return mutations(own) | mutations(own) | mutations(ALL_DOCS) | any_json


def jira_created(description: Json, self_link: str = "https://x.atlassian.net/rest/2") -> Json:
    """A ``jira:issue_created`` delivery with this description."""
    fields = {"summary": "s", "description": description}
    issue = {"key": "A-1", "self": self_link, "fields": fields}
    return {"webhookEvent": "jira:issue_created", "issue": issue}


def outcome(parse: Callable[[], NewTask | Command | ChangeEnded | Feedback], source: str) -> None:
    """Run ``parse``; refusals must be documented ones, results must hold the invariants."""
    try:
        parsed = parse()
    except (Ignored, UnknownCommand, PayloadError) as refusal:
        assert isinstance(str(refusal), str)
        return
    if isinstance(parsed, NewTask):
        check_task(parsed, source)
    elif isinstance(parsed, ChangeEnded):
        check_ending(parsed, source)
    elif isinstance(parsed, Feedback):
        check_feedback(parsed, source)
    else:
        check_command(parsed, source)


def check_task(task: NewTask, source: str) -> None:
    """The invariants of a task a parser hands to intake."""
    assert task.source == source
    assert isinstance(task.title, str) and task.title.strip()
    assert isinstance(task.prompt, str) and len(task.prompt) <= PROMPT_MAX_CHARS + PROMPT_MARGIN
    assert task.external_id is None or isinstance(task.external_id, str)
    assert task.url is None or isinstance(task.url, str)
    assert isinstance(task.repository, str)
    nested = task.forge == "gitlab"
    try:
        validate_repo(task.repository, nested=nested)
    except WorkspaceError as refused:  # intake answers 422
        assert ("group/…/project" if nested else "owner/name") in refused.message


def check_command(command: Command, source: str) -> None:
    """The invariants of a command a parser hands to intake."""
    assert command.source == source
    assert isinstance(command.ref, str) and command.ref
    assert isinstance(command.verb, Verb)
    assert isinstance(command.text, str) and isinstance(command.actor, str)
    assert all(isinstance(name, str) for name in command.actor_names)


def check_feedback(feedback: Feedback, source: str) -> None:
    """The invariants of review feedback a parser hands to intake: bounded, plain ids."""
    assert feedback.source == source
    assert isinstance(feedback.ref, str) and "!" in feedback.ref
    assert isinstance(feedback.body, str) and isinstance(feedback.actor, str)
    item = feedback.item()
    assert len(item["body"]) <= 8_000 and len(item["diff_hunk"] or "") <= 4_000
    assert feedback.line is None or isinstance(feedback.line, int)
    assert feedback.feedback_id is None or len(feedback.feedback_id) <= 80


def check_ending(ended: ChangeEnded, source: str) -> None:
    """The invariants of a change request's end a parser hands to intake."""
    assert ended.source == source
    assert isinstance(ended.ref, str) and "!" in ended.ref
    assert isinstance(ended.ending, Ending) and isinstance(ended.actor, str)
    assert ended.at is None or isinstance(ended.at, float)


@given(
    payload=payloads("sentry"),
    resource=st.sampled_from([None, "", "issue", "event_alert", "error", "installation"]),
    default_repo=st.sampled_from([None, "acme/payments-api"]),
)
def test_sentry(payload: Json, resource: str | None, default_repo: str | None) -> None:
    outcome(lambda: parse_sentry(payload, resource=resource, default_repo=default_repo), "sentry")


# Found by this test: non-list labels, changelog items and marks were iterated (TypeError),
# an unhashable ADF "type" was looked up in a set, urlsplit refused the "self" link.
@example(
    payload={
        "webhookEvent": "jira:issue_created",
        "issue": {"key": "A-1", "fields": {"labels": 1}},
    },
    default_repo=REPO,
    approve_status="Approved",
    reject_status="Rejected",
)
@example(
    payload={
        "webhookEvent": "jira:issue_updated",
        "issue": {"key": "A-1"},
        "changelog": {"items": 1},
    },
    default_repo=None,
    approve_status="Approved",
    reject_status="Rejected",
)
@example(
    payload=jira_created({"type": "text", "text": "Repository: a/b", "marks": True}),
    default_repo=None,
    approve_status="Approved",
    reject_status="Rejected",
)
@example(
    payload=jira_created({"type": ["paragraph"], "content": []}),
    default_repo=REPO,
    approve_status="Approved",
    reject_status="Rejected",
)
@example(
    payload=jira_created("Repository: a/b", self_link="http://[::1"),
    default_repo=None,
    approve_status="Approved",
    reject_status="Rejected",
)
@given(
    payload=payloads("jira"),
    default_repo=st.sampled_from([None, "acme/payments-api"]),
    approve_status=st.sampled_from(["Approved", "ready to build"]),
    reject_status=st.sampled_from(["Rejected", "Won't do"]),
)
def test_jira(
    payload: Json, default_repo: str | None, approve_status: str, reject_status: str
) -> None:
    def parse() -> NewTask | Command:
        return parse_jira(
            payload,
            default_repo=default_repo,
            approve_status=approve_status,
            reject_status=reject_status,
        )

    outcome(parse, "jira")


@example(  # found by this test: labels that are not a list were iterated (TypeError)
    payload={"action": "opened", "issue": {"labels": True}}, event="issues", label="hookagent"
)
@given(
    payload=payloads("github"),
    event=st.sampled_from(["issues", "issue_comment", "pull_request", "ping", "push", "", None]),
    label=st.sampled_from(["hookagent", "AI Fix"]),
)
def test_github(payload: Json, event: str | None, label: str) -> None:
    outcome(lambda: parse_github(payload, event=event, label=label), "github")


@given(
    payload=payloads("gitlab"),
    event=st.sampled_from(
        [
            None,
            "",
            "Issue Hook",
            "Note Hook",
            "Confidential Note Hook",
            "Merge Request Hook",
            "Push Hook",
        ]
    ),
    label=st.sampled_from(["hookagent", "HookAgent", ""]),
)
def test_gitlab(payload: Json, event: str | None, label: str) -> None:
    outcome(lambda: parse_gitlab(payload, event=event, label=label, bot_username="bot"), "gitlab")


@given(
    payload=payloads("linear"),
    label=st.sampled_from(["hookagent", "HookAgent", ""]),
    projects=st.sampled_from([{}, {"payments": "acme/payments-api", "x": "not a repo"}]),
    default_repo=st.sampled_from([None, "acme/payments-api"]),
)
def test_linear(
    payload: Json, label: str, projects: dict[str, str], default_repo: str | None
) -> None:
    def parse() -> NewTask | Command:
        return parse_linear(
            payload, label=label, projects=projects, default_repo=default_repo, bot_user="bot"
        )

    outcome(parse, "linear")


mentions = st.builds(
    lambda before, word, rest: f"{before}@hookagent{word}{rest}",
    strings,
    st.sampled_from([v.value for v in Verb] + ["", ":", ",", " ", "\n"]) | strings,
    strings,
)


@given(body=strings | mentions)
def test_mentions(body: str) -> None:
    try:
        parsed = parse_mention(body)
    except UnknownCommand as unknown:
        assert isinstance(unknown.word, str) and unknown.word
        return
    if parsed is not None:
        verb, rest = parsed
        assert isinstance(verb, Verb) and isinstance(rest, str)


def test_blank_lines_do_not_make_the_repository_search_quadratic() -> None:
    # Found by this test's long strings: "^\\s*repo" took 5 s for 20,000 newlines, minutes
    # for a 1 MiB description; now each line is tried once.
    started = time.perf_counter()
    assert find_repo("\n" * 200_000 + " \n" * 100_000) is None
    assert time.perf_counter() - started < 2
    assert find_repo("Steps\n\n   Repository:  acme/payments-api.git\n") == REPO
