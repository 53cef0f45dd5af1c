"""Measure, on a real GPU with PyTorch, the memory terms servecheck's plan calibrates.

    python benchmarks/device_memory_probe.py > probe.json

1. CUDA-visible total memory (what vLLM multiplies by gpu_memory_utilization) next to
   nvidia-smi's total, and the memory the CUDA context and cuBLAS handles take before vLLM's
   start-up snapshot (vLLM 0.33 v1/worker/gpu_worker.py init_device creates the cuBLAS handles
   with one mm and one linear-with-bias before the snapshot).
2. The sampler's working set during vLLM's profiling run (v1/worker/gpu_model_runner.py
   _dummy_sampler_run: top_k = vocab - 1, top_p = 0.9, temperature 0.5, no generators), in fp32
   [num_reqs, vocab] copies, for two op sequences re-implemented here from vLLM's source:
   - "native_sort": vLLM 0.11 v1/sample/sampler.py forward + ops/topk_topp_sampler.py
     apply_top_k_top_p (sort, top-k gather, softmax, cumsum, scatter) + random_sample;
   - "inplace_topk": vLLM 0.24/0.33's native path, whose top-k/top-p is an in-place Triton
     kernel with a [num_sm, vocab] fp32 buffer (ops/topk_topp_triton.py); the masking itself is
     stood in by an in-place op here, so only allocations are measured.
Needs torch with CUDA; no vLLM.
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch

GIB = 2**30


def smi_total_mib() -> int | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total,name", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.splitlines()[0].split(",")[0])
    except Exception:
        return None


def startup() -> dict:
    torch.cuda.init()
    free0, total = torch.cuda.mem_get_info()
    dev = torch.device("cuda:0")
    torch.zeros(1, device=dev)
    free1, _ = torch.cuda.mem_get_info()
    x = torch.ones(16, 16, dtype=torch.bfloat16, device=dev)
    torch.mm(x, x)
    torch.nn.functional.linear(x, x, x[0])
    del x
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free2, _ = torch.cuda.mem_get_info()
    return {
        "gpu": torch.cuda.get_device_name(0),
        "sm_count": torch.cuda.get_device_properties(0).multi_processor_count,
        "nvidia_smi_total_mib": smi_total_mib(),
        "cuda_total_gib": total / GIB,
        "free_before_context_gib": free0 / GIB,
        "used_after_context_gib": (total - free1) / GIB,
        "used_after_cublas_gib": (total - free2) / GIB,
    }


def sampler_peak(num_reqs: int, vocab: int, hidden: int, tokens: int, path: str) -> dict:
    dev = torch.device("cuda:0")
    torch.cuda.empty_cache()
    # the dummy run's hidden states stay alive; lm_head weight is model memory (not counted)
    hidden_states = torch.randn(tokens, hidden, dtype=torch.bfloat16, device=dev)
    weight = torch.randn(vocab, hidden, dtype=torch.bfloat16, device=dev) * 0.01
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    last = torch.rand_like(hidden_states[:num_reqs])
    logits = torch.nn.functional.linear(last, weight)  # bf16 [R, V]
    temperature = torch.full((num_reqs,), 0.5, device=dev)
    top_p = torch.full((num_reqs,), 0.9, device=dev)
    top_k = torch.full((num_reqs,), vocab - 1, device=dev)
    logits = logits.to(torch.float32)
    logits.div_(temperature.unsqueeze(1))
    if path == "native_sort":
        logits_sort, logits_idx = logits.sort(dim=-1, descending=False)
        mask = logits_sort.size(1) - top_k.to(torch.long)
        mask = logits_sort.gather(1, mask.unsqueeze(1))
        mask = logits_sort < mask
        logits_sort.masked_fill_(mask, -float("inf"))
        probs_sort = logits_sort.softmax(dim=-1)
        probs_sum = torch.cumsum(probs_sort, dim=-1, out=probs_sort)
        top_p_mask = probs_sum <= 1 - top_p.unsqueeze(1)
        top_p_mask[:, -1] = False
        logits_sort.masked_fill_(top_p_mask, -float("inf"))
        logits = logits_sort.scatter(dim=-1, index=logits_idx, src=logits_sort)
        del logits_sort, logits_idx, mask, probs_sort, probs_sum, top_p_mask
    else:
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        buffer = logits.new_empty((min(sms, num_reqs), vocab))
        logits.clamp_(min=-1e30)  # stands in for the in-place Triton masking
        del buffer
    probs = logits.softmax(dim=-1, dtype=torch.float32)
    q = torch.empty_like(probs)
    q.exponential_()
    sampled = probs.div_(q).argmax(dim=-1)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del sampled, probs, q, logits, last, hidden_states, weight
    unit = num_reqs * vocab * 4
    hidden_bytes = tokens * hidden * 2
    return {
        "path": path,
        "num_reqs": num_reqs,
        "vocab": vocab,
        "peak_gib": peak / GIB,
        "fp32_copies": peak / unit,
        "fp32_copies_with_hidden_states": (peak + hidden_bytes) / unit,
    }


def main() -> int:
    out = {"startup": startup(), "torch": torch.__version__, "sampler": []}
    for vocab in (128256, 151936, 201088):
        for path in ("native_sort", "inplace_topk"):
            out["sampler"].append(sampler_peak(1024, vocab, 4096, 8192, path))
    for path in ("native_sort", "inplace_topk"):
        out["sampler"].append(sampler_peak(256, 151936, 2048, 2048, path))
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
