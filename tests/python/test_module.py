"""The installed wheel against the binary: run by tests/python/run.sh with the fresh venv's Python,
after `pip install` of the wheel. Each check compares `vramplan.<command>(...)` with the JSON of
the `vramplan` executable the wheel installed, run directly with the same flags."""

import json
import os
import subprocess
import sys
import sysconfig

import vramplan

BIN = os.path.join(sysconfig.get_path("scripts"), "vramplan")
checks = []


def check(fn):
    checks.append(fn)
    return fn


def cli(*args):
    out = subprocess.run([BIN, *args, "--json"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@check
def the_wheel_installs_the_command_and_the_module_finds_it():
    assert os.access(BIN, os.X_OK), BIN
    assert vramplan.binary() == BIN, (vramplan.binary(), BIN)
    # Not the development tree's copy: the module is the installed one.
    assert "site-packages" in vramplan.__file__, vramplan.__file__


@check
def estimate_is_the_commands_json():
    got = vramplan.estimate(model="llama-3.1-8b-instruct", gpu="RTX 4090", context=8192, batch=4,
                            engine="vllm")
    want = cli("estimate", "--model", "llama-3.1-8b-instruct", "--gpu", "RTX 4090", "--context",
               "8192", "--batch", "4", "--engine", "vllm")
    assert got == want
    assert got["gpu"] == "rtx-4090" and got["engine"] == "vllm"
    # Keyword arguments named as the long flags, with underscores; switches as True.
    got = vramplan.estimate(model="llama-3.1-8b", gpu_memory_utilization=0.8, engine="vllm",
                            enforce_eager=True, max_model_len=4096)
    want = cli("estimate", "--model", "llama-3.1-8b", "--gpu-memory-utilization", "0.8",
               "--engine", "vllm", "--enforce-eager", "--max-model-len", "4096")
    assert got == want


@check
def plan_takes_lists():
    got = vramplan.plan(model=["llama-3.1-8b-instruct", "llama-3.1-70b-instruct"], gpu="rtx-4090",
                        max_gpus=2, context=8192, concurrency=4, quant=["bf16", "awq"])
    want = cli("plan", "-m", "llama-3.1-8b-instruct", "-m", "llama-3.1-70b-instruct", "-g",
               "rtx-4090", "--max-gpus", "2", "--context", "8192", "--concurrency", "4",
               "-q", "bf16", "-q", "awq")
    assert got == want
    assert got["no_plan"][0]["model"] == "meta-llama/Llama-3.1-70B-Instruct"


@check
def fit_and_inspect():
    got = vramplan.fit(gpu="4090", host_memory="64GiB", family="llama-3.1", no_local=True)
    want = cli("fit", "--gpu", "4090", "--host-memory", "64GiB", "--family", "llama-3.1",
               "--no-local")
    assert got == want
    assert got["hardware"]["gpu"] == "rtx-4090"
    fixtures = os.environ.get("VRAMPLAN_FIXTURES")
    if fixtures:
        path = os.path.join(fixtures, json.load(open(os.path.join(fixtures, "expected.json")))
                            ["gguf"]["basic.gguf"]["path"])
        assert vramplan.inspect(path) == cli("inspect", path)


@check
def errors_are_exceptions_with_the_one_line_message():
    try:
        vramplan.estimate(model="GLM-4.7")
    except vramplan.VramplanError as e:
        assert e.exit_code == 2
        assert e.message.startswith("unknown model 'GLM-4.7'"), e.message
        assert "\n" not in e.message
    else:
        raise AssertionError("an unknown model must raise")
    try:
        vramplan.estimate(context=-5)
    except vramplan.VramplanError as e:
        assert "cannot be negative" in e.message, e.message
    else:
        raise AssertionError("a negative context must raise")


passed = failed = 0
for fn in checks:
    try:
        fn()
        passed += 1
        print(f"ok   {fn.__name__}")
    except Exception as e:  # report every check, then fail
        failed += 1
        print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
print(f"wheel: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
