from __future__ import annotations

from pathlib import Path

import pytest

from daemon import config as cfg
from daemon.config import ConfigError, from_mapping, load, reading


def test_defaults_without_any_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRANSCRIBD_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    c = load(None)
    home = tmp_path / "data" / "transcribd"
    assert c.database.url == f"sqlite:///{home / 'jobs.db'}"
    assert c.watch.folders == (home / "inbox",)
    assert c.output.dir == home / "transcripts"
    assert c.output.formats == ("txt", "srt", "vtt", "json", "rttm")
    assert c.pipeline.profile == "auto"
    assert "mkv" in c.watch.extensions and "opus" in c.watch.extensions


def test_systemd_state_directory_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load(None).output.dir == tmp_path / "state" / "transcripts"


def test_env_var_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[output]\ndir = "outs"\nformats = ["json"]\n')
    monkeypatch.setenv("TRANSCRIBD_CONFIG", str(f))
    c = load(None)
    assert c.output.dir == tmp_path / "outs"  # relative to the config file
    assert c.output.formats == ("json",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"watch": {"folder": ["/x"]}}, "unknown config key 'watch.folder'"),
        ({"nope": {}}, "unknown config section 'nope'"),
        ({"watch": {"recursive": "yes"}}, "watch.recursive: expected true or false"),
        ({"watch": {"stable_seconds": -1}}, "watch.stable_seconds: must be greater than 0"),
        (
            {"daemon": {"model_idle_seconds": 0}},
            "daemon.model_idle_seconds: must be greater than 0",
        ),
        ({"watch": {"folders": "/x"}}, "watch.folders: expected a list"),
        ({"output": {"formats": ["txt", "doc"]}}, "output.formats: unknown format 'doc'"),
        ({"pipeline": {"profile": "turbo"}}, "pipeline.profile: unknown profile 'turbo'"),
        ({"daemon": {"max_attempts": 1.5}}, "daemon.max_attempts: expected a whole number"),
        ({"profiles": {"fast": {"beam": 3}}}, "unknown config key 'profiles.fast.beam'"),
        ({"profiles": {"turbo": {}}}, "unknown profile 'profiles.turbo'"),
        ({"database": "sqlite://"}, "'database' must be a table"),
        ({"diarization": {"num_speakers": 0}}, "diarization.num_speakers: must be at least 1"),
        ({"diarization": {"min_speakers": 3, "max_speakers": 2}}, "min_speakers is greater"),
        ({"folders": {"/in": {"profile": "x"}}}, 'folders."/in".profile: unknown profile'),
        ({"folders": {"/in": {"speakers": 2}}}, "unknown config key 'folders.\"/in\".speakers'"),
        ({"profiles": {"fast": {"segmentation_step": 2.0}}}, "segmentation_step: must be in"),
        (
            {"profiles": {"fast": {"diarization_merge_distance": -0.1}}},
            "profiles.fast.diarization_merge_distance: must be in [0, 2]",
        ),
        (
            {"profiles": {"quality": {"diarization_lone_voice_share": 1.5}}},
            "profiles.quality.diarization_lone_voice_share: must be in [0, 1]",
        ),
        ({"output": {"layout": "tree"}}, "output.layout: unknown layout 'tree'"),
        ({"output": {"name": "{lang}"}}, "output.name: '{lang}' lacks {stem}"),
        ({"output": {"name": "{stem}.{language}"}}, "output.name: {language} is not"),
        ({"folders": {"/in": {"layout": "up"}}}, 'folders."/in".layout: unknown layout'),
        ({"folders": {"/in": {"name": "a/{stem}"}}}, 'folders."/in".name: '),
        ({"watch": {"extensions": ["wav", "txt"]}}, "watch.extensions: txt would take"),
        ({"pipeline": {"language": "english"}}, "pipeline.language: unknown language 'english'"),
        ({"folders": {"/in": {"language": "EN"}}}, 'folders."/in".language: unknown language'),
        ({"pipeline": {"hotwords": ["a", "b"]}}, "pipeline.hotwords: expected a string"),
        ({"metrics": {"listen": "9464"}}, "metrics.listen: expected host:port"),
        ({"models": {"diarization_runtime": "tensorrt"}}, "models.diarization_runtime: unknown"),
        (
            {"hooks": {"on_done": ["/bin/x", "{path}"]}},
            "hooks.on_done: '{path}': unknown placeholder",
        ),
        ({"hooks": {"on_failed": "/bin/x {job}"}}, "hooks.on_failed: expected a list"),
        ({"hooks": {"webhook": "ftp://h/x"}}, "hooks.webhook: an http:// or https:// URL"),
        ({"hooks": {"webhook": "http://h:abc/x"}}, "hooks.webhook: an http:// or https:// URL"),
        ({"hooks": {"webhook_secret": "s"}}, "hooks.webhook_secret: set, but there is no"),
        ({"hooks": {"attempts": 0}}, "hooks: attempts must be at least 1"),
        ({"metrics": {"listen": "localhost:http"}}, "metrics.listen: the port must be"),
        ({"metrics": {"listen": "[::1]:70000"}}, "metrics.listen: the port must be"),
    ],
)
def test_bad_config_names_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_invalid_toml_is_one_line(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[watch\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load(f)


def test_example_config_documents_every_key() -> None:
    """config.example.toml loads, and names every key of every section with its default."""
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    text = example.read_text()
    loaded = load(example)
    assert loaded.pipeline.profile == "auto"
    for section in (
        cfg.DatabaseConfig,
        cfg.WatchConfig,
        cfg.OutputConfig,
        cfg.PipelineConfig,
        cfg.ModelsConfig,
        cfg.DaemonConfig,
        cfg.ComputeConfig,
        cfg.ProfileOverride,
    ):
        for name in section.__dataclass_fields__:
            assert f"{name} =" in text, f"{section.__name__}.{name} missing from example"


def test_folder_options_and_hints() -> None:
    c = from_mapping(
        {
            "folders": {"/in/calls": {"num_speakers": 2, "profile": "fast"}},
            "diarization": {"max_speakers": 5},
        }
    )
    assert c.folders[Path("/in/calls")].num_speakers == 2
    assert c.folders[Path("/in/calls")].profile == "fast"
    assert c.diarization.max_speakers == 5 and c.diarization.num_speakers is None


def test_reload_applies_folders_and_log_level_and_names_the_rest(tmp_path: Path) -> None:
    base = {
        "watch": {"folders": [str(tmp_path / "in")]},
        "database": {"url": f"sqlite:///{tmp_path / 'a.db'}"},
    }
    old = from_mapping(base)
    new = from_mapping(
        {
            "watch": {"folders": [str(tmp_path / "in"), str(tmp_path / "calls")]},
            "folders": {str(tmp_path / "calls"): {"num_speakers": 2}},
            "database": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
            "daemon": {"log_level": "DEBUG", "max_workers": 1},
            "pipeline": {"profile": "fast"},
        }
    )
    change = cfg.reload(old, new)
    assert change.applied == ("watch.folders", "daemon.log_level", "folders")
    assert change.need_restart == ("database.url", "pipeline.profile", "daemon.max_workers")
    assert change.config.watch == new.watch and change.config.folders == new.folders
    assert change.config.daemon.log_level == "DEBUG"
    assert change.config.database == old.database and change.config.pipeline == old.pipeline
    assert change.config.daemon.max_workers == old.daemon.max_workers
    same = cfg.reload(old, from_mapping(base))
    assert same.applied == () and same.need_restart == () and same.config == old


def test_log_level_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"daemon\.log_level"):
        from_mapping({"daemon": {"log_level": "LOUD"}})
    assert from_mapping({"daemon": {"log_level": "debug"}}).daemon.log_level == "debug"


def test_node_defaults_to_the_host_name_and_is_checked() -> None:
    import socket

    assert from_mapping({}).daemon.node == socket.gethostname()
    assert from_mapping({"daemon": {"node": "box-3"}}).daemon.node == "box-3"
    for bad in (" box", "a" * 65, "tab\there"):
        with pytest.raises(ConfigError, match=r"daemon\.node"):
            from_mapping({"daemon": {"node": bad}})


def test_config_is_found_on_the_search_path_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--config, then $TRANSCRIBD_CONFIG, then ~/.config/transcribd, then /etc/transcribd."""
    user = tmp_path / "xdg" / "transcribd" / "config.toml"
    system = tmp_path / "etc" / "config.toml"
    given = tmp_path / "given.toml"
    for f, node in ((user, "user"), (system, "system"), (given, "given")):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f'[daemon]\nnode = "{node}"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(reading, "SYSTEM_CONFIG", system)
    monkeypatch.delenv("TRANSCRIBD_CONFIG", raising=False)
    assert load().daemon.node == "user"
    user.unlink()
    assert load().daemon.node == "system" and cfg.find()[1] == "found on the search path"
    monkeypatch.setenv("TRANSCRIBD_CONFIG", str(given))
    assert load().daemon.node == "given" and cfg.find()[1] == "$TRANSCRIBD_CONFIG"
    assert load(system).daemon.node == "system" and cfg.find(system)[1] == "--config"
    monkeypatch.delenv("TRANSCRIBD_CONFIG")
    system.unlink()
    assert load().source is None and "built-in defaults" in cfg.find()[1]


def test_explain_says_where_each_value_came_from() -> None:
    raw = {"output": {"max_lines": 1}, "daemon": {"node": "box"}}
    rows = {key: (value, origin) for key, value, origin in cfg.explain(from_mapping(raw), raw)}
    assert rows["output.max_lines"] == (1, "file")
    assert rows["daemon.node"] == ("box", "file")
    assert rows["output.max_line_chars"] == (42, "default")
    assert "database.url" in rows and "diarization.enabled" in rows


def test_the_service_config_is_valid_and_matches_the_unit() -> None:
    """systemd/transcribd.toml (installed as /etc/transcribd/config.toml) loads, and puts
    everything in the unit's StateDirectory and CacheDirectory."""
    root = Path(__file__).resolve().parents[2]
    config = load(root / "systemd" / "transcribd.toml")
    assert config.database.url == "sqlite:////var/lib/transcribd/jobs.db"
    assert config.watch.folders == (Path("/var/lib/transcribd/inbox"),)
    assert str(config.models.cache_dir).startswith("/var/cache/transcribd")
    unit = (root / "systemd" / "transcribd.service").read_text()
    assert "StateDirectory=transcribd" in unit and "CacheDirectory=transcribd" in unit


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:9100", ("localhost", 9100)),
        (":9464", ("0.0.0.0", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_listen(text: str, parsed: tuple[str, int]) -> None:
    assert cfg.parse_listen(text) == parsed


def test_explain_never_shows_a_secret() -> None:
    raw = {
        "database": {"url": "postgresql+psycopg://tx:hunter2@db.lan/tx"},
        "hooks": {"webhook": "https://u:pw@h.lan/in?token=t0k", "webhook_secret": "s3cret"},
    }
    rows = {key: value for key, value, _origin in cfg.explain(from_mapping(raw), raw)}
    assert rows["database.url"] == "postgresql+psycopg://tx:***@db.lan/tx"
    assert rows["hooks.webhook"] == "https://h.lan/in"
    assert rows["hooks.webhook_secret"] == "<set>"
    assert "hunter2" not in repr(rows) and "s3cret" not in repr(rows) and "t0k" not in repr(rows)
