"""servecheck smoke: load a checkpoint with the installed vLLM, generate, and compare.

    runner.py   find vLLM, run child.py in its own process group, follow the log, stop it
    child.py    runs inside vLLM's Python: parse the serve arguments, LLM(...), generate, report
    logparse.py the one parser of vLLM's start-up log (also used by benchmarks/gpu_truth)
    compare.py  prediction against the run, row by row; memory.py the memory rows
    record.py   the run as a truth record (tests/data/gpu_truth schema)
    result.py   SmokeResult, what api.smoke returns

Nothing here imports vLLM or torch: vLLM runs only in the child process.
"""
