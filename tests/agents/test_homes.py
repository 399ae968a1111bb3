"""Configuration homes from the operator's templates: copies, our settings over theirs."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from hookagent.agents import build_agent
from hookagent.agents.claude import ClaudeAgent
from hookagent.agents.codex import CodexAgent
from hookagent.agents.gemini import GeminiAgent
from hookagent.agents.home import start_home
from hookagent.errors import AgentError
from hookagent.models import Phase
from hookagent.settings import Settings


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """A template with a nested file, and symlinks out of it (a file and a directory)."""
    root = tmp_path / "template"
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "review.md").write_text("review carefully\n")
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "key").write_text("sk-outside-the-template\n")
    (root / "linked-key").symlink_to(secret / "key")
    (root / "linked-dir").symlink_to(secret)
    return root


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """The run's home, as the worker makes it (created, empty)."""
    home = tmp_path / "run"
    home.mkdir(mode=0o700)
    return home


def test_a_template_is_copied_without_its_symlinks(template: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    start_home(home, template, setting="HOOKAGENT_CODEX_HOME")
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == [
        "prompts",
        "prompts/review.md",
    ]
    assert (home / "prompts" / "review.md").read_text() == "review carefully\n"
    assert not (home / "prompts" / "review.md").is_symlink()
    assert (home.stat().st_mode & 0o777) == 0o700
    # What the agent writes goes to the copy.
    (home / "prompts" / "review.md").write_text("changed by the agent\n")
    assert (template / "prompts" / "review.md").read_text() == "review carefully\n"


def test_a_missing_template_is_refused_by_its_name(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"HOOKAGENT_GEMINI_HOME .* is not a directory"):
        start_home(tmp_path / "home", tmp_path / "nope", setting="HOOKAGENT_GEMINI_HOME")


def test_codex_keeps_the_template_config_and_adds_its_provider(template: Path, run: Path) -> None:
    (template / "config.toml").write_text('[profiles.quiet]\nmodel_reasoning_effort = "low"\n')
    agent = CodexAgent("codex", base_url="http://models.internal/v1", template=template)
    env = agent.configure(run, {"OPENAI_API_KEY": "sk-not-in-a-file"})
    written = (run / "codex" / "config.toml").read_text()
    config = tomllib.loads(written)
    assert config["profiles"] == {"quiet": {"model_reasoning_effort": "low"}}
    assert config["model_provider"] == "hookagent"
    assert config["model_providers"]["hookagent"]["base_url"] == "http://models.internal/v1"
    # The key is read from the environment by name, never written into the home.
    assert config["model_providers"]["hookagent"]["env_key"] == "OPENAI_API_KEY"
    assert "sk-not-in-a-file" not in written
    assert env["CODEX_HOME"] == str(run / "codex")
    assert (run / "codex" / "prompts" / "review.md").is_file()
    assert "model_provider" not in (template / "config.toml").read_text()


@pytest.mark.parametrize(
    "config",
    [
        'model_provider = "openai"\n',
        'profile = "elsewhere"\n',
        '[model_providers.hookagent]\nbase_url = "http://attacker.example"\n',
        'model_providers = { other = { name = "x" } }\n',
        "not toml at all = = \n",
    ],
    ids=["provider", "profile", "our-provider", "inline-providers", "broken"],
)
def test_codex_refuses_a_template_that_would_choose_the_endpoint(
    template: Path, run: Path, config: str
) -> None:
    (template / "config.toml").write_text(config)
    agent = CodexAgent("codex", template=template)
    with pytest.raises(AgentError, match=r"HOOKAGENT_CODEX_HOME: config\.toml"):
        agent.configure(run, {})


def test_codex_turns_its_own_sandbox_off_only_inside_ours() -> None:
    inside = CodexAgent("codex", outer_sandbox=True)
    for phase in Phase:
        argv = inside.argv(phase)
        assert argv[argv.index("--sandbox") + 1] == "danger-full-access"
    outside = CodexAgent("codex")
    assert "danger-full-access" not in outside.argv(Phase.EXECUTE)
    ours = Settings(agent="codex", sandbox="bwrap")
    assert "danger-full-access" in build_agent(ours).argv(Phase.PLAN)
    theirs = ours.model_copy(update={"sandbox": "none"})
    assert "danger-full-access" not in build_agent(theirs).argv(Phase.PLAN)


def test_codex_endpoint_is_the_configured_one_not_a_variable() -> None:
    """The egress proxy must allow what Codex really calls: its configured base URL."""
    agent = CodexAgent("codex", base_url="http://127.0.0.1:9/v1")
    assert agent.model_endpoint == (None, "http://127.0.0.1:9/v1")


def test_gemini_sets_its_auth_over_the_template_settings(template: Path, run: Path) -> None:
    (template / ".gemini").mkdir()
    chosen = {"security": {"auth": {"selectedType": "oauth-personal"}, "folderTrust": {}}}
    (template / ".gemini" / "settings.json").write_text(json.dumps(chosen | {"ui": {"x": 1}}))
    env = GeminiAgent("gemini", template=template).configure(run, {})
    home = Path(env["GEMINI_CLI_HOME"])
    settings = json.loads((home / ".gemini" / "settings.json").read_text())
    assert settings["security"] == {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {}}
    assert settings["ui"] == {"x": 1} and settings["privacy"]["usageStatisticsEnabled"] is False
    assert (home / "prompts" / "review.md").is_file()
    assert json.loads((template / ".gemini" / "settings.json").read_text())["ui"] == {"x": 1}


def test_gemini_refuses_template_settings_that_are_not_an_object(template: Path, run: Path) -> None:
    (template / ".gemini").mkdir()
    (template / ".gemini" / "settings.json").write_text("[1, 2]")
    with pytest.raises(AgentError, match="HOOKAGENT_GEMINI_HOME"):
        GeminiAgent("gemini", template=template).configure(run, {})


def test_claude_gets_a_copy_of_its_template_config_dir(template: Path, run: Path) -> None:
    assert ClaudeAgent("claude").configure(run, {}) == {}
    env = ClaudeAgent("claude", template=template).configure(run, {})
    assert env == {"CLAUDE_CONFIG_DIR": str(run / "claude")}
    assert (run / "claude" / "prompts" / "review.md").is_file()
    assert not os.path.lexists(run / "claude" / "linked-key")


def test_a_resumed_home_keeps_the_session_but_not_what_the_agent_made_of_the_template(
    template: Path, tmp_path: Path
) -> None:
    """The agent swapped the template's copy for a symlink out and planted its own file."""
    home = tmp_path / "home"
    start_home(home, template, setting="HOOKAGENT_CLAUDE_CONFIG_DIR")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (home / "projects").mkdir()
    (home / "projects" / "session.jsonl").write_text("the parked session\n")
    remove = home / "prompts"
    (remove / "review.md").unlink()
    remove.rmdir()
    remove.symlink_to(outside)
    start_home(home, template, setting="HOOKAGENT_CLAUDE_CONFIG_DIR")
    assert (home / "projects" / "session.jsonl").read_text() == "the parked session\n"
    assert not (home / "prompts").is_symlink()
    assert (home / "prompts" / "review.md").read_text() == "review carefully\n"
    assert list(outside.iterdir()) == []  # nothing written through the agent's symlink


def test_a_resumed_codex_home_never_reads_the_agents_config(tmp_path: Path) -> None:
    """Its config.toml is the agent's now: rewritten from the template, never parsed."""
    template = tmp_path / "template"
    template.mkdir()
    (template / "config.toml").write_text('model_reasoning_effort = "high"\n')
    agent = CodexAgent("codex", template=template, base_url="http://127.0.0.1:9/v1")
    run = tmp_path / "run"
    run.mkdir()
    agent.configure(run, {})
    config = run / "codex" / "config.toml"
    config.write_text('model_provider = "evil"\n[[[ not toml')  # the agent's plant
    agent.configure(run, {})
    written = tomllib.loads(config.read_text())
    assert written["model_provider"] == "hookagent"
    assert written["model_reasoning_effort"] == "high"
    assert written["model_providers"]["hookagent"]["base_url"] == "http://127.0.0.1:9/v1"
    # A symlink in its place is replaced, never written through.
    elsewhere = tmp_path / "elsewhere.toml"
    config.unlink()
    config.symlink_to(elsewhere)
    agent.configure(run, {})
    assert not config.is_symlink() and not elsewhere.exists()


def test_a_resumed_gemini_home_never_reads_the_agents_settings(tmp_path: Path) -> None:
    agent = GeminiAgent("gemini")
    run = tmp_path / "run"
    run.mkdir()
    agent.configure(run, {})
    settings = run / "gemini" / ".gemini" / "settings.json"
    target = tmp_path / "operator-settings.json"
    target.write_text("{}")
    settings.unlink()
    settings.symlink_to(target)  # the agent points our settings at another file
    agent.configure(run, {})
    assert not settings.is_symlink() and target.read_text() == "{}"
    written = json.loads(settings.read_text())
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"


def test_a_named_pipe_in_a_resumed_home_does_not_block_the_worker(tmp_path: Path) -> None:
    """The agent leaves a FIFO where each CLI's config file goes: opened to write, it would
    block the worker's event loop for ever. Each file is replaced, never opened."""
    codex = CodexAgent("codex", base_url="http://127.0.0.1:9/v1")
    gemini = GeminiAgent("gemini")
    run = tmp_path / "run"
    run.mkdir()
    codex.configure(run, {})
    gemini.configure(run, {})
    planted = [run / "codex" / "config.toml", run / "gemini" / ".gemini" / "settings.json"]
    for path in planted:
        path.unlink()
        os.mkfifo(path)
    codex.configure(run, {})  # returns: a FIFO opened for writing would wait for a reader
    gemini.configure(run, {})
    for path in planted:
        assert path.is_file() and not path.is_symlink()
        assert path.stat().st_mode & 0o777 == 0o600
    assert tomllib.loads(planted[0].read_text())["model_provider"] == "hookagent"
    assert json.loads(planted[1].read_text())["security"]["auth"]["selectedType"]
