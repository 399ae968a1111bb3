"""The policy file: parsing, validation errors, merging, reloading, globs and plan size."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hookagent.errors import PolicyError
from hookagent.models import Phase
from hookagent.policy import Facts, Policies, Policy, glob_regex, parse_policies, plan_files
from hookagent.settings import Settings
from tests.cli.test_cli import bare_env, free_port, one_error_line

EXAMPLE = """\
[default]
approvals = 1

[repo."acme/payments-api"]
approvals = 2
auto_approve = [{ source = "sentry", level = "warning" }, { labels = ["typo"], max_files = 1 }]
paths_denied = ["infra/**", "secrets/**"]
max_budget_usd = 2.0
"""


def test_repo_table_merges_over_the_default() -> None:
    book = parse_policies(EXAMPLE + '\n[repo."acme/other"]\nmodel = "opus"\n', "hookagent.toml")
    payments = book.effective("ACME/Payments-API")  # names are matched in any case
    assert (payments.approvals, payments.max_budget_usd) == (2, 2.0)
    assert payments.paths_denied == ("infra/**", "secrets/**")
    assert book.effective("acme/other").model == "opus"
    assert book.effective("acme/other").approvals == 1
    assert book.effective("nobody/else") == book.default
    view = book.view()
    assert view["file"] == "hookagent.toml"
    assert view["repos"]["acme/payments-api"]["approvals"] == 2


def test_auto_rules_match_every_key_they_name() -> None:
    policy = parse_policies(EXAMPLE, "h.toml").effective("acme/payments-api")
    assert policy.auto_rule(Facts(source="sentry", level="warning")) is not None
    assert policy.auto_rule(Facts(source="sentry", level="error")) is None
    found = policy.auto_rule(Facts(source="github", labels=("Typo", "docs"), files=1))
    assert found is not None and found[0] == 2
    assert found[1].describe() == '{labels = ["typo"], max_files = 1}'
    assert policy.auto_rule(Facts(source="github", labels=("typo",), files=2)) is None
    first = policy.auto_approve[0].describe()
    assert first == '{source = "sentry", level = "warning"}'


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[default]\napprovals = 0\n", "[default] approvals: input should be greater than"),
        ('[repo."acme/x"]\napprovals = "two"\n', '[repo."acme/x"] approvals: input should be'),
        ('[repo."acme/x"]\npaths_deny = []\n', '[repo."acme/x"] paths_deny: extra inputs'),
        ('[repo."x"]\napprovals = 1\n', '[repo."x"]: the repository must be owner/name'),
        ("[defaults]\n", "unknown table [defaults]"),
        ("[default]\nauto_approve = [{}]\n", "auto_approve.0: an empty rule would approve"),
        ("[default\n", "invalid TOML"),
        (
            '[repo."acme/x"]\nnetwork_allow = ["https://x.org"]\n',
            "[repo.\"acme/x\"] network_allow: entry 'https://x.org' is not host[:port]",
        ),
        (
            '[repo."acme/x".mcp_servers.my_docs]\ncommand = "x"\n',
            "mcp_servers: server name 'my_docs': letters, digits and '-' only (no '_')",
        ),
        (
            '[repo."acme/x".mcp_servers.docs]\ncommand = "x"\nurl = "https://d.org/mcp"\n',
            "mcp_servers.docs: set either command (a stdio server) or url",
        ),
        ('[repo."acme/x".mcp_servers.docs]\nargs = ["x"]\n', "mcp_servers.docs: set either"),
        (
            '[repo."acme/x".mcp_servers.docs]\ncommand = "x"\nenv = ["TOKEN=abc"]\n',
            "mcp_servers.docs.env: 'TOKEN=abc' is not an environment variable name (names only)",
        ),
        (
            '[repo."acme/x".mcp_servers.docs]\ncommand = "x"\nenv = ["HOOKAGENT_GITHUB_TOKEN"]\n',
            "mcp_servers.docs.env: 'HOOKAGENT_GITHUB_TOKEN': hookagent's own settings are not",
        ),
        (
            '[repo."acme/x".mcp_servers.docs]\nurl = "https://d.org"\nenv = ["T"]\n',
            "mcp_servers.docs: args and env are for a command",
        ),
        ('[repo."acme/x".mcp_servers.docs]\nurl = "file:///x"\n', "must be an http:// or"),
        ('[repo."acme/x".mcp_servers.docs]\ncommand = "x"\nport = 1\n', "docs.port: extra"),
        ("[default]\nmax_test_fixes = 9\n", "max_test_fixes: input should be less than"),
        (
            '[repo."acme/x"]\nsetup_network_allow = ["https://pypi.org"]\n',
            "setup_network_allow: entry 'https://pypi.org' is not host[:port]",
        ),
        (
            '[default]\nsetup_env = ["HOOKAGENT_GITHUB_TOKEN"]\n',
            "setup_env: 'HOOKAGENT_GITHUB_TOKEN' is not an environment name setup may receive",
        ),
        ("[default]\nsetup_timeout = 0\n", "[default] setup_timeout: input should be greater"),
        ('[default]\nplan_agent = "gpt"\n', "[default] plan_agent: input should be"),
    ],
)
def test_invalid_files_name_the_file_table_and_key(text: str, says: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, "hookagent.toml")
    assert caught.value.message.startswith("HOOKAGENT_POLICY_FILE: hookagent.toml: ")
    assert says in caught.value.message


def test_reloads_on_change_and_keeps_the_last_good_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hookagent.toml"
    path.write_text(EXAMPLE)
    policies = Policies(path)
    assert policies.effective("acme/payments-api").approvals == 2
    path.write_text(EXAMPLE.replace("approvals = 2", "approvals = 3"))
    os.utime(path, ns=(1, 1))  # a distinct mtime even on a coarse clock
    assert policies.effective("acme/payments-api").approvals == 3
    path.write_text(EXAMPLE.replace("approvals = 2", "approvals = -1"))
    os.utime(path, ns=(2, 2))
    with caplog.at_level(logging.ERROR, logger="hookagent.policy"):
        assert policies.effective("acme/payments-api").approvals == 3
    assert "approvals: input should be greater than or equal to 1" in caplog.text
    assert "keeping the policy loaded at" in caplog.text


def test_no_file_means_one_approval_and_no_rules() -> None:
    policy = Policies(None).effective("acme/payments-api")
    assert (policy.approvals, policy.auto_approve, policy.paths_denied) == (1, (), ())


def test_policy_overrides_the_run_settings(settings: Settings) -> None:
    text = '[default]\nmodel = "opus"\ntimeout = 12\nallowed_tools = ["Read", "Edit"]\n'
    own = parse_policies(text, "h.toml").default.run_settings(settings)
    assert (own.claude_model, own.agent_model) == ("opus", "opus")
    assert (own.planning_timeout, own.execution_timeout) == (12, 12)
    assert own.allowed_tools == ["Read", "Edit"]


def test_each_phase_has_its_own_agent_and_model_over_the_common_ones(settings: Settings) -> None:
    text = (
        '[default]\nagent = "codex"\nmodel = "base"\n'
        '[repo."acme/api"]\nplan_agent = "claude"\nplan_model = "planner"\n'
        'execute_model = "executor"\n'
    )
    policy = parse_policies(text, "h.toml").effective("acme/api")
    plan = policy.run_settings(settings, Phase.PLAN)
    execute = policy.run_settings(settings, Phase.EXECUTE)
    assert (plan.agent, plan.claude_model, plan.agent_model) == ("claude", "planner", "planner")
    assert (execute.agent, execute.agent_model) == ("codex", "executor")
    either = policy.run_settings(settings)
    assert (either.agent, either.agent_model) == ("codex", "base")


def test_instructions_file_is_relative_to_the_policy_file() -> None:
    text = '[default]\ninstructions_file = "ops/agents.md"\n[repo."acme/api"]\napprovals = 2\n'
    book = parse_policies(text, "/etc/hookagent/hookagent.toml")
    expected = Path("/etc/hookagent/ops/agents.md")
    assert book.effective("acme/api").instructions_file == expected


def test_network_allow_adds_to_the_settings_list_per_repository(settings: Settings) -> None:
    text = (
        '[default]\nnetwork_allow = ["pypi.org"]\n'
        '[repo."acme/api"]\nnetwork_allow = ["*.npmjs.org:443"]\n'
        '[repo."acme/web"]\napprovals = 2\n'
    )
    book = parse_policies(text, "h.toml")
    base = settings.model_copy(update={"egress_allow": "mirror.corp:8443"})
    # A repository's list replaces the default's (key by key), and adds to the setting's.
    assert book.effective("acme/api").run_settings(base).egress_allow == (
        "mirror.corp:8443,*.npmjs.org:443"
    )
    assert book.effective("acme/web").run_settings(base).egress_allow == (
        "mirror.corp:8443,pypi.org"
    )
    assert book.effective("acme/other").run_settings(settings).egress_allow == "pypi.org"


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("infra/**", "infra/main.tf", True),
        ("infra/**", "infra/modules/db/main.tf", True),
        ("infra/**", "src/infra/main.tf", False),
        ("infra/**", "infrastructure.md", False),
        ("**/secrets/*", "a/b/secrets/x", True),
        ("**/secrets/*", "secrets/x", True),
        ("**/secrets/*", "secrets/x/y", False),
        ("*.pem", "deep/down/key.pem", True),
        ("src/*.py", "src/a/b.py", False),
        ("config/[!a]*.yml", "config/b.yml", True),
        ("config/[!a]*.yml", "config/a.yml", False),
    ],
)
def test_globs(glob: str, path: str, matches: bool) -> None:
    assert bool(glob_regex(glob).match(path)) is matches


def test_plan_size_counts_distinct_files_named() -> None:
    plan = (
        "Guard the division in `app.py` (see app.py:2), add tests/test_app.py, "
        "e.g. a case for [] i.e. empty; docs at https://example.com/guide.html; v1.2 ok."
    )
    assert plan_files(plan) == {"app.py", "tests/test_app.py"}


def test_an_invalid_file_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "hookagent.toml"
    path.write_text('[repo."acme/payments-api"]\napprovals = 0\n')
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "hookagent.cli", "up", "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=bare_env(HOOKAGENT_DATA_DIR=str(data), HOOKAGENT_POLICY_FILE=str(path)),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    line = one_error_line(result)
    assert line.startswith(f"error: HOOKAGENT_POLICY_FILE: {path}: ")
    assert '[repo."acme/payments-api"] approvals: input should be greater' in line
    assert not data.exists()


def test_a_long_thread_keeps_the_newest_comments() -> None:
    from hookagent.briefing.discussion import Comment, render_thread

    comments = [Comment(f"user{i}", f"t{i}", "x" * 100) for i in range(10)]
    text = render_thread(comments, limit=500)
    assert text.startswith("Comments, oldest first (6 earlier comments left out for size):")
    assert "user5" not in text and "user6" in text and text.endswith("x" * 100)


def test_mcp_servers_and_test_parse_and_default() -> None:
    text = (
        '[default]\ntest = "python -m pytest -q"\n\n'
        '[repo."acme/x".mcp_servers.docs]\ncommand = "docs-mcp"\nargs = ["--stdio"]\n'
        'env = ["DOCS_AUTH"]\n\n[repo."acme/x".mcp_servers.web]\nurl = "https://d.org/mcp"\n'
    )
    book = parse_policies(text, "hookagent.toml")
    policy = book.effective("acme/x")
    assert policy.test == "python -m pytest -q" and policy.max_test_fixes == 1
    docs = policy.mcp_servers["docs"]
    assert (docs.command, docs.args, docs.env, docs.url) == (
        "docs-mcp",
        ("--stdio",),
        ("DOCS_AUTH",),
        None,
    )
    assert policy.mcp_servers["web"].url == "https://d.org/mcp"
    assert book.effective("acme/other").mcp_servers == {}
    # GET /policies shows the names of the variables, never a value.
    assert book.view()["repos"]["acme/x"]["mcp_servers"]["docs"]["env"] == ["DOCS_AUTH"]
    assert parse_policies('[default]\ntest = " "\n', "h.toml").default.test is None


def test_ci_definitions_are_denied_unless_the_policy_allows_them() -> None:
    """The forge's CI runs a pushed branch's own definitions with the repository's secrets."""
    changed = [
        ".github/workflows/ci.yml", ".github/actions/setup/action.yml", ".gitlab-ci.yml",
        ".circleci/config.yml", "Jenkinsfile", "src/app.py", "docs/ci.md",
    ]  # fmt: skip
    refused = Policy().refusal(changed, "acme/x")
    assert refused == (
        "changes outside the policy: .circleci/config.yml, .github/actions/setup/action.yml, "
        ".github/workflows/ci.yml, .gitlab-ci.yml, Jenkinsfile (paths_denied of acme/x; "
        "CI definitions need allow_ci_changes = true)"
    )
    allowed = Policy(allow_ci_changes=True, paths_denied=("infra/**",))
    assert allowed.refusal(changed, "acme/x") is None
    assert allowed.refusal(["infra/main.tf"], "acme/x") == (
        "changes outside the policy: infra/main.tf (paths_denied of acme/x)"
    )
