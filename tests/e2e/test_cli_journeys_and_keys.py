"""The CLI on customers' primary keys and on journey documents, as a user runs it."""

from __future__ import annotations

from tests.e2e.conftest import Herald


def test_set_primary_key_is_refused_while_two_customers_share_the_value(herald: Herald) -> None:
    assert herald.cli("workspaces", "create", "default").returncode == 0
    assert (
        herald.cli("schema", "add-attribute", "--workspace", "default", "plan", "string").returncode
        == 0
    )
    (herald.home / "people.csv").write_text("email,plan\na@b.co,pro\nc@d.co,pro\n")
    assert herald.cli("customers", "import", "people.csv").returncode == 0

    refused = herald.cli("schema", "set-primary-key", "--workspace", "default", "plan")
    shown = herald.cli("schema", "show", "--workspace", "default")

    assert refused.returncode == 1
    assert "must be unique" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert '"primary_key":"email"' in shown.stdout.replace(" ", "")


WELCOME = """\
name: welcome
trigger:
  event: trigger_some_message
start: hook
steps:
  hook:
    type: webhook
    url: "https://example.com/hooks/{{ customer.id }}"
    next: mail
  mail:
    type: email
    subject: "Welcome {{ customer.name | default: 'there' }}"
    body: Hello!
"""

BROKEN = """\
name: broken
trigger: {event: x}
start: a
steps:
  a: {type: webhook, url: "ftp://example.com", next: b}
  b: {type: delay, duration: 3 days}
"""


def test_journeys_apply_creates_then_versions_and_shows_the_document(herald: Herald) -> None:
    assert herald.cli("workspaces", "create", "default").returncode == 0
    (herald.home / "welcome.yaml").write_text(WELCOME)

    created = herald.cli("journeys", "apply", "welcome.yaml")
    unchanged = herald.cli("journeys", "apply", "welcome.yaml")
    (herald.home / "welcome.yaml").write_text(WELCOME.replace("Hello!", "Hello again!"))
    updated = herald.cli("journeys", "apply", "welcome.yaml")
    first = herald.cli("journeys", "show", "welcome", "--version", "1")
    paused = herald.cli("journeys", "pause", "welcome")
    listed = herald.cli("journeys", "list")

    assert created.stdout.strip() == "welcome: created (version 1, live)"
    assert unchanged.stdout.strip() == "welcome: unchanged (version 1, live)"
    assert updated.stdout.strip() == "welcome: updated (version 2, live)"
    assert "body: Hello!" in first.stdout
    assert paused.stdout.strip() == "welcome: paused"
    assert "welcome" in listed.stdout and "paused" in listed.stdout


def test_journeys_apply_reports_every_problem_by_step_and_saves_nothing(herald: Herald) -> None:
    assert herald.cli("workspaces", "create", "default").returncode == 0
    (herald.home / "welcome.yaml").write_text(WELCOME)
    (herald.home / "broken.yaml").write_text(BROKEN)
    (herald.home / "syntax.yaml").write_text("name: x\n  trigger: [\n")

    result = herald.cli("journeys", "apply", "welcome.yaml", "broken.yaml", "syntax.yaml")
    listed = herald.cli("journeys", "list")

    assert result.returncode == 1
    assert "step a url: url must start with http:// or https://" in result.stderr
    assert "step b duration: '3 days' is not a duration" in result.stderr
    assert "syntax.yaml cannot run" in result.stderr and "line 2, column" in result.stderr
    assert "Traceback" not in result.stderr
    assert "welcome" not in listed.stdout  # nothing saved while any file is invalid
