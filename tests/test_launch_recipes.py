"""Launch commands from vLLM recipes, model cards and issues, run through `servecheck check -- ...`.

Each case is a command as published (the source is noted), given after `--` the way a shell
splits it. The model it names is replaced by a committed config of the same architecture
(MODEL before `--`), so the prediction is for that config: where its context length or
quantization differs from the published model's, the case says so. Each asserts the values
vLLM's parser reads from the command and the verdict.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

import pytest

from clirun import invoke
from conftest import EXAMPLES, ROOT

DATA = ROOT / "tests" / "data" / "plan"
CONFIGS = ROOT / "benchmarks" / "gpu_truth" / "configs"
LLAMA = DATA / "llama-3.1-8b"
DEEPSEEK = DATA / "deepseek-v3-fp8"
GPT_OSS = DATA / "gpt-oss-20b"
QWEN = CONFIGS / "qwen3-30b-a3b"
QWEN_FP8 = CONFIGS / "qwen3-30b-a3b-fp8"
MIXTRAL = CONFIGS / "mixtral-8x7b"
GLM_AIR = EXAMPLES / "glm-4.5-air-derestricted-fp8"
GLM45 = EXAMPLES / "glm-4.5-fp8"
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

RECIPES_DS = "https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-V3.html"
RECIPES_GLM = "https://docs.vllm.ai/projects/recipes/en/latest/GLM/GLM.html"


@dataclass(frozen=True)
class Case:
    id: str
    source: str
    model: object
    gpu: str
    gpus: int
    command: str
    values: dict
    verdict: str
    version: str | None = None
    codes: frozenset = field(default_factory=frozenset)  # finding codes that must be there
    layout: str | None = None  # the planned layout
    unknown: tuple = ()


CASES = [
    Case(
        "deepseek-tp8-ep",
        RECIPES_DS,
        DEEPSEEK,
        "H200",
        8,
        "vllm serve deepseek-ai/DeepSeek-R1-0528 --trust-remote-code --tensor-parallel-size 8 "
        "--enable-expert-parallel",
        {"tensor_parallel_size": 8, "enable_expert_parallel": True, "trust_remote_code": True},
        "ok",
        layout="TP8+EP",
    ),
    Case(
        "deepseek-dp8-ep",
        RECIPES_DS,
        DEEPSEEK,
        "H200",
        8,
        "vllm serve deepseek-ai/DeepSeek-R1-0528 --trust-remote-code --data-parallel-size 8 "
        "--enable-expert-parallel",
        {"data_parallel_size": 8, "enable_expert_parallel": True},
        "ok",
        layout="DP8+EP",
    ),
    Case(
        "deepseek-dp16-two-nodes",
        "https://docs.vllm.ai/en/latest/serving/data_parallel_deployment.html",
        DEEPSEEK,
        "H200",
        8,
        "vllm serve deepseek-ai/DeepSeek-V3 --data-parallel-size 16 --data-parallel-size-local 8 "
        "--data-parallel-address 10.99.48.128 --data-parallel-rpc-port 13345 "
        "--enable-expert-parallel",
        {"data_parallel_size": 16, "data_parallel_size_local": 8, "data_parallel_rpc_port": 13345},
        "ok",
        layout="DP16+EP",
    ),
    Case(
        "deepseek-mtp",
        "https://docs.vllm.ai/en/latest/features/speculative_decoding/mtp/",
        DEEPSEEK,
        "H200",
        8,
        "vllm serve deepseek-ai/DeepSeek-V3 -tp 8 --speculative-config "
        '\'{"method": "mtp", "num_speculative_tokens": 1}\'',
        {"speculative_config": {"method": "mtp", "num_speculative_tokens": 1}},
        "ok",
        layout="TP8",
    ),
    Case(
        "deepseek-fp8-kv-block-256",
        "https://github.com/LMCache/LMCache/pull/3171",
        DEEPSEEK,
        "H200",
        8,
        "vllm serve /data1/public/models/DeepSeek-V4-Flash --served-model-name deepseek-v4-flash "
        "--host 127.0.0.1 --port 10081 --trust-remote-code --kv-cache-dtype fp8 --block-size 256 "
        "--enable-expert-parallel --tensor-parallel-size 8",
        {"kv_cache_dtype": "fp8", "block_size": 256, "port": 10081},
        "ok",
        layout="TP8+EP",
    ),
    Case(
        "glm-air-fp8-tp8",
        RECIPES_GLM,
        GLM_AIR,
        "H100",
        8,
        "vllm serve zai-org/GLM-4.5-Air-FP8 --tensor-parallel-size 8 --tool-call-parser glm45 "
        "--reasoning-parser glm45 --enable-auto-tool-choice",
        {"tensor_parallel_size": 8, "tool_call_parser": "glm45", "enable_auto_tool_choice": True},
        "ok",
        layout="TP8",
    ),
    Case(
        "glm-mtp-dotted-speculative-config",
        "https://huggingface.co/zai-org/GLM-4.7/commit/26f32ade25482d46a9cbfc253f1c04f718d3245f",
        GLM45,
        "H200",
        4,
        "vllm serve zai-org/GLM-4.7-FP8 --tensor-parallel-size 4 --speculative-config.method mtp "
        "--speculative-config.num_speculative_tokens 1 --tool-call-parser glm47 "
        "--reasoning-parser glm45 --enable-auto-tool-choice --served-model-name glm-4.7-fp8",
        {"speculative_config": {"method": "mtp", "num_speculative_tokens": 1}},
        "ok",
        layout="TP4",
    ),
    Case(
        # the second --tensor-parallel-size wins; at 0.98 no room is left for CUDA graphs
        # before 0.21 (M010)
        "glm-air-duplicate-tp-high-utilization",
        "https://pastebin.com/wFt4hKqg",
        GLM_AIR,
        "RTX PRO 6000",
        2,
        "vllm serve /srv/models/awq/GLM-4.5-Air-AWQ --host 192.168.1.12 --port 8000 --api-key "
        "token-abc123 --tensor-parallel-size 8 --tool-call-parser glm45 --reasoning-parser glm45 "
        "--enable-auto-tool-choice --dtype half --enable-expert-parallel --tensor-parallel-size 2 "
        "--pipeline-parallel-size 1 --max-model-len 16384 --max-num-seqs 16 --kv-cache-dtype fp8 "
        "--calculate-kv-scales --gpu-memory-utilization 0.98",
        {
            "tensor_parallel_size": 2,
            "dtype": "half",
            "kv_cache_dtype": "fp8",
            "calculate_kv_scales": True,
            "max_num_seqs": 16,
            "gpu_memory_utilization": 0.98,
        },
        "fail",
        version="0.10.1",
        codes=frozenset({"M010"}),
    ),
    Case(
        "glm-docker-positional-model",
        "https://recipes.vllm.ai/zai-org/GLM-5.1",
        GLM45,
        "H200",
        8,
        "docker run --gpus all -p 8000:8000 --ipc=host -v "
        "~/.cache/huggingface:/root/.cache/huggingface vllm/vllm-openai:latest "
        "zai-org/GLM-5.1-FP8 --tensor-parallel-size 8 --tool-call-parser glm47 "
        "--reasoning-parser glm45 --enable-auto-tool-choice --chat-template-content-format=string "
        "--served-model-name glm-5.1-fp8",
        {"tensor_parallel_size": 8, "chat_template_content_format": "string"},
        "ok",
        layout="TP8",
    ),
    Case(
        # --quantization fp8 on a BF16 checkpoint: online FP8, deprecated (F002)
        "qwen3-api-server-online-fp8",
        "https://github.com/QwenLM/Qwen3-VL/issues/1489",
        QWEN,
        "H100",
        8,
        "python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen3-VL-235B-A22B-Instruct "
        "--served-model-name Qwen/Qwen3-VL-235B-A22B-Instruct --tensor-parallel-size 8 "
        "--mm-encoder-tp-mode data --enable-expert-parallel --host 0.0.0.0 --port 22002 "
        "--dtype bfloat16 --gpu-memory-utilization 0.70 --quantization fp8 "
        "--distributed-executor-backend mp",
        {
            "quantization": "fp8",
            "gpu_memory_utilization": 0.7,
            "distributed_executor_backend": "mp",
        },
        "warn",
        codes=frozenset({"F002"}),
        layout="TP8+EP",
    ),
    Case(
        # the recipe's typo is a unique prefix of --enable-expert-parallel: argparse takes it
        "qwen3-typo-is-a-prefix",
        "https://github.com/QwenLM/Qwen3-VL/issues/1492",
        QWEN,
        "H100",
        8,
        "python -m vllm.entrypoints.openai.api_server --model Qwen/Qwen3-VL-235B-A22B-Instruct "
        "--tensor-parallel-size 8 --mm-encoder-tp-mode data --enable-expert-paralle --host 0.0.0.0 "
        "--port 22002 --dtype bfloat16 --gpu-memory-utilization 0.70",
        {"enable_expert_parallel": True, "tensor_parallel_size": 8},
        "warn",
        layout="TP8+EP",
    ),
    Case(
        # the stand-in is the BF16 model (57 GiB), not the W4A16 one: it does not fit a 3090
        "qwen3-3090-v0-prefix",
        "https://github.com/vllm-project/vllm/issues/17327",
        QWEN,
        "RTX 3090",
        1,
        "VLLM_USE_V1=0 vllm serve <PATH>/nytopop_Qwen3-30B-A3B.w4a16 --gpu-memory-utilization 0.9 "
        "--disable-log-request --max-num-seqs 8",
        {"disable_log_requests": True, "max_num_seqs": 8, "gpu_memory_utilization": 0.9},
        "fail",
        version="0.10.0",
        codes=frozenset({"M001"}),
    ),
    Case(
        "qwen3-coder-dp8-short-option-equals",
        "https://github.com/vllm-project/recipes/pull/12",
        QWEN_FP8,
        "H20",
        8,
        "vllm serve /tmp/model/Qwen3-Coder-480B-A35B-Instruct-FP8 --served-model-name "
        "Qwen3-Coder-480B-A35B-FP8 -dp=8 --enable-expert-parallel --enable-auto-tool-choice "
        "--tool-call-parser qwen3_coder",
        {"data_parallel_size": 8, "enable_expert_parallel": True},
        "ok",
        version="0.10.1",
        layout="DP8+EP",
    ),
    Case(
        "qwen3-coder-dp8-utilization",
        "https://github.com/vllm-project/recipes/pull/12",
        QWEN_FP8,
        "H20",
        8,
        "vllm serve /tmp/model/Qwen3-Coder-480B-A35B-Instruct-FP8 --served-model-name "
        "Qwen3-Coder-480B-A35B-FP8 -dp=8 --enable-expert-parallel --enable-auto-tool-choice "
        "--tool-call-parser qwen3_coder --gpu-memory-utilization 0.95",
        {"data_parallel_size": 8, "gpu_memory_utilization": 0.95},
        "ok",
        version="0.10.1",
    ),
    Case(
        # `--enforce_eager true`: a flag takes no value, `true` is left over (vLLM exits);
        # the stand-in's 40,960 positions are shorter than 2507's 262,144 (M007)
        "qwen3-fp8-flag-with-value",
        "https://github.com/vllm-project/vllm/issues/22306",
        QWEN_FP8,
        "H100",
        2,
        "vllm serve /mnt/general/models/Qwen3-30B-A3B-Instruct-2507-FP8 --served-model-name "
        "Qwen3-30B-A3B-Instruct-2507-FP8 --tensor-parallel-size 2 --pipeline-parallel-size 1 "
        "--gpu-memory-utilization 0.9 --port 8011 --trust-remote-code --max-model-len 64000 "
        "--enforce_eager true",
        {"enforce_eager": True, "max_model_len": 64000, "tensor_parallel_size": 2},
        "fail",
        codes=frozenset({"L001", "M007"}),
        unknown=("true",),
    ),
    Case(
        # -O 3 before 0.12 is the compilation level; 131,072 is past the stand-in's 40,960
        "qwen3-dash-o-compilation-level",
        "https://github.com/nlzy/vllm-gfx906/pull/45",
        QWEN,
        "H100",
        4,
        "vllm serve '/mnt/models/vllm_models/Qwen3-Next-80B-A3B-Thinking-AWQ-8bit/' "
        "--tensor-parallel-size 4 --max-model-len 131072 --max-num-batched-tokens 7168 "
        "--max-num-seqs 80 --gpu-memory-utilization 0.95 -O 3",
        {"compilation_config": {"level": 3}, "max_num_batched_tokens": 7168},
        "fail",
        version="0.10.2",
        codes=frozenset({"M007"}),
    ),
    Case(
        # --rope-scaling (until 0.11) goes into the hf_overrides: 32,768 x 4 = 131,072
        "qwen3-yarn-rope-scaling-0.10",
        "https://blog.deepfal.cn/index.php/archives/951",
        QWEN_FP8,
        "H200",
        1,
        "VLLM_USE_MODELSCOPE=true vllm serve Qwen/Qwen3-30B-A3B-FP8 --rope-scaling "
        '\'{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}\' '
        "--max-model-len 131072",
        {"rope_scaling": YARN, "max_model_len": 131072},
        "ok",
        version="0.10.0",
    ),
    Case(
        "qwen3-yarn-hf-overrides-0.24",
        "https://axiomlogica.com/ai-ml/extend-llama-qwen-context-window-yarn-vllm",
        QWEN_FP8,
        "H200",
        1,
        f"vllm serve Qwen/Qwen3-30B-A3B-FP8 --hf-overrides '{json.dumps({'rope_scaling': YARN})}' "
        "--max-model-len 131072",
        {"hf_overrides": {"rope_scaling": YARN}, "max_model_len": 131072},
        "ok",
        version="0.24.0",
    ),
    Case(
        # from 0.30 YaRN no longer scales max_position_embeddings: the same command fails
        "qwen3-yarn-hf-overrides-0.33",
        "https://axiomlogica.com/ai-ml/extend-llama-qwen-context-window-yarn-vllm",
        QWEN_FP8,
        "H200",
        1,
        f"vllm serve Qwen/Qwen3-30B-A3B-FP8 --hf-overrides '{json.dumps({'rope_scaling': YARN})}' "
        "--max-model-len 131072",
        {"hf_overrides": {"rope_scaling": YARN}},
        "fail",
        version="0.33.0",
        codes=frozenset({"M007"}),
    ),
    Case(
        "gpt-oss-20b-env-and-frontend-options",
        "https://juejin.cn/post/7537505390113685546",
        GPT_OSS,
        "RTX 4090",
        1,
        "VLLM_ATTENTION_BACKEND=TRITON_ATTN_VLLM_V1 vllm serve /path/to/gpt-oss-20b --host "
        "192.168.31.103 --port 8000 --served-model-name openai/gpt-oss-20b --tensor-parallel-size 1"
        " --gpu-memory-utilization 0.9 --max-model-len 26384 --async-scheduling "
        "--uvicorn-log-level debug",
        {"max_model_len": 26384, "async_scheduling": True, "uvicorn_log_level": "debug"},
        "ok",
        version="0.10.1",
    ),
    Case(
        "gpt-oss-tp2-h100",
        "https://docs.gpustack.ai/2.3/zh/performance-lab/gpt-oss-120b/h100/",
        GPT_OSS,
        "H100",
        2,
        "vllm serve openai/gpt-oss-120b --async-scheduling -tp 2",
        {"tensor_parallel_size": 2, "async_scheduling": True},
        "ok",
        version="0.10.2",
        layout="TP2",
    ),
    Case(
        "gpt-oss-a100-batched-tokens",
        "https://docs.gpustack.ai/2.3/zh/performance-lab/gpt-oss-120b/a100/",
        GPT_OSS,
        "A100 80GB",
        1,
        "vllm serve openai/gpt-oss-120b --max-model-len 32768 --async-scheduling "
        "--max-num-batched-tokens 4096",
        {"max_model_len": 32768, "max_num_batched_tokens": 4096},
        "ok",
        version="0.11.0",
    ),
    Case(
        "gpt-oss-tuned-0.24",
        "https://huggingface.co/neural-nova/gpt-oss-120b-Instruct-Optimized",
        GPT_OSS,
        "H100",
        1,
        "VLLM_FLOAT32_MATMUL_PRECISION=medium VLLM_NO_USAGE_STATS=1 vllm serve openai/gpt-oss-120b"
        " --gpu-memory-utilization 0.92 --max-num-batched-tokens 32768 --max-num-seqs 128 "
        "--watermark 0.01 --block-size 16 --attention-backend FLASH_ATTN --enable-prefix-caching "
        "--enable-chunked-prefill --async-scheduling",
        {"max_num_batched_tokens": 32768, "block_size": 16, "attention_backend": "FLASH_ATTN"},
        "warn",
        version="0.24.0",
        codes=frozenset({"L003"}),
    ),
    Case(
        # a boolean flag given `=false` is an argparse error (vLLM exits with status 2)
        "llama-awq-chunked-prefill-equals-false",
        "https://github.com/vllm-project/vllm/issues/6689",
        LLAMA,
        "A6000",
        8,
        "vllm serve Meta-Llama-3___1-405B-Instruct-AWQ-INT4 --port 8080 --host 0.0.0.0 "
        "--served-model-name llama-3.1-405b --trust-remote-code --max-model-len 8192 -q awq "
        "--tensor-parallel-size 8 --enable-chunked-prefill=false --disable-log-requests "
        "--disable-log-stats",
        {"quantization": "awq", "tensor_parallel_size": 8, "disable_log_stats": True},
        "fail",
        codes=frozenset({"L002"}),
    ),
    Case(
        # --max-seq-len-to-capture was removed after 0.10
        "llama-removed-option",
        "https://github.com/vllm-project/vllm/issues/6689",
        LLAMA,
        "H100",
        2,
        "python -m vllm.entrypoints.openai.api_server --model "
        "/NS/llm-1/nobackup/shared/huggingface_cache/hub/models--meta-llama--Meta-Llama-3.1-70B-"
        "Instruct --tensor-parallel-size 2  --max-seq-len-to-capture 32000 --max-model-len 32000",
        {"tensor_parallel_size": 2, "max_model_len": 32000},
        "warn",
        codes=frozenset({"L001"}),
        unknown=("--max-seq-len-to-capture 32000",),
    ),
    Case(
        # the old key=value syntax is not JSON any more; 0.99 asks for more than is free
        "limit-mm-per-prompt-old-syntax",
        "https://github.com/vllm-project/vllm/issues/15529",
        LLAMA,
        "RTX 4090",
        4,
        "vllm serve /data/models/Qwen2.5-VL-32B-Instruct --limit-mm-per-prompt image=2  "
        "--tensor-parallel-size 4 --served-model-name Qwen2.5-VL-32B-Instruct --max-model-len 8192 "
        "--gpu-memory-utilization 0.99",
        {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.99},
        "fail",
        codes=frozenset({"L002", "M004"}),
    ),
    Case(
        "llm-positional-model-and-dict",
        "https://github.com/vllm-project/vllm/issues/17891",
        LLAMA,
        "H100",
        1,
        'LLM("Qwen/Qwen2.5-VL-7B-Instruct", limit_mm_per_prompt={"image": 20}, '
        "max_model_len=2048, gpu_memory_utilization=0.25)",
        {"limit_mm_per_prompt": {"image": 20}, "gpu_memory_utilization": 0.25},
        "ok",
    ),
    Case(
        "api-server-fp16-tp2",
        "https://github.com/vllm-project/vllm/issues/2248",
        LLAMA,
        "L40",
        2,
        "python -m vllm.entrypoints.openai.api_server --dtype float16 --trust-remote-code "
        "--model /models/deepseek-coder-33b-instruct --served-model-name "
        "deepseek-coder-33b-instruct --port 8000 --host 0.0.0.0 --tensor-parallel-size 2",
        {"dtype": "float16", "tensor_parallel_size": 2},
        "ok",
        layout="TP2",
    ),
    Case(
        "llm-mistral-format-pp8",
        "https://github.com/vllm-project/vllm/issues/2248",
        LLAMA,
        "L4",
        8,
        'LLM(model="mistralai/Mistral-Small-Instruct-2409", tokenizer_mode="mistral", '
        'load_format="mistral", config_format="mistral", tensor_parallel_size=1, '
        'pipeline_parallel_size=8, dtype="float16", enable_chunked_prefill=False)',
        {"pipeline_parallel_size": 8, "load_format": "mistral", "enable_chunked_prefill": False},
        "warn",
        codes=frozenset({"L003"}),
        layout="PP8",
    ),
    Case(
        "cpu-offload-30",
        "https://github.com/vllm-project/vllm/issues/9339",
        QWEN,
        "A6000",
        1,
        "python3 -m vllm.entrypoints.openai.api_server --model $MODEL_PATH --seed 1100 --dtype "
        "bfloat16 --trust-remote-code --port 8001 --gpu-memory-utilization 0.9 --cpu-offload-gb 30",
        {"cpu_offload_gb": 30.0, "seed": 1100},
        "warn",
        codes=frozenset({"M012"}),
    ),
    Case(
        "cpu-offload-12-eager",
        "https://github.com/vllm-project/vllm/issues/9339",
        LLAMA,
        "RTX 4070 Ti",
        1,
        "vllm serve /glm4-9b-chat --port 25011 --served-model-name glm4-9b-chat --dtype half "
        "--gpu-memory-utilization 0.9 --trust-remote-code --enforce-eager --enable-prefix-caching "
        "--cpu-offload-gb 12 --max-model-len 2048",
        {"cpu_offload_gb": 12.0, "enforce_eager": True, "enable_prefix_caching": True},
        "warn",
        codes=frozenset({"M012"}),
    ),
    Case(
        "cpu-offload-with-lora",
        "https://github.com/vllm-project/vllm/pull/6496",
        LLAMA,
        "L4",
        1,
        "vllm serve unsloth/Llama-3.2-3B --cpu-offload-gb 2 --tokenizer unsloth/Llama-3.2-3B "
        "--port 8000 --max-model-len 2048 --enable-lora --lora-modules "
        "profile_adapter=adapters_tokenizer_profile ingredientslist_adapter=adapters_tokenizer_"
        "list_ing --max-lora-rank 64",
        {"enable_lora": True, "max_lora_rank": 64, "cpu_offload_gb": 2.0},
        "warn",
        codes=frozenset({"L003", "M012"}),
    ),
    Case(
        # --kv-cache-memory is a unique prefix of --kv-cache-memory-bytes: argparse takes it
        "kv-cache-memory-prefix",
        "https://github.com/Tanguille/cluster/pull/4179",
        LLAMA,
        "RTX 4090",
        1,
        "vllm serve Qwen/Qwen3.6-27B --mamba-ssm-cache-dtype bfloat16 --trust-remote-code "
        "--kv-cache-memory 4294967296 --max-model-len 16384",
        {"kv_cache_memory_bytes": 4294967296, "mamba_ssm_cache_dtype": "bfloat16"},
        "warn",
        version="0.26.0",
    ),
    Case(
        "eagle3-draft",
        "https://docs.vllm.ai/projects/speculators/en/stable/user_guide/tutorials/serve_vllm/",
        LLAMA,
        "H100",
        1,
        'vllm serve Qwen/Qwen3-8B -tp 1 --speculative-config \'{"model": '
        '"RedHatAI/Qwen3-8B-speculator.eagle3", "num_speculative_tokens": 3, "method": "eagle3"}\'',
        {
            "speculative_config": {
                "model": "RedHatAI/Qwen3-8B-speculator.eagle3",
                "num_speculative_tokens": 3,
                "method": "eagle3",
            }
        },
        "warn",
        codes=frozenset({"L003"}),
    ),
    Case(
        "ngram-llm",
        "https://docs.vllm.ai/en/latest/features/speculative_decoding/n_gram/",
        LLAMA,
        "H100",
        1,
        'LLM(model="Qwen/Qwen3-8B", tensor_parallel_size=1, speculative_config={"method": '
        '"ngram", "num_speculative_tokens": 5, "prompt_lookup_max": 4})',
        {
            "speculative_config": {
                "method": "ngram",
                "num_speculative_tokens": 5,
                "prompt_lookup_max": 4,
            }
        },
        "ok",
    ),
    Case(
        "mixtral-tp8-l40s",
        "https://github.com/vllm-project/vllm/issues/5479",
        MIXTRAL,
        "L40S",
        8,
        "vllm serve mistralai/Mixtral-8x7B-Instruct-v0.1 --tensor-parallel-size 8",
        {"tensor_parallel_size": 8},
        "ok",
        layout="TP8",
    ),
    Case(
        "mixtral-tp2-a100",
        "https://github.com/vllm-project/vllm/issues/2134",
        MIXTRAL,
        "A100 80GB",
        2,
        "vllm serve mistralai/Mixtral-8x7B-Instruct-v0.1 --tensor-parallel-size 2",
        {"tensor_parallel_size": 2},
        "ok",
        layout="TP2",
    ),
]


def run(case: Case, split: bool = True) -> tuple[int, dict]:
    args = ["check", case.model, "--gpu", case.gpu, "--gpus", case.gpus, "--format", "json"]
    if case.version:
        args += ["--vllm-version", case.version]
    tail = shlex.split(case.command) if split and "LLM(" not in case.command else [case.command]
    result = invoke([*args, "--", *tail])
    assert result.exit_code in (0, 1), result.stderr
    return result.exit_code, json.loads(result.stdout)


def test_at_least_thirty_published_commands():
    assert len(CASES) >= 30
    assert all(c.source.startswith("https://") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_published_command(case):
    code, report = run(case)
    launch = report["launch"]
    for dest, value in case.values.items():
        assert launch["values"][dest] == value, dest
    assert report["verdict"] == case.verdict, [
        (f["code"], f["message"]) for f in report["findings"] if f["severity"] != "info"
    ]
    assert code == (1 if case.verdict == "fail" else 0)
    codes = {f["code"] for f in report["findings"]}
    assert case.codes <= codes
    assert tuple(launch["unknown"]) == case.unknown
    assert "L004" in codes  # how the launch was read is always shown
    if case.layout:
        assert report["plan"]["layouts"][0]["layout"] == case.layout


def test_a_command_given_as_one_quoted_argument_reads_the_same():
    case = next(c for c in CASES if c.id == "deepseek-fp8-kv-block-256")
    assert run(case, split=False)[1]["launch"] == run(case)[1]["launch"]
