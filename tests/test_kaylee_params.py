"""Recipe parameters: declared types and allowed values; values enter argv as one element."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge import ConfigError, Message
from bridge.runtime import load_config
from kaylee import KayleeConfig, RequestRefused
from kaylee._params import ParamSpec, Template, render_argv, validate_params
from kaylee._requests import parse_request

SPECS = (
    ParamSpec("branch", pattern=r"[A-Za-z0-9._/-]+", default="main"),
    ParamSpec("count", type="int", min=1, max=10),
    ParamSpec("force", type="bool"),
    ParamSpec("env", choices=("staging", "production"), required=True),
    ParamSpec("note"),
)


def test_values_are_checked_and_converted() -> None:
    got = validate_params(SPECS, {"count": "3", "force": "yes", "env": "staging"})
    assert got == {"branch": "main", "count": 3, "force": True, "env": "staging"}


@pytest.mark.parametrize(("given", "message"), [
    ({"env": "prod"}, "must be one of staging, production, not 'prod'"),
    ({}, "parameter 'env' is required"),
    ({"env": "staging", "count": "3; rm -rf /"}, "must be a whole number"),
    ({"env": "staging", "count": 11}, "at most 10"),
    ({"env": "staging", "count": True}, "must be a whole number"),
    ({"env": "staging", "force": "maybe"}, "must be true or false"),
    ({"env": "staging", "branch": "main; rm -rf /"}, "does not match"),
    ({"env": "staging", "branch": "$(reboot)"}, "does not match"),
    ({"env": "staging", "note": "--upload-pack=touch /tmp/x"}, "must not start with '-'"),
    ({"env": "staging", "note": "two\nlines"}, "control characters"),
    ({"env": "staging", "note": "x" * 201}, "at most 200"),
    ({"env": "staging", "note": 5}, "must be text"),
    ({"env": "staging", "shell": "sh"}, "unknown parameter 'shell'"),
])
def test_bad_values_are_refused_with_the_reason(given: dict[str, object], message: str) -> None:
    with pytest.raises(RequestRefused, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("$", r"\$")):
        validate_params(SPECS, given)


@pytest.mark.parametrize("hostile", ["; rm -rf /", "$(touch /tmp/pwned)", "`id`", "a b c",
                                     "'\"", "*", "~root", "x && y | z > /etc/passwd"])
def test_a_value_is_always_exactly_one_argv_element(hostile: str) -> None:
    values = validate_params((ParamSpec("text"),), {"text": hostile})
    argv = render_argv(["echo", "{text}", "--label=<{text}>"], values)
    assert argv == ["echo", hostile, f"--label=<{hostile}>"]


def test_an_absent_optional_value_drops_its_whole_element() -> None:
    assert render_argv(["git", "log", "--author={who}", "{{literal}}"], {}) == \
        ["git", "log", "{literal}"]


def test_templates_name_their_placeholders_and_refuse_stray_braces() -> None:
    assert Template("--to={a}-{b_2}").names() == {"a", "b_2"}
    with pytest.raises(ConfigError, match="a lone '\\{'"):
        Template("{oops").names()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kaylee.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("toml", "message"), [
    ('[[recipe]]\nname = "x"\nargv = ["echo", "{who}"]\n', "undeclared parameter(s) who"),
    ('[[recipe]]\nname = "x"\nargv = ["{prog}"]\n[[recipe.param]]\nname = "prog"\n',
     "the program (first argv element) cannot come from a parameter"),
    ('[[recipe]]\nname = "x"\n', "either argv"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\nsteps = [["b"]]\n', "either argv"),
    ('[[recipe]]\nname = "x"\nsteps = ["echo hi"]\n', "steps[0]"),
    ('[[recipe]]\nname = "x"\nargv = "echo hi"\n', "expected a list"),
    ('[[recipe]]\nname = "Bad Name"\nargv = ["a"]\n', "not a recipe name"),
    ('[[recipe]]\nname = "deploy"\nargv = ["a"]\n', "is a built-in recipe"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\n[[recipe]]\nname = "x"\nargv = ["b"]\n',
     "defined twice"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\n[[recipe.param]]\nname = "p"\ntype = "float"\n',
     "must be one of str, int, bool"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\n[[recipe.param]]\nname = "p"\npattern = "("\n',
     "not a regular expression"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\n[[recipe.param]]\nname = "p"\ntype = "int"\n'
     'default = "many"\n', "default"),
    ('[[recipe]]\nname = "x"\nargv = ["a"]\nenv = { A = 1 }\n', "table of text values"),
    ('timezone = "Mars/Olympus"\n', "unknown time zone"),
    ('concurrency = 0\n', "between 1 and 16"),
    ('[code_review]\nroutes = ["strong"]\n', "no [[models.route]] named strong"),
])
def test_bad_recipes_are_config_errors_naming_the_key(tmp_path: Path, toml: str,
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config(KayleeConfig, "kaylee", write(tmp_path, toml), env={})


def message(content: str, **meta: object) -> Message:
    return Message.from_record({"v": 1, "t": "msg", "id": "claude-01JD3X6ZB5T4Q8W2M7N9P0R1S2",
                                "ts": "2026-11-21T09:15:02.113Z", "from": "claude",
                                "to": "kaylee", "type": "request", "content": content,
                                "metadata": meta})


KNOWN = {"deploy": object(), "report": object()}


def test_requests_name_the_recipe_in_metadata_or_in_the_text() -> None:
    by_meta = parse_request(message("please deploy", recipe="deploy",
                                    params={"target": "site"}, dry_run=True), KNOWN)
    assert (by_meta.recipe, by_meta.params, by_meta.dry_run) == ("deploy", {"target": "site"},
                                                                 True)
    by_text = parse_request(message("deploy target=site --dry-run"), KNOWN)
    assert (by_text.recipe, by_text.params, by_text.dry_run) == ("deploy", {"target": "site"},
                                                                 True)
    # What Kami passes on from "/kaylee deploy: target=site" on WhatsApp.
    from_kami = parse_request(message("deploy: target=site", task="deploy"), KNOWN)
    assert (from_kami.recipe, from_kami.params) == ("deploy", {"target": "site"})


@pytest.mark.parametrize(("content", "meta", "reason"), [
    ("", {}, "an empty request"),
    ("reboot now", {}, "unknown recipe 'reboot'; Kaylee runs: deploy, report"),
    ("please deploy the site", {"task": "deploy"}, "unknown recipe 'please'"),  # no guessing
    ("deploy; rm -rf /", {}, "unknown recipe 'deploy;'"),
    ("deploy target", {}, "parameters are written name=value"),
    ("deploy a=1 a=2", {}, "given twice"),
    ("x", {"recipe": 5}, "metadata.recipe must name a recipe"),
    ("x", {"recipe": "deploy", "params": ["a"]}, "metadata.params must be an object"),
    ("x", {"recipe": "deploy", "dry_run": "yes"}, "metadata.dry_run must be true or false"),
])
def test_unreadable_requests_are_refused(content: str, meta: dict[str, object],
                                         reason: str) -> None:
    with pytest.raises(RequestRefused, match=reason.replace("(", r"\(")):
        parse_request(message(content, **meta), KNOWN)
