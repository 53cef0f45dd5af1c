"""vLLM's launch arguments as each release reads them: the extracted table, parsing, max_model_len.

The argument table is extracted from the released wheels (scripts/extract_vllm_args.py); these
tests hold it to what the releases define and the parser to what FlexibleArgumentParser and
argparse do with a command line.
"""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from servecheck.errors import InputError
from servecheck.launch import arg_table, parse_args, read_launch
from servecheck.launch.settings import settings_from
from servecheck.launch.table import extracted_releases, nearest_release
from servecheck.launch.values import human_readable_int, human_readable_int_or_auto
from servecheck.plan.max_len import derive_max_len
from servecheck.versions import known_releases

QWEN_FP8 = ROOT / "benchmarks" / "gpu_truth" / "configs" / "qwen3-30b-a3b-fp8"
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

# ---------------------------------------------------------------------------------------------
# The table: every release from 0.10.0, names, aliases and kinds as each defines them


def test_every_release_from_0_10_is_extracted():
    releases = extracted_releases()
    assert releases == [str(r) for r in known_releases()]  # the table knows every release
    assert releases[0] == "0.10.0" and "0.24.0" in releases and len(releases) >= 39


@pytest.mark.parametrize(
    ("option", "dest", "kind"),
    [
        ("-tp", "tensor_parallel_size", "int"),
        ("-pp", "pipeline_parallel_size", "int"),
        ("-dp", "data_parallel_size", "int"),
        ("--enable-expert-parallel", "enable_expert_parallel", "bool"),
        ("--max-model-len", "max_model_len", "human_int_or_auto"),
        ("--gpu-memory-utilization", "gpu_memory_utilization", "float"),
        ("--max-num-batched-tokens", "max_num_batched_tokens", "human_int"),
        ("--kv-cache-memory-bytes", "kv_cache_memory_bytes", "human_int"),
        ("--cpu-offload-gb", "cpu_offload_gb", "float"),
        ("--hf-overrides", "hf_overrides", "dict_or_str"),
        ("--speculative-config", "speculative_config", "json"),
        ("--compilation-config", "compilation_config", "json"),
        ("--limit-mm-per-prompt", "limit_mm_per_prompt", "json"),
        ("--enforce-eager", "enforce_eager", "bool"),
        ("--port", "port", "int"),
    ],
)
def test_0_33_defines(option, dest, kind):
    spec = arg_table("0.33.0").by_option[option]
    assert (spec.dest, spec.kind) == (dest, kind)


def test_releases_differ_where_vllm_changed():
    old, new = arg_table("0.10.0"), arg_table("0.33.0")
    # -ep arrived in 0.14; --rope-scaling and --max-seq-len-to-capture were removed
    assert "-ep" not in old.by_option and "-ep" in new.by_option
    assert "--rope-scaling" in old.by_option and "--rope-scaling" not in new.by_option
    assert "--max-seq-len-to-capture" in old.by_option
    assert "--max-seq-len-to-capture" not in new.by_option
    # -O: the compilation level up to 0.11.0, the optimization level from 0.12
    assert old.dash_o == "-O.level" and new.dash_o == "--optimization-level"
    # the default utilization moved from 0.9 to 0.92 in 0.20
    assert old.by_option["--gpu-memory-utilization"].default == 0.9
    assert new.by_option["--gpu-memory-utilization"].default == 0.92
    assert arg_table("0.13.0").by_option["--max-model-len"].kind == "human_int"
    # 0.33 pairs --enable-x with --disable-x
    assert new.enable_disable_pairs and "--disable-expert-parallel" in new.by_option


def test_kv_cache_dtype_choices_follow_the_release():
    assert "fp8_ds_mla" not in arg_table("0.11.0").by_option["--kv-cache-dtype"].choices
    assert "nvfp4" in arg_table("0.24.0").by_option["--kv-cache-dtype"].choices


def test_unextracted_release_uses_the_nearest():
    assert nearest_release("0.24.1") == "0.24.0"
    assert nearest_release("0.99.0") == str(known_releases()[-1])
    launch = parse_args(["-tp", "2"], "0.24.1")
    assert launch.release == "0.24.0" and launch.notes


# ---------------------------------------------------------------------------------------------
# Values the way vLLM's argparse types read them


@pytest.mark.parametrize(
    ("text", "value"),
    [("32k", 32000), ("32K", 32768), ("25.6k", 25600), ("1M", 2**20), ("131072", 131072)],
)
def test_human_readable_int(text, value):
    assert human_readable_int(text) == value


def test_binary_suffix_with_decimals_is_refused():
    with pytest.raises(ValueError, match="Decimals are not allowed"):
        human_readable_int("1.5K")
    assert human_readable_int_or_auto("auto") == -1 == human_readable_int_or_auto("-1")


def test_parse_values_aliases_and_negation():
    launch = parse_args(
        [
            "-tp=2",
            "--max_model_len",
            "32k",
            "--gpu-memory-utilization",
            "0.95",
            "--no-enable-prefix-caching",
            "--max-num-seqs",
            "64",
            "--hf-overrides",
            json.dumps({"rope_scaling": YARN}),
        ],
        "0.33.0",
        model="m",
    )
    assert launch.values == {
        "tensor_parallel_size": 2,
        "max_model_len": 32000,
        "gpu_memory_utilization": 0.95,
        "enable_prefix_caching": False,
        "max_num_seqs": 64,
        "hf_overrides": {"rope_scaling": YARN},
    }
    assert launch.option("max_model_len") == "--max-model-len" and not launch.errors


def test_dotted_json_arguments_merge():
    launch = parse_args(
        [
            "--speculative-config.method",
            "mtp",
            "--speculative-config.num_speculative_tokens",
            "1",
            "--compilation-config.cudagraph_capture_sizes+",
            "1,2,4",
        ],
        "0.33.0",
    )
    assert launch.get("speculative_config") == {"method": "mtp", "num_speculative_tokens": 1}
    assert launch.get("compilation_config") == {"cudagraph_capture_sizes": ["1", "2", "4"]}


def test_dash_o_by_release():
    assert parse_args(["-O3"], "0.33.0").get("optimization_level") == "3"
    assert parse_args(["-O", "3"], "0.33.0").get("optimization_level") == "3"
    assert parse_args(["-O3"], "0.10.2").get("compilation_config") == {"level": 3}


def test_unique_prefix_is_accepted_and_ambiguous_is_an_error():
    launch = parse_args(["--enable-expert-paralle", "--kv-cache-memory", "4G"], "0.33.0")
    assert launch.get("enable_expert_parallel") is True
    assert launch.get("kv_cache_memory_bytes") == 4 * 2**30
    bad = parse_args(["--max-num", "8"], "0.33.0")
    assert bad.errors and "ambiguous option" in bad.errors[0][1]


def test_argparse_errors_are_collected_with_its_words():
    launch = parse_args(
        ["--dtype", "bf16", "--enable-chunked-prefill=false", "--max-model-len", "1.5K", "-tp"],
        "0.33.0",
    )
    messages = dict(launch.errors)
    assert "invalid choice: 'bf16'" in messages["--dtype"]
    assert "ignored explicit argument 'false'" in messages["--enable-chunked-prefill"]
    assert "Decimals are not allowed" in messages["--max-model-len"]
    assert "expected one argument" in messages["-tp"]


def test_unknown_arguments_are_kept_not_fatal():
    args = ["--max-num-seq", "64", "--foo", "--tp", "2", "true"]
    launch = parse_args(args, "0.33.0", model="m", model_taken=True)
    # --max-num-seq is a unique prefix (argparse takes it); --tp is not an option (-tp is)
    assert launch.unknown == ("--foo", "--tp 2", "true") and not launch.errors
    assert launch.get("max_num_seqs") == 64 and not launch.given("tensor_parallel_size")


# ---------------------------------------------------------------------------------------------
# Pasted commands


def test_vllm_serve_with_env_and_continuations():
    cmd = (
        "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 CUDA_VISIBLE_DEVICES=0,1 vllm serve Qwen/Qwen3-8B \\\n"
        "  -tp 2 --max-model-len 64k"
    )
    launch = read_launch(cmd, "0.33.0")
    assert launch.source == "vllm serve" and launch.model == "Qwen/Qwen3-8B"
    assert launch.env["VLLM_ALLOW_LONG_MAX_MODEL_LEN"] == "1"
    assert launch.values == {"tensor_parallel_size": 2, "max_model_len": 64000}


def test_api_server_and_model_option():
    launch = read_launch(
        "python3 -m vllm.entrypoints.openai.api_server --host 0.0.0.0 --model org/m -tp 4",
        "0.24.0",
    )
    assert (launch.source, launch.model, launch.get("tensor_parallel_size")) == (
        "api_server",
        "org/m",
        4,
    )


def test_docker_run():
    launch = read_launch(
        "docker run --gpus all -e HF_TOKEN=x -p 8000:8000 vllm/vllm-openai:latest "
        "--model org/m --data-parallel-size 8 --enable-expert-parallel",
        "0.33.0",
    )
    assert launch.source == "docker" and launch.model == "org/m"
    assert launch.env == {"HF_TOKEN": "x"}
    assert launch.get("data_parallel_size") == 8


def test_llm_keyword_style():
    launch = read_launch(
        'llm = LLM(model="org/m", tensor_parallel_size=2, enforce_eager=True, '
        'speculative_config={"method": "ngram", "num_speculative_tokens": 5})',
        "0.33.0",
    )
    assert launch.source == "LLM(...)" and launch.model == "org/m"
    assert launch.get("enforce_eager") is True
    assert launch.get("speculative_config") == {"method": "ngram", "num_speculative_tokens": 5}


def test_llm_with_a_variable_is_a_clear_error():
    with pytest.raises(InputError, match="not a literal value"):
        read_launch("LLM(model=model_name, tensor_parallel_size=1)", "0.33.0")


# ---------------------------------------------------------------------------------------------
# What the launch means for the prediction


def test_settings_layout_and_options():
    launch = read_launch(
        "vllm serve m -tp 2 -dp 4 -ep -O0 --kv-cache-dtype fp8 --cpu-offload-gb 4 --foo", "0.33.0"
    )
    s = settings_from(launch, "0.33.0")
    assert (s.tp, s.pp, s.dp, s.ep, s.world) == (2, 1, 4, True, 8)
    assert s.options.enforce_eager  # -O0: no compilation, no CUDA graphs
    assert s.options.kv_cache_dtype == "fp8" and s.options.cpu_offload_gb == 4.0
    codes = {f.code for f in s.findings}
    assert "L001" in codes  # --foo


def test_text_only_launch_builds_no_vision_tower():
    """--limit-mm-per-prompt with image and video 0 (vLLM 0.24 _mark_tower_model: a tower is
    skipped when all its modalities are 0; an unset one defaults to 999)."""

    def text_only(value: str) -> bool:
        launch = read_launch(["--limit-mm-per-prompt", value], "0.24.0", model="m")
        return settings_from(launch, "0.24.0").options.text_only

    assert text_only('{"image": 0, "video": 0}')
    assert text_only('{"image": {"count": 0}, "video": 0}')
    assert not text_only('{"image": 0}')  # video still 999: a video model keeps its tower
    assert not text_only('{"image": 1, "video": 0}')


def test_text_only_weights_by_release():
    """From 0.15 a text-only launch loads no tower weights; before, servecheck counts them."""
    from servecheck.api import Target, check
    from servecheck.hardware.gpus import find_gpu
    from servecheck.plan.config import ServeOptions
    from servecheck.plan.planner import make_plan

    row = find_gpu("H200")
    model = ROOT / "benchmarks" / "gpu_truth" / "configs" / "gemma-3-12b-it"
    target = Target(row.name, "gpu", 90, row.total_memory_bytes, 1)

    def weights(ver: str, text_only: bool) -> int:
        report = check(model, vllm_version=ver, target=target)
        plan = make_plan(report, row, 1, 1, ServeOptions(max_model_len=4096, text_only=text_only))
        return next(p for p in plan.layouts if p.layout.tp == 1).weights_per_gpu

    tower = weights("0.24.0", False) - weights("0.24.0", True)
    assert 0.3 * 2**30 < tower < 1.5 * 2**30  # Gemma 3's SigLIP tower and projector
    assert weights("0.14.0", True) == weights("0.14.0", False)


def test_arguments_that_only_concern_the_server_are_not_reported():
    launch = read_launch(
        "vllm serve m --port 8001 --host 0.0.0.0 --served-model-name x --api-key k "
        "--tool-call-parser glm45 --enable-auto-tool-choice --enable-lora",
        "0.33.0",
    )
    findings = settings_from(launch, "0.33.0").findings
    assert [f.code for f in findings] == ["L003"]
    assert findings[0].subjects == ("--enable-lora",)


def test_eagle_draft_model_is_not_modelled_but_mtp_and_ngram_are():
    def not_modelled(spec: dict) -> bool:
        launch = read_launch(["--speculative-config", json.dumps(spec)], "0.33.0", model="m")
        return any(f.code == "L003" for f in settings_from(launch, "0.33.0").findings)

    assert not_modelled({"method": "eagle3", "model": "org/draft", "num_speculative_tokens": 3})
    assert not not_modelled({"method": "mtp", "num_speculative_tokens": 1})
    assert not not_modelled({"method": "ngram", "num_speculative_tokens": 5})


# ---------------------------------------------------------------------------------------------
# max_model_len as each release derives it


def qwen_config(**extra) -> dict:
    cfg = json.loads((QWEN_FP8 / "config.json").read_text())
    cfg.update(extra)
    return cfg


def test_yarn_scales_from_the_original_length_up_to_0_29():
    ml = derive_max_len(qwen_config(rope_scaling=YARN), "0.24.0", requested=65536)
    assert ml.derived == 131072 and not ml.over_limit and ml.value == 65536
    assert "original_max_position_embeddings" in ml.why


def test_yarn_no_longer_scales_from_0_30():
    ml = derive_max_len(qwen_config(rope_scaling=YARN), "0.33.0", requested=65536)
    assert ml.derived == 40960 and ml.over_limit and not ml.allowed_by_env
    assert "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1" in ml.vllm_text
    assert "max_position_embeddings=40960" in ml.vllm_text


def test_long_max_model_len_escape():
    cfg = qwen_config()
    env = {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}
    ml = derive_max_len(cfg, "0.33.0", requested=65536, env=env)
    assert ml.over_limit and ml.allowed_by_env and ml.value == 65536


@pytest.mark.parametrize(
    ("rope", "release", "derived"),
    [
        ({"rope_type": "linear", "factor": 2.0}, "0.33.0", 81920),
        ({"type": "dynamic", "factor": 2.0}, "0.24.0", 81920),
        ({"rope_type": "llama3", "factor": 8.0}, "0.33.0", 40960),
    ],
)
def test_rope_types(rope, release, derived):
    assert derive_max_len(qwen_config(rope_scaling=rope), release).derived == derived


def test_longrope_serves_the_original_length_by_default():
    cfg = qwen_config(
        rope_scaling={"rope_type": "longrope", "factor": 4.0},
        original_max_position_embeddings=4096,
    )
    ml = derive_max_len(cfg, "0.33.0")
    assert ml.derived == 40960 and ml.value == 4096


def test_disabled_sliding_window_caps_the_length():
    ml = derive_max_len(qwen_config(), "0.33.0", disable_sliding_window=True, sliding_window=4096)
    assert (ml.derived, ml.key) == (4096, "sliding_window")


def test_tokenizer_max_length_counts_only_for_pooling_with_absolute_positions():
    cfg = qwen_config(position_embedding_type="absolute")
    tok = {"model_max_length": 512}
    assert derive_max_len(cfg, "0.33.0", tokenizer_config=tok).derived == 40960
    assert derive_max_len(cfg, "0.33.0", tokenizer_config=tok, pooling=True).derived == 512


def test_auto_max_model_len():
    ml = derive_max_len(qwen_config(), "0.33.0", requested=-1)
    assert ml.auto and ml.value == 40960
