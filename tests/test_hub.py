"""Hub ids and the Hugging Face cache as inputs, against a real HTTP server on loopback
(tests/hub_server.py): the same report as for the files on disk, the request budget, the
header cache, offline use, and every failure a user can meet, each in one sentence."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from conftest import FIXTURES
from fixtures import broken
from hub_server import Fault, HubServer
from servecheck.api import check
from servecheck.errors import InputError
from servecheck.render.check.json_out import to_dict
from servecheck.source.modelref import HubRef, hub_ref
from servecheck.source.resolve import open_model, read_hub_model

LLAMA = FIXTURES / "llama-FP8"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    server = HubServer().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("SERVECHECK_CACHE_DIR", str(tmp_path / "servecheck"))
    monkeypatch.setenv("SERVECHECK_HUB_RETRY_WAIT", "0.05")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "5")
    yield server
    server.stop()
    # Drop huggingface_hub's pooled connections: the next test's server may get this port.
    close = getattr(__import__("huggingface_hub"), "close_session", None)
    if close is not None:
        close()


def report_json(model: str | Path) -> dict:
    """The JSON report, paths and origin aside (those name where the files were)."""
    out = to_dict(check(model))
    out.pop("location")
    out.pop("source")
    return out


# -- MODEL strings


def test_hub_ref_forms():
    assert hub_ref("org/name") == HubRef("org/name")
    assert hub_ref("org/name@v1.0") == HubRef("org/name", "v1.0")
    assert hub_ref("hf://org/name@refs/pr/3") == HubRef("org/name", "refs/pr/3")
    assert hub_ref("org/name", revision="dev") == HubRef("org/name", "dev")
    assert hub_ref("a/b/c") is None and hub_ref("name") is None and hub_ref("org/--x") is None
    with pytest.raises(InputError, match="nothing after '@'"):
        hub_ref("org/name@")
    with pytest.raises(InputError, match="not a Hub model id"):
        hub_ref("hf://just-a-name")
    with pytest.raises(InputError, match="--revision is 'b'"):
        hub_ref("org/name@a", revision="b")


def test_missing_local_path_is_still_a_path_error():
    with pytest.raises(InputError, match=r"no such file or folder: nowhere$"):
        open_model("./nowhere")
    with pytest.raises(InputError, match="a Hub model is named org/name"):
        open_model("nowhere")


# -- same report as on disk


def test_single_file_report_equals_local(hub):
    hub.add_folder("org/llama", LLAMA)
    assert report_json("org/llama") == report_json(LLAMA)
    # repo info, config.json, one range read of the only shard: no tensor data.
    paths = [r.path for r in hub.requests()]
    assert len(paths) == 3, paths
    shard = hub.requests("model.safetensors")[0]
    assert shard.range == "bytes=0-65535" and shard.status == 206
    assert shard.sent < LLAMA.joinpath("model.safetensors").stat().st_size


def test_sharded_report_equals_local_and_budget(hub, tmp_path):
    folder = tmp_path / "sharded"
    broken.shard_checkpoint(FIXTURES / "qwen3moe-FP8", folder, 3)
    hub.add_folder("org/moe", folder)
    read = read_hub_model(HubRef("org/moe"))
    assert read.checkpoint.source.kind == "hub"
    assert len(read.checkpoint.shards) == 3
    # One request per shard: the index sizes each shard's first read.
    assert all(n == 1 for n in read.stats.per_shard.values()), read.stats.per_shard
    assert read.stats.bytes - 4096 < 2 * read.stats.header_bytes + 16384
    assert report_json("hf://org/moe") == report_json(folder)


def test_source_names_repo_and_commit(hub):
    sha = hub.add_folder("org/llama", LLAMA)
    out = to_dict(check("org/llama"))
    assert out["location"] == "org/llama"
    assert out["source"] == {
        "kind": "hub",
        "path": None,
        "repo_id": "org/llama",
        "revision": None,
        "commit": sha,
        "offline": False,
    }
    assert to_dict(check(LLAMA))["source"]["kind"] == "local"


def test_second_header_request_when_the_first_is_short(hub, tmp_path, monkeypatch):
    from servecheck.source import hub as hub_reader

    monkeypatch.setattr(hub_reader, "DEFAULT_SPECULATIVE", 1024)
    hub.add_folder("org/llama", LLAMA)
    read = read_hub_model(HubRef("org/llama"))
    ranges = [r.range for r in hub.requests("model.safetensors")]
    (n,) = struct.unpack("<Q", LLAMA.joinpath("model.safetensors").read_bytes()[:8])
    assert ranges == ["bytes=0-1023", f"bytes=1024-{8 + n - 1}"], (
        hub.url,
        hub.requests(),
        read.stats,
    )
    assert read.stats.header_bytes == 8 + n


# -- revisions


def test_revision_by_tag_branch_and_sha(hub):
    v1 = hub.add_folder("org/m", LLAMA, tags=("v1",))
    main = hub.add_folder("org/m", FIXTURES / "llama-bf16")
    assert check("org/m").quant.method is None
    assert check("org/m@v1").quant.method == "compressed-tensors"
    assert check("org/m", revision="v1").checkpoint.source.commit == v1
    assert check(f"org/m@{v1}").checkpoint.source.commit == v1
    assert check("org/m@main").checkpoint.source.commit == main


def test_missing_revision(hub):
    hub.add_folder("org/m", LLAMA)
    with pytest.raises(InputError, match=r"org/m has no revision 'nope' \(expected a branch"):
        check("org/m@nope")


# -- access


def test_gated_without_token_says_how_to_get_access(hub):
    hub.add_folder("org/gated", LLAMA)
    hub.repos["org/gated"].gated = True
    with pytest.raises(InputError) as err:
        check("org/gated")
    msg = str(err.value)
    assert "org/gated is gated: request access on" in msg and f"{hub.url}/org/gated" in msg
    assert "HF_TOKEN" in msg
    assert hub.requests("config.json")[0].status == 401


def test_gated_with_token_without_access_then_with_access(hub, monkeypatch):
    hub.add_folder("org/gated", LLAMA)
    hub.repos["org/gated"].gated = True
    monkeypatch.setenv("HF_TOKEN", "hf_no_access")
    with pytest.raises(InputError, match="your token has no access to it yet"):
        check("org/gated")
    assert hub.requests("config.json")[0].status == 403
    hub.repos["org/gated"].tokens = frozenset({"hf_granted"})
    monkeypatch.setenv("HF_TOKEN", "hf_granted")
    assert check("org/gated").checkpoint.source.kind == "hub"


def test_missing_or_private_repo(hub):
    with pytest.raises(InputError, match=r"org/none was not found on http://127\.0\.0\.1:\d+"):
        check("org/none")
    hub.add_folder("org/private", LLAMA)
    hub.repos["org/private"].private = True
    with pytest.raises(InputError, match="if it is private, authenticate"):
        check("org/private")


def test_repo_without_safetensors_says_what_it_found(hub, tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(LLAMA / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 64)
    hub.add_folder("org/bin", folder)
    report = check("org/bin")
    assert report.checkpoint.config_only
    assert any("only pytorch_model.bin" in n for n in report.notes)

    gguf = tmp_path / "gguf"
    gguf.mkdir()
    (gguf / "model-Q4_K_M.gguf").write_bytes(b"GGUF")
    hub.add_folder("org/gguf", gguf)
    with pytest.raises(InputError, match=r"no config\.json .*1 GGUF file\(s\) \(model-Q4_K_M"):
        check("org/gguf")


# -- broken checkpoints read like broken folders


def test_index_naming_a_missing_shard(hub, tmp_path):
    folder = broken.index_missing_shard(FIXTURES / "llama-bf16", tmp_path / "miss")
    hub.add_folder("org/miss", folder)
    ckpt = open_model("org/miss")
    assert ckpt.index_missing_files == ("model-00002-of-00002.safetensors",)
    assert report_json("org/miss") == report_json(folder)


def test_truncated_header(hub, tmp_path):
    folder = broken.truncated_header(FIXTURES / "llama-bf16", tmp_path / "trunc")
    hub.add_folder("org/trunc", folder)
    ckpt = open_model("org/trunc")
    assert [p.kind for p in ckpt.shard_problems] == ["header_truncated"]
    assert report_json("org/trunc") == report_json(folder)
    # Only the 8-byte prefix and what the first read returned: nothing more is asked for.
    assert len(hub.requests("model.safetensors")) == 1


def test_oversized_header_is_refused_without_reading_it(hub, tmp_path):
    folder = tmp_path / "huge"
    folder.mkdir()
    shutil.copy(LLAMA / "config.json", folder)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{" * 100)
    hub.add_folder("org/huge", folder)
    ckpt = open_model("org/huge")
    assert "over the 100,000,000-byte limit" in ckpt.shard_problems[0].message
    assert report_json("org/huge") == report_json(folder)
    assert len(hub.requests("model.safetensors")) == 1


def test_header_with_wrong_types(hub, tmp_path):
    folder = tmp_path / "types"
    folder.mkdir()
    shutil.copy(LLAMA / "config.json", folder)
    raw = json.dumps({"w": {"dtype": "BF16", "shape": "big", "data_offsets": [0, 2]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0\0")
    hub.add_folder("org/types", folder)
    assert "is not a list" in open_model("org/types").shard_problems[0].message
    assert report_json("org/types") == report_json(folder)


def test_hostile_repo_info_is_an_input_error(hub):
    hub.add_folder("org/llama", LLAMA)
    hub.faults.append(Fault("/api/models/org/llama", status=200, times=1))
    with pytest.raises(InputError, match="is not valid JSON"):
        check("org/llama")


def test_server_that_ignores_range_costs_no_more_than_asked(hub, tmp_path):
    hub.add_folder("org/llama", LLAMA)
    hub.ignore_range = True
    read = read_hub_model(HubRef("org/llama"))
    assert read.stats.bytes < 70_000 < LLAMA.joinpath("model.safetensors").stat().st_size
    assert report_json("org/llama") == report_json(LLAMA)


# -- a slow or struggling server


def test_429_then_success(hub):
    hub.add_folder("org/llama", LLAMA)
    hub.faults.append(Fault("model.safetensors", status=429, times=2))
    hub.faults.append(Fault("/api/models/", status=503, times=1))
    assert check("org/llama").checkpoint.source.kind == "hub"
    statuses = [r.status for r in hub.requests("model.safetensors")]
    assert statuses == [429, 429, 206]


def test_latency_is_tolerated(hub):
    hub.add_folder("org/llama", LLAMA)
    hub.latency = 0.2
    assert report_json("org/llama") == report_json(LLAMA)


def test_timeout_gives_up_with_a_sentence(hub, monkeypatch):
    hub.add_folder("org/llama", LLAMA)
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setenv("SERVECHECK_HUB_RETRIES", "1")
    hub.faults.append(Fault("model.safetensors", status=200, times=2, delay=1.5))
    with pytest.raises(InputError, match=r"cannot read org/llama from .*the request timed out"):
        check("org/llama")


# -- the header cache and offline use


def test_warm_cache_costs_one_request_and_none_for_a_commit(hub):
    sha = hub.add_folder("org/llama", LLAMA)
    first = to_dict(check("org/llama"))
    hub.clear_log()
    assert to_dict(check("org/llama")) == first
    assert [r.path for r in hub.requests()] == ["/api/models/org/llama"]
    hub.clear_log()
    check(f"org/llama@{sha}")
    assert hub.requests() == []


def test_offline_warm(hub, monkeypatch):
    sha = hub.add_folder("org/llama", LLAMA, tags=("v1",))
    online = report_json("org/llama@v1")
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ckpt = open_model("org/llama@v1")
    assert ckpt.source.commit == sha and ckpt.source.offline
    assert report_json("org/llama@v1") == online
    assert open_model("org/llama", offline=True, revision="v1").source.commit == sha


def test_offline_cold_says_what_is_missing(hub, monkeypatch):
    hub.add_folder("org/llama", LLAMA)
    with pytest.raises(InputError, match="offline, and servecheck has not read org/llama"):
        open_model("org/llama", offline=True)
    # Commit and file list known, headers not: name them.
    read_hub_model(HubRef("org/llama"))
    cache = Path(__import__("os").environ["SERVECHECK_CACHE_DIR"])
    for header in cache.glob("hub/*/*/headers/*"):
        header.unlink()
    with pytest.raises(InputError, match=r"lacks part of org/llama .*1 shard header\(s\)"):
        open_model("org/llama", offline=True)
    assert hub.requests("model.safetensors")  # only the online read above


# -- the Hugging Face cache


def _hf_cache_snapshot(hub_cache: Path, repo_id: str, folder: Path, sha: str, ref="main"):
    repo = hub_cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / ref).write_text(sha)
    snap = repo / "snapshots" / sha
    snap.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for f in folder.iterdir():
        blob = repo / "blobs" / f"blob-{f.name}"
        shutil.copy(f, blob)
        (snap / f.name).symlink_to(Path("../../blobs") / blob.name)
    return snap


def test_model_in_hf_cache_needs_no_request(hub, tmp_path):
    sha = "a" * 40
    hf_cache = tmp_path / "hf" / "hub"
    _hf_cache_snapshot(hf_cache, "org/cached", LLAMA, sha)
    ckpt = open_model("org/cached")
    assert ckpt.source.kind == "hf-cache" and ckpt.source.commit == sha
    assert ckpt.location == "org/cached"
    assert hub.requests() == []
    assert report_json("org/cached") == report_json(LLAMA)


def test_incomplete_hf_cache_snapshot_falls_back_to_the_hub(hub, tmp_path):
    sha = hub.add_folder("org/part", LLAMA)
    snap = _hf_cache_snapshot(tmp_path / "hf" / "hub", "org/part", LLAMA, sha)
    (snap / "model.safetensors").unlink()  # only config.json was downloaded
    assert open_model("org/part").source.kind == "hub"


# -- fix on a Hub model: an overlay folder, never a write to the Hub or the cache


def test_fix_hub_model_writes_an_overlay_with_overrides(hub, tmp_path):
    from servecheck.api import fix
    from servecheck.fix import FixError

    o_proj = "model.layers.0.self_attn.o_proj"
    folder = broken.dequantized_module(FIXTURES / "llama-FP8_DYNAMIC", tmp_path / "c", o_proj)
    sha = hub.add_folder("org/deq", folder)
    with pytest.raises(FixError, match="never writes there"):
        fix("org/deq", write=True)
    out = tmp_path / "fixed"
    outcome = fix("org/deq", out=out)
    written = sorted(p.name for p in out.iterdir())
    assert written == ["README.md", "config.json", "hf_overrides.json"]
    # The same corrected config as for the folder on disk.
    assert (out / "config.json").read_text() == fix(folder).new_text
    assert outcome.after.verdict != "fail"
    # --hf-overrides applied to the Hub's config gives the corrected config.
    original = json.loads((folder / "config.json").read_text())
    overrides = json.loads((out / "hf_overrides.json").read_text())
    assert {**original, **overrides} == json.loads((out / "config.json").read_text())
    readme = (out / "README.md").read_text()
    assert f"vllm serve org/deq --revision {sha} --hf-overrides" in readme
    # README's second way: the weights beside the corrected config pass check.
    for f in folder.glob("*.safetensors"):
        shutil.copy(f, out)
    assert not [f for f in check(out).findings if f.severity.value == "error"]
    # Nothing was written into servecheck's cache copy of the Hub's config.
    assert json.loads(outcome.config_path.read_text()) == original


# -- progress and the command line


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def start(self, shards: int) -> None:
        self.events.append(("start", shards))

    def advance(self, nbytes: int) -> None:
        self.events.append(("advance", nbytes))

    def stop(self) -> None:
        self.events.append(("stop", 0))


def test_progress_counts_shards_and_header_bytes(hub, tmp_path):
    from servecheck.render.progress import HeaderProgress, header_progress

    folder = tmp_path / "sharded"
    broken.shard_checkpoint(FIXTURES / "llama-bf16", folder, 3)
    hub.add_folder("org/s", folder)
    rec = Recorder()
    read = read_hub_model(HubRef("org/s"), progress=rec)
    assert rec.events[0] == ("start", 3) and rec.events[-1] == ("stop", 0)
    assert sum(n for e, n in rec.events if e == "advance") == read.stats.header_bytes
    # Warm: nothing fetched, no bar.
    rec2 = Recorder()
    read_hub_model(HubRef("org/s"), progress=rec2)
    assert rec2.events == []
    # The rich bar is off without a terminal or with --quiet, and runs when asked.
    assert header_progress(quiet=True) is None and header_progress(quiet=False) is None
    bar = HeaderProgress()
    bar.start(2), bar.advance(10), bar.advance(20), bar.stop()


def test_cli_check_plan_compare_on_hub_ids(hub):
    from clirun import invoke

    sha = hub.add_folder("org/llama", LLAMA, tags=("v1",))
    local = invoke(["check", LLAMA, "--format", "json"])
    res = invoke(["check", "org/llama", "--format", "json"])
    assert res.exit_code == local.exit_code and res.stderr == ""
    assert json.loads(res.stdout)["source"]["commit"] == sha
    res = invoke(["check", "org/llama", "--revision", "v1"])
    assert res.exit_code == local.exit_code and "org/llama@v1" in res.stdout
    plan = invoke(["plan", "org/llama", "--gpu", "H100", "--format", "json"])
    assert plan.exit_code in (0, 1) and "vllm serve org/llama" in plan.stdout
    assert invoke(["compare", "org/llama", LLAMA]).exit_code in (0, 1)


def test_cli_bad_hub_input_exits_2_with_one_sentence(hub):
    from clirun import invoke

    hub.add_folder("org/llama", LLAMA)
    res = invoke(["check", "org/llama", "--offline"])
    assert res.exit_code == 2 and res.stderr.startswith("error: offline, and servecheck")
    res = invoke(["check", LLAMA, "--revision", "v1"])
    assert res.exit_code == 2 and "--revision applies to Hub models" in res.stderr
    res = invoke(["check", "org/none"])
    assert res.exit_code == 2 and "org/none was not found" in res.stderr
    assert "Traceback" not in res.output
