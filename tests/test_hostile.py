"""Hostile and broken inputs (issue 16): every defect the fuzzing run found, reproduced on a copy
of a committed fixture, ends in a clear InputError (exit code 2) or a report, in bounded time,
and nothing in the model folder changes; writes that fail say so (exit code 1)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import invoke
from fixtures import broken
from servecheck.api import check
from servecheck.core import Target
from servecheck.errors import InputError
from servecheck.targets import target_from_option

ROOT = Path(__file__).resolve().parents[1]


def copy(name: str, tmp_path: Path) -> Path:
    d = tmp_path / name
    shutil.copytree(broken.fixture(name), d)
    return d


def config(d: Path) -> dict:
    return json.loads((d / "config.json").read_text())


def set_config(d: Path, **changes) -> None:
    cfg = config(d)
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def set_quant(d: Path, **changes) -> None:
    cfg = config(d)
    cfg["quantization_config"].update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def set_group(d: Path, **changes) -> None:
    cfg = config(d)
    cfg["quantization_config"]["config_groups"]["group_0"].update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


def write_header(path: Path, raw: bytes, data: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def digest(folder: Path) -> dict[str, str]:
    """Every entry of a folder: file contents hashed, links by target, folders by name."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[p.name] = "link:" + os.readlink(p)
        elif p.is_file():
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[p.name] = "dir"
    return out


def refused(d: Path | str, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        check(d, **kwargs)
    return info.value


# --------------------------------------------------------------------------- reading


def test_deeply_nested_config_is_an_input_error(tmp_path):
    d = copy("llama-FP8", tmp_path)
    (d / "config.json").write_text('{"a":' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(d, "nested more than 64 levels")
    cfg = config(broken.fixture("llama-FP8"))  # a real config with one value nested 70 deep
    cfg["x"] = json.loads("[" * 70 + "]" * 70)
    (d / "config.json").write_text(json.dumps(cfg))
    refused(d, r"config.json .*: x(\[0\])+ is nested more than 64 deep")


def test_config_not_utf8_is_an_input_error(tmp_path):
    d = copy("llama-FP8", tmp_path)
    (d / "config.json").write_bytes(b'{"model_type": "caf\xe9"}')
    refused(d, r"config.json .* is not UTF-8 text \(byte 0xe9 at offset 19\)")


def test_model_given_as_a_safetensors_file(tmp_path):
    d = copy("llama-FP8", tmp_path)
    refused(d / "model.safetensors", "is a safetensors shard; give the folder")


def test_deeply_nested_header_is_a_shard_problem(tmp_path):
    d = copy("llama-FP8", tmp_path)
    write_header(d / "model.safetensors", b"[" * 100_000 + b"]" * 100_000)
    report = check(d)
    (problem,) = report.checkpoint.shard_problems
    assert "header is not valid JSON (nested too deep)" in problem.message


@pytest.mark.parametrize(
    "pattern, reason",
    [("re:(", "missing \\)"), ("re:a{2,1}", "min repeat greater"), ("re:(a)\\2", "group ref")],
)
def test_invalid_regex_in_targets_or_ignore(tmp_path, pattern, reason):
    d = copy("llama-W8A8", tmp_path)
    set_group(d, targets=[pattern])
    error = refused(d, "is not a valid regular expression")
    assert reason.replace("\\", "") in str(error).replace("\\", "")
    d2 = copy("llama-W8A8", tmp_path / "2")
    set_quant(d2, ignore=[pattern])
    refused(d2, "is not a valid regular expression")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("num_hidden_layers", "Infinity", "num_hidden_layers must be an integer, got inf"),
        ("vocab_size", "NaN", "vocab_size is NaN"),
        ("num_attention_heads", "1e308", "num_attention_heads is 1"),
        ("num_hidden_layers", "1000000000", "num_hidden_layers is 1,000,000,000; expected 1 to"),
        ("vocab_size", "9" * 5000, "holds a number too long"),
        ("hidden_size", "1" + "0" * 100, "is a 101-digit number"),
    ],
)
def test_numbers_in_config(tmp_path, key, value, message):
    d = copy("llama-FP8", tmp_path)
    text = (d / "config.json").read_text().rstrip()
    (d / "config.json").write_text(text[:-1] + f', "{key}": {value}}}')
    refused(d, message)


@pytest.mark.parametrize(
    "fixture, key, value, message",
    [
        ("qwen3moe-FP8", "mlp_only_layers", ["x"], "mlp_only_layers must list layer numbers"),
        ("qwen3moe-FP8", "mlp_only_layers", 5, "mlp_only_layers must be a list"),
        ("llama-FP8", "layer_types", 1.5, "layer_types must be a list"),
        ("qwen3moe-FP8", "num_experts", 10**6, "num_experts is 1,000,000; expected 0 to"),
        ("llama-FP8", "architectures", "Llama", "no 'architectures' list"),
    ],
)
def test_wrong_types_in_config(tmp_path, fixture, key, value, message):
    d = copy(fixture, tmp_path)
    set_config(d, **{key: value})
    refused(d, message)


@pytest.mark.parametrize(
    "where, value, message",
    [
        ("targets", 5, r"group_0.targets is 5; expected a string or a list of strings"),
        ("targets", {"a": 1}, r"group_0.targets is \{'a': 1\}"),
        ("format", ["x"], r"group_0.format is \['x'\]; expected a string or null"),
    ],
)
def test_wrong_types_in_a_compressed_tensors_group(tmp_path, where, value, message):
    d = copy("llama-W8A8", tmp_path)
    set_group(d, **{where: value})
    refused(d, "config.json: quantization_config.config_groups." + message)


@pytest.mark.parametrize(
    "quant, message",
    [
        ({"sparsity_config": {"targets": 5}}, "sparsity_config.targets is 5"),
        (
            {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": ["a"]},
            r"weight_block_size is \['a'\]; expected a list of integers or null",
        ),
        (
            {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [0, 0]},
            "weight_block_size is \\[0, 0\\]; expected integers from 1",
        ),
        (
            {"quant_method": "fp8", "activation_scheme": "dynamic", "ignored_layers": 5},
            "ignored_layers is 5; expected a list of strings",
        ),
        ({"quant_method": "awq", "modules_to_not_convert": 5}, "modules_to_not_convert is 5"),
        ({"quant_method": "gptq", "bits": 4, "group_size": 0}, "group_size is 0; expected"),
    ],
)
def test_wrong_types_in_quantization_configs(tmp_path, quant, message):
    d = copy("llama-W8A8", tmp_path)
    if "quant_method" in quant:
        set_config(d, quantization_config=quant)
    else:
        set_quant(d, **quant)
    refused(d, "config.json: quantization_config." + message)


def test_wrong_types_in_a_quantization_side_file(tmp_path):
    d = copy("llama-modelopt-fp8", tmp_path)
    (d / "hf_quant_config.json").write_text(
        json.dumps({"producer": {"name": "modelopt"}, "quantization": {"exclude_modules": 5}})
    )
    refused(d, "hf_quant_config.json: quantization.exclude_modules is 5")


def test_thousand_digit_numbers_in_tensor_names_and_shapes(tmp_path):
    d = copy("llama-bf16", tmp_path)
    header = broken.read_header(d / "model.safetensors")
    renamed = {
        k.replace("layers.0.", "layers." + "9" * 5000 + ".", 1): v for k, v in header.items()
    }
    raw = json.dumps(renamed).encode()
    write_header(d / "model.safetensors", raw)
    set_config(d, architectures=["FooForCausalLM"])
    report = check(d)  # a report: the names are not layers of the model
    assert report.checkpoint.tensors
    huge_shape = json.dumps(
        {"x": {"dtype": "F32", "shape": [10**30, 10**30], "data_offsets": [0, 4]}}
    ).encode()
    write_header(d / "model.safetensors", huge_shape)
    (problem,) = check(d).checkpoint.shard_problems
    assert "shape [1000000000000000000000000000000" in problem.message


def test_dtype_list_in_a_header_is_a_shard_problem(tmp_path):
    d = copy("llama-FP8", tmp_path)
    write_header(
        d / "model.safetensors", b'{"x": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}'
    )
    (problem,) = check(d).checkpoint.shard_problems
    assert "unknown dtype ['F32']" in problem.message


def test_heads_of_1e308_are_refused_before_any_arithmetic(tmp_path):
    d = copy("llama-FP8", tmp_path)
    set_config(d, num_attention_heads=1e308, head_dim=64)
    refused(d, "num_attention_heads is 1", target=target_from_option("H100", 2))


def test_wrong_type_of_a_float_field(tmp_path):
    d = copy("llama-FP8", tmp_path)
    set_config(d, partial_rotary_factor={"a": 1})
    refused(d, "partial_rotary_factor must be a number", target=target_from_option("H100", 1))
    set_config(
        d,
        partial_rotary_factor=None,
        rope_scaling={"rope_type": "yarn", "factor": "x", "original_max_position_embeddings": 4096},
    )
    refused(d, "factor must be a number", target=target_from_option("H100", 1))


# --------------------------------------------------------------------------- bounded work


@pytest.mark.parametrize("kind", ["/dev/zero", "/dev/urandom", "fifo", "folder"])
def test_config_that_is_not_a_file(tmp_path, kind):
    d = copy("llama-FP8", tmp_path)
    (d / "config.json").unlink()
    if kind == "fifo":
        os.mkfifo(d / "config.json")
    elif kind == "folder":
        (d / "config.json").mkdir()
        refused(d, "config.json .* is a folder, not a file")
        return
    else:
        os.symlink(kind, d / "config.json")
    refused(d, "is a device, pipe or socket, not a file")


def test_shard_or_index_that_is_not_a_file(tmp_path):
    d = copy("llama-FP8", tmp_path)
    (d / "model.safetensors").unlink()
    os.mkfifo(d / "model.safetensors")
    os.symlink("/dev/zero", d / "model.safetensors.index.json")
    refused(d, "model.safetensors.index.json .* is a device, pipe or socket")


def test_huge_config_is_refused_by_size(tmp_path):
    d = copy("llama-FP8", tmp_path)
    text = (d / "config.json").read_text().rstrip()
    (d / "config.json").write_text(text[:-1] + ', "pad": "' + " " * 9_000_000 + '"}')
    refused(d, "over the 8,388,608-byte limit")


@pytest.mark.parametrize("count", [0, 100_000, 10**9])
def test_absurd_gpu_counts(tmp_path, count):
    d = copy("llama-FP8", tmp_path)
    refused(
        d, "servecheck plans 1 to 256 GPUs", target=Target("H100", "gpu", 90, 80 * 2**30, count)
    )


def test_absurd_vllm_version(tmp_path):
    d = copy("llama-FP8", tmp_path)
    refused(d, "not a vLLM version", vllm_version="1" * 5000)


def test_gpus_option_is_bounded():
    result = invoke(
        ["check", str(broken.fixture("llama-FP8")), "--gpu", "H100", "--gpus", "100000"]
    )
    assert result.exit_code == 2 and "more than servecheck plans (256)" in result.stderr


def test_nul_byte_in_a_path(tmp_path):
    refused(f"{tmp_path}/a\x00b", "contains a NUL byte")
    result = invoke(["check", f"{tmp_path}/a\x00b"])
    assert result.exit_code == 2 and "NUL byte" in result.stderr
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- writing


@pytest.fixture
def fixable(tmp_path):
    """A checkpoint with a fix to write: one FP8 module stored BF16 without its scale."""
    module = "model.layers.0.self_attn.o_proj"
    return broken.dequantized_module(broken.fixture("llama-FP8_DYNAMIC"), tmp_path / "m", module)


def test_out_link_to_the_model_folder_is_refused_with_force(fixable, tmp_path):
    before = digest(fixable)
    link = tmp_path / "link"
    os.symlink(fixable, link)
    result = invoke(["fix", str(fixable), "--out", str(link), "--force"])
    assert result.exit_code == 2, result.output
    assert "is the model folder" in result.stderr and "Traceback" not in result.output
    assert digest(fixable) == before
    assert check(fixable).checkpoint.tensors  # the shard is still there


def test_out_reached_through_a_symlinked_parent_is_refused(fixable, tmp_path):
    before = digest(fixable)
    parent = tmp_path / "parent"
    os.symlink(fixable.parent, parent)
    result = invoke(["fix", str(parent / fixable.name), "--out", str(fixable), "--force"])
    assert result.exit_code == 2 and "is the model folder" in result.stderr
    assert digest(fixable) == before


def test_out_inside_or_around_the_model_folder_is_refused(fixable, tmp_path):
    before = digest(fixable)
    for out, words in ((fixable / "overlay", "lies inside"), (fixable.parent, "contains")):
        result = invoke(["fix", str(fixable), "--out", str(out), "--force"])
        assert result.exit_code == 2 and words in result.stderr, result.output
    assert digest(fixable) == before and not (fixable / "overlay").exists()


def test_out_never_replaces_a_file_it_did_not_make(fixable, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"someone's weights")
    result = invoke(["fix", str(fixable), "--out", str(out), "--force"])
    assert result.exit_code == 2 and "is not a link an overlay made" in result.stderr
    assert (out / "model.safetensors").read_bytes() == b"someone's weights"


def test_orig_that_is_a_folder(fixable):
    (fixable / "config.json.orig").mkdir()
    before = digest(fixable)
    result = invoke(["fix", str(fixable), "--write", "--force"])
    assert result.exit_code == 1, result.output
    assert "config.json.orig exists and is not a file" in result.stderr
    assert "Traceback" not in result.output and digest(fixable) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_into_a_read_only_folder(fixable, tmp_path):
    before = digest(fixable)
    fixable.chmod(0o555)
    try:
        result = invoke(["fix", str(fixable), "--write"])
        out = invoke(["fix", str(fixable), "--out", str(fixable.parent / "ro" / "o")])
    finally:
        fixable.chmod(0o755)
    assert result.exit_code == 1 and "cannot write" in result.stderr, result.output
    assert "unchanged" in result.stderr and "Traceback" not in result.output
    assert digest(fixable) == before
    assert out.exit_code in (0, 1) and "Traceback" not in out.output


def test_write_past_the_file_size_limit(fixable):
    """EFBIG (the disk-full path alike): a clear error, exit 1, config.json untouched."""
    before = digest(fixable)
    limit = len((fixable / "config.json").read_bytes()) - 1

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "servecheck", "fix", str(fixable), "--write"],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "cannot write" in proc.stderr and "File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert digest(fixable) == before


# --------------------------------------------------------------------------- logs for explain


def _explain(stdin, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, "-m", "servecheck", "explain", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return proc, max(peak, before) / 1024


def test_explain_of_dev_zero_is_refused_at_once():
    with open("/dev/zero", "rb") as zero:
        proc, _ = _explain(zero)
    assert proc.returncode == 2 and "is not a text log" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_of_a_huge_log_of_huge_lines_is_bounded(tmp_path):
    """40 MB of 1 MB 'RuntimeError: aaa...' lines: the end of the log is read, each line cut."""
    log = tmp_path / "vllm.log"
    line = b"RuntimeError: " + b"a" * 2**20 + b"\n"
    with log.open("wb") as f:
        for _ in range(40):
            f.write(line)
    proc, peak_mb = _explain(subprocess.DEVNULL, str(log))
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    assert peak_mb < 600, f"{peak_mb:.0f} MB"
