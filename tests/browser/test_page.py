"""End-to-end tests of the calculator page in headless Chromium, one per feature of issue 5.

Each test loads the page from the real server, changes inputs as a user would, and checks the
numbers shown against `vramplan estimate --json` (the plan panel: `vramplan plan --json`) run
with the same flags. Expected texts are
formatted here in Python (f"{x:.2f}" rounds half-to-even, as Rust's {:.2} does)."""

import json
import os
import re
import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from conftest import ROOT

# Screenshots go to target/screenshots: the test command leaves the working tree clean. The
# README's images in docs/ are refreshed only by scripts/update_readme.sh (VRAMPLAN_SCREENSHOTS=docs).
SHOTS = os.environ.get("VRAMPLAN_SCREENSHOTS") or os.path.join(ROOT, "target", "screenshots")
os.makedirs(SHOTS, exist_ok=True)

DEFAULT_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
BYTE_FIGURES = {
    "weights": "weights_bytes",
    "kv_cache": "kv_cache_bytes",
    "activations": "activation_bytes",
    "overhead": "overhead_bytes",
    "total": "total_bytes",
    "usable": "usable_bytes",
}
BAR_WIDTH = 600  # the stacked bar's SVG viewBox width (app.js drawBar)

# meta-llama/Llama-3.1-8B-Instruct's config.json fields (data/models/llama.toml cites it).
LLAMA_8B_CONFIG = {
    "_name_or_path": "meta-llama/Llama-3.1-8B-Instruct", "architectures": ["LlamaForCausalLM"],
    "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
    "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 14336, "vocab_size": 128256,
    "max_position_embeddings": 131072, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


def gb_gib(b):
    return f"{b / 1e9:.2f} GB ({b / 2**30:.2f} GiB)"


def gib(b):
    return f"{b / 2**30:.2f} GiB"


def params_short(n):
    if n >= 1e12:
        return f"{n / 1e12:.2f}T"
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n:,}"


def estimate(cli, **flags):
    args = ["estimate", "--json"]
    for k, v in flags.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return cli(*args)


def assert_figures(page, est):
    """Every figure on the page equals the CLI's, as raw value and as text."""
    for fig, key in BYTE_FIGURES.items():
        raw, text = page.figure(fig)
        assert int(raw) == est[key], f"{fig}: page {raw}, CLI {est[key]}"
        assert text.startswith(gb_gib(est[key])), f"{fig}: {text!r} vs {gb_gib(est[key])}"
    raw, text = page.figure("params")
    assert int(raw) == est["params"] and text.startswith(params_short(est["params"]))
    raw, text = page.figure("margin")
    assert int(raw) == est["margin_bytes"] and text == gb_gib(abs(est["margin_bytes"]))
    raw, text = page.figure("max_concurrency")
    assert int(raw) == est["max_concurrency"]
    noun = "sequence" if est["max_concurrency"] == 1 else "sequences"
    assert text == f"{est['max_concurrency']:,} {noun} of {est['context']:,} tokens"
    raw, text = page.figure("max_context")
    assert int(raw) == est["max_context"] and text.startswith(f"{est['max_context']:,} tokens")
    raw, text = page.figure("min_gpus")
    assert raw == ("null" if est["min_gpus"] is None else str(est["min_gpus"]))
    verdict = page.el("#verdict")
    assert verdict.get_attribute("data-fits") == str(est["fits"]).lower()
    word = "FITS, " if est["fits"] else "DOES NOT FIT, short by "
    tail = " to spare" if est["fits"] else ""
    assert verdict.text == f"{word}{gb_gib(abs(est['margin_bytes']))}{tail}"


def plan(cli, **flags):
    """`vramplan plan --json`; a list value is the flag once per entry."""
    args = ["plan", "--json"]
    for k, v in flags.items():
        for one in (v if isinstance(v, list) else [v]):
            args += [f"--{k.replace('_', '-')}", str(one)]
    return cli(*args)


def plan_state(page):
    return page.d.execute_script(
        "const p = document.getElementById('plan').dataset; return [p.state || '', p.generation || '0'];")


def search_plans(page, press, want="ready", timeout=60):
    """Starts a search with `press()` (a click or a key) and waits for its answer."""
    _, before = plan_state(page)
    press()
    end = time.time() + timeout
    while time.time() < end:
        state, gen = plan_state(page)
        if gen != before and state in ("ready", "error"):
            assert state == want, f"plan panel ended in {state!r}: {page.el('#plan-error').text!r}"
            return
        time.sleep(0.05)
    raise AssertionError(f"the plan search did not finish: {plan_state(page)}")


def plan_row(page, index):
    """The cells of plan row `index`: {key: (data-value, text)}, and its launch command."""
    row = page.el(f'#plan-table tr.plan-row[data-index="{index}"]')
    cells = {td.get_attribute("data-key"): (td.get_attribute("data-value"), td.text)
             for td in row.find_elements("css selector", "td")}
    launch = page.el(f'#plan-table tr.launch-row[data-index="{index}"] code').text
    return cells, launch


def assert_plan_row(page, index, d):
    """Plan row `index` shows deployment `d` of `vramplan plan --json`, as the CLI's table does."""
    cells, launch = plan_row(page, index)
    assert cells["gpus"][1] == f"{d['gpus']} × {d['gpu']}"
    assert cells["quant"][1] == d["quant"] and cells["kv_dtype"][1] == d["kv_dtype"]
    assert cells["parallel"][1] == f"{d['tp']}/{d['pp']}/{d['replicas']}"
    assert int(cells["memory_per_gpu_bytes"][0]) == d["memory_per_gpu_bytes"]
    assert cells["memory_per_gpu_bytes"][1] == f"{gib(d['memory_per_gpu_bytes'])} of {gib(d['gpu_memory_bytes'])}"
    assert int(cells["max_concurrency"][0]) == d["max_concurrency"]
    assert cells["max_concurrency"][1] == f"{d['max_concurrency']:,}"
    assert float(cells["decode_tokens_per_s"][0]) == d["decode_tokens_per_s"]
    assert cells["decode_tokens_per_s"][1] == f"{d['decode_tokens_per_s']:,.0f}"
    if d["cost_per_hour"] is None:
        assert cells["cost_per_hour"] == ("null", "no price")
    else:
        assert float(cells["cost_per_hour"][0]) == d["cost_per_hour"]
        assert cells["cost_per_hour"][1] == f"${d['cost_per_hour']:.2f}"
    assert launch == d["launch"]


def url_params(page):
    return page.d.execute_script("return Object.fromEntries(new URLSearchParams(location.search))")


def grant_clipboard(page):
    page.d.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": page.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})


def wait_copied(page, text):
    """The copy buttons write asynchronously; #copied records what they wrote."""
    for _ in range(100):
        if page.el("#copied").get_attribute("data-copied") == text:
            return
        time.sleep(0.05)
    raise AssertionError(f"copied {page.el('#copied').get_attribute('data-copied')!r}, wanted {text!r}")


def read_clipboard(page):
    return page.d.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, (e) => done('ERROR ' + e));")


# ---------------------------------------------------------------- tests, one per feature

def test_page_loads_offline_with_the_cli_default_numbers(page, cli):
    assert_figures(page, estimate(cli))
    # Nothing comes from anywhere but this server.
    origins = page.d.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
    assert origins and set(origins) == {page.base}, origins
    assert page.el("#headline").text.startswith(DEFAULT_MODEL)


def test_model_type_to_search_over_the_catalogue(page, cli):
    models = cli("models", "--json")
    options = page.d.find_elements("css selector", "#model-list option")
    assert [o.get_attribute("value") for o in options] == [m["id"] for m in models]
    # A partial name is answered with the nearest catalogue names.
    page.type_into("model", "mixtr", want="error")
    assert "unknown model 'mixtr'; nearest:" in page.el("#status").text
    assert "mixtral" in page.el("#status").text.lower()
    assert page.el("#model").get_attribute("aria-invalid") == "true"
    # An alias picks the entry.
    page.type_into("model", "mixtral-8x7b")
    est = estimate(cli, model="mixtral-8x7b")
    assert_figures(page, est)
    assert "mistralai/Mixtral-8x7B-v0.1" in page.el("#model-info").text


def test_paste_a_config_json(page, cli):
    page.el("#config-box summary").click()
    box = page.el("#config-text")
    box.send_keys(json.dumps({"hello": "world"}))
    page.el("#config-use").click()
    page.settle("error")
    assert page.el("#status").text.startswith("config.num_hidden_layers:")
    box.clear()
    box.send_keys(json.dumps(LLAMA_8B_CONFIG))
    page.el("#config-use").click()
    page.settle()
    # The same architecture as the catalogue entry: the same numbers.
    assert_figures(page, estimate(cli, model=DEFAULT_MODEL))
    assert page.el("#headline").text.startswith("pasted config.json (meta-llama/Llama-3.1-8B-Instruct)")
    assert page.el("#model").get_attribute("disabled") is not None
    page.el("#config-clear").click()
    page.settle()
    assert page.el("#headline").text.startswith(DEFAULT_MODEL)


# A Qwen3-Next-shaped hybrid (Gated DeltaNet layers and full attention every 4th layer) with a
# SigLIP vision tower: hybrid and multimodal configs are described, not refused.
HYBRID_VLM_CONFIG = {
    "model_type": "qwen3_next", "num_hidden_layers": 48, "hidden_size": 2048,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "intermediate_size": 5120, "vocab_size": 151936, "max_position_embeddings": 262144,
    "full_attention_interval": 4, "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128, "linear_num_key_heads": 16,
    "linear_value_head_dim": 128, "linear_num_value_heads": 32,
    "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512, "torch_dtype": "bfloat16",
    "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152,
                      "intermediate_size": 4304, "num_hidden_layers": 27, "patch_size": 14,
                      "image_size": 896},
}


def test_paste_a_hybrid_multimodal_config(page, cli):
    page.el("#config-box summary").click()
    box = page.el("#config-text")
    box.send_keys(json.dumps(HYBRID_VLM_CONFIG))
    page.el("#config-use").click()
    page.settle()
    # Only the 12 full-attention layers cache K and V: 12 × 2 × 2 KV heads × 256 × 2 B = 24,576 B
    # per token (fp16 KV); × 8,192 tokens = 201,326,592 B, plus the 36 Gated DeltaNet layers'
    # constant state: conv [8192, 4] bf16 + recurrent [32, 128, 128] fp32 = 2,162,688 B each.
    raw, _ = page.figure("kv_cache")
    assert int(raw) == 201_326_592 + 36 * 2_162_688
    text = page.el("#layers").text
    assert "36 gated_deltanet" in text and "12 full_attention" in text, text
    assert "recurrent state" in text and "siglip_vision_model encoder (27 layers)" in text, text


def test_drop_a_config_json_file_on_the_page(page, cli):
    config = dict(LLAMA_8B_CONFIG, num_key_value_heads=32)  # a made-up MHA variant: 4× the KV
    page.d.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File([arguments[0]], 'config.json', {type: 'application/json'}));
        document.querySelector('main').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, json.dumps(config))
    page.settle()
    raw, _ = page.figure("kv_cache")
    # 2 × 32 layers × 32 KV heads × 128 × 2 B = 524,288 B per token; × 8,192 tokens = 4,294,967,296 B.
    assert int(raw) == 4_294_967_296
    assert "dropped file config.json" in page.el("#config-status").text
    assert json.loads(page.el("#config-text").get_attribute("value")) == config


def test_precision_and_kv_dtype(page, cli):
    page.choose("quant", "awq")
    page.choose("kv_dtype", "fp8")
    assert_figures(page, estimate(cli, quant="awq", kv_dtype="fp8"))
    assert url_params(page)["quant"] == "awq"


def test_context_and_concurrent_users(page, cli):
    page.type_into("context", 32768)
    page.type_into("batch", 8)
    assert_figures(page, estimate(cli, context=32768, batch=8))


def test_gpu_kind_and_count(page, cli):
    page.choose("gpu", "a100-80gb")
    page.type_into("gpus", 2)
    est = estimate(cli, gpu="a100-80gb", gpus=2)
    assert est["tp"] == 2
    assert_figures(page, est)
    assert "2 × NVIDIA A100" in page.el("#headline").text


def test_engine_and_memory_fraction(page, cli):
    page.type_into("fraction", "0.8")
    assert_figures(page, estimate(cli, gpu_memory_utilization=0.8))
    assert url_params(page)["gpu_memory_utilization"] == "0.8"
    engines = [o.get_attribute("value") for o in page.d.find_elements("css selector", "#engine option")]
    assert engines[0] == "generic" and len(engines) >= 2
    # Each engine with its own default fraction (the control resets and shows it greyed);
    # generic last, so that every choice is a change.
    for name in engines[1:] + engines[:1]:
        page.choose("engine", name)
        est = estimate(cli, engine=name)
        assert_figures(page, est)
        fraction = page.el("#fraction")
        assert fraction.get_attribute("value") == ""
        if fraction.is_enabled():
            # Compared as numbers: JavaScript prints 1.0 (vLLM 0.34's default) as "1".
            assert float(fraction.get_attribute("placeholder")) == est["utilization"]
    # The fraction is the engine's own flag: SGLang's --mem-fraction-static.
    if "sglang" in engines:
        page.choose("engine", "sglang")
        page.type_into("fraction", "0.8")
        assert url_params(page).get("mem_fraction_static") == "0.8"
        assert_figures(page, estimate(cli, engine="sglang", mem_fraction_static=0.8))
    if "vllm" in engines:
        page.choose("engine", "vllm")
        page.type_into("fraction", "0.85")
        assert_figures(page, estimate(cli, engine="vllm", gpu_memory_utilization=0.85))


def test_live_update_without_reload(page, cli):
    page.d.execute_script("window.__sameDocument = 42")
    before = page.figure("kv_cache")
    page.type_into("context", 65536)
    assert page.d.execute_script("return window.__sameDocument") == 42
    assert page.figure("kv_cache") != before
    assert_figures(page, estimate(cli, context=65536))


def test_stacked_bar_against_usable_memory(page, cli):
    page.type_into("batch", 24)
    est = estimate(cli, batch=24)
    scale = max(est["total_bytes"], est["gpu_memory_bytes"])
    parts = {"weights": "weights_bytes", "kv_cache": "kv_cache_bytes", "activations": "activation_bytes",
             "overhead": "overhead_bytes"}
    x = 0.0
    for part, key in parts.items():
        rect = page.el(f'#bar rect[data-part="{part}"]')
        width = float(rect.get_attribute("width"))
        assert abs(width - BAR_WIDTH * est[key] / scale) < 1e-6, part
        assert abs(float(rect.get_attribute("x")) - x) < 1e-6
        x += width
    line = page.el("#bar line.usable-line")
    assert abs(float(line.get_attribute("x1")) - BAR_WIDTH * est["usable_bytes"] / scale) < 1e-6
    legend = page.el("#legend").text
    assert f"KV cache {gib(est['kv_cache_bytes'])}" in legend


def test_verdict_when_it_does_not_fit(page, cli):
    page.type_into("model", "llama-3.1-70b")
    page.choose("gpu", "a10g")
    est = estimate(cli, model="llama-3.1-70b", gpu="a10g")
    assert not est["fits"]
    assert_figures(page, est)
    assert "nofit" in page.el("#verdict").get_attribute("class")


def test_max_concurrency_against_context_chart(page, cli):
    page.choose("kv_dtype", "fp8")
    bars = page.d.find_elements("css selector", "#ctx-chart g.point")
    assert len(bars) >= 5
    for g in bars:
        context = int(g.get_attribute("data-context"))
        est = estimate(cli, kv_dtype="fp8", context=context)
        assert int(g.get_attribute("data-value")) == est["max_concurrency"], context
    contexts = [int(g.get_attribute("data-context")) for g in bars]
    assert contexts == sorted(contexts) and contexts[-1] == 131072  # the model's own limit
    assert page.el('#ctx-chart g.point.current').get_attribute("data-context") == "8192"


def test_same_configuration_across_gpu_kinds(page, cli):
    page.type_into("batch", 4)
    rows = page.d.find_elements("css selector", "#gpu-table tbody tr")
    gpus = cli("gpus", "--json")
    assert [r.get_attribute("data-gpu") for r in rows] == [g["id"] for g in gpus]
    for row in rows:
        gpu = row.get_attribute("data-gpu")
        est = estimate(cli, gpu=gpu, batch=4)
        cells = row.find_elements("css selector", "td")
        values = [c.get_attribute("data-value") for c in cells]
        assert values == [str(est["gpu_memory_bytes"]), str(est["total_bytes"]), str(est["fits"]).lower(),
                          str(est["max_concurrency"]), "null" if est["min_gpus"] is None else str(est["min_gpus"])], gpu
    assert page.el("#gpu-table tr.current").get_attribute("data-gpu") == "h100"


def test_formula_and_assumption_on_hover_focus_and_tap(page, cli):
    est = estimate(cli)
    formulas = {a["figure"]: a for a in est["assumptions"]}
    for figure in ("weights", "kv_cache", "activations", "overhead", "usable"):
        button = page.el(f'dd[data-figure="{figure}"] button.info')
        tip = page.el(f"#tip-{figure}")
        assert not tip.is_displayed()
        ActionChains(page.d).move_to_element(button).perform()
        assert tip.is_displayed(), figure
        assert tip.find_element("css selector", ".tip-formula").text == formulas[figure]["formula"]
        assert tip.find_element("css selector", ".tip-source").text == "Source: " + formulas[figure]["source"]
        ActionChains(page.d).move_to_element(page.el("h1")).perform()
    # Every figure has its explanation, including the derived ones.
    for dd in page.d.find_elements("css selector", "#figures dd"):
        assert dd.find_elements("css selector", "button.info"), dd.get_attribute("data-figure")
    # Keyboard focus shows it; a tap (click) keeps it open after the pointer leaves.
    button = page.el('dd[data-figure="max_concurrency"] button.info')
    page.d.execute_script("arguments[0].focus()", button)
    assert page.el("#tip-max_concurrency").is_displayed()
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    page.d.execute_script("arguments[0].blur()", button)
    ActionChains(page.d).move_to_element(page.el("h1")).perform()
    assert page.el("#tip-max_concurrency").is_displayed()
    assert "binary search" in page.el("#tip-max_concurrency").text
    # Every assumption of the estimate is listed, whichever figure it belongs to.
    page.el("#assumptions summary").click()
    items = page.d.find_elements("css selector", "#assumption-list li")
    assert [i.text.split(":")[0] for i in items] == [a["figure"] for a in est["assumptions"]]
    # An engine profile's own assumptions go with the figures they explain.
    if "vllm" in [o.get_attribute("value") for o in page.d.find_elements("css selector", "#engine option")]:
        page.choose("engine", "vllm")
        vllm = {a["figure"]: a for a in estimate(cli, engine="vllm")["assumptions"]}
        ActionChains(page.d).move_to_element(page.el('dd[data-figure="kv_cache"] button.info')).perform()
        assert vllm["kv_cache"]["formula"] in page.el("#tip-kv_cache").text
        page.d.execute_script("arguments[0].focus()", page.el('dd[data-figure="overhead"] button.info'))
        tip = page.el("#tip-overhead").text
        for figure in ("non_torch", "cuda_graphs"):
            if figure in vllm:
                assert vllm[figure]["formula"] in tip, figure


def test_share_as_url(page, cli):
    grant_clipboard(page)
    page.type_into("model", "qwen2.5-7b-instruct")
    page.choose("kv_dtype", "fp8")
    page.type_into("context", 16384)
    page.type_into("batch", 6)
    page.choose("gpu", "l40s")
    page.el("#share").click()
    url = page.d.current_url
    assert url_params(page) == {"model": "qwen2.5-7b-instruct", "kv_dtype": "fp8", "context": "16384",
                                "batch": "6", "gpu": "l40s"}
    wait_copied(page, url)
    assert read_clipboard(page) == url
    # Opening the link restores the inputs and the same figures.
    page.d.get("about:blank")
    page.d.get(url)
    page.settle()
    assert page.el("#model").get_attribute("value") == "qwen2.5-7b-instruct"
    assert page.el("#context").get_attribute("value") == "16384"
    assert Select(page.el("#gpu")).first_selected_option.get_attribute("value") == "l40s"
    assert_figures(page, estimate(cli, model="qwen2.5-7b-instruct", kv_dtype="fp8", context=16384, batch=6, gpu="l40s"))


def test_copy_the_engine_launch_command(page, cli):
    grant_clipboard(page)
    expected = (f"vllm serve {DEFAULT_MODEL} --max-model-len 8192 "
                "--gpu-memory-utilization 0.9 --tensor-parallel-size 1 --kv-cache-dtype auto")
    assert page.el("#launch").text == expected
    page.choose("kv_dtype", "fp8")
    page.type_into("gpus", 2)
    page.type_into("context", 32768)
    est = estimate(cli, kv_dtype="fp8", gpus=2, context=32768)
    expected = (f"vllm serve {DEFAULT_MODEL} --max-model-len 32768 "
                f"--gpu-memory-utilization {est['utilization']} --tensor-parallel-size {est['tp']} --kv-cache-dtype fp8")
    assert page.el("#launch").text == expected
    page.el("#copy-launch").click()
    wait_copied(page, expected)
    assert page.el("#copied").text == "Launch command copied."
    assert read_clipboard(page) == expected
    engines = [o.get_attribute("value") for o in page.d.find_elements("css selector", "#engine option")]
    if "vllm" in engines:
        # vLLM's own default utilization, as the profile reports it.
        page.choose("engine", "vllm")
        est = estimate(cli, engine="vllm", kv_dtype="fp8", gpus=2, context=32768)
        settings = {s["name"]: s["value"] for s in est["engine_settings"]}
        assert page.el("#launch").text == (
            f"vllm serve {DEFAULT_MODEL} --max-model-len 32768 --gpu-memory-utilization "
            f"{settings['gpu_memory_utilization']} --tensor-parallel-size 2 --kv-cache-dtype fp8")
    if "sglang" in engines:
        page.choose("engine", "sglang")
        est = estimate(cli, engine="sglang", kv_dtype="fp8", gpus=2, context=32768)
        settings = {s["name"]: s["value"] for s in est["engine_settings"]}
        assert page.el("#launch").text == (
            f"python -m sglang.launch_server --model-path {DEFAULT_MODEL} --context-length 32768 "
            f"--mem-fraction-static {settings['mem_fraction_static']} --tp-size 2 --kv-cache-dtype fp8_e5m2")
    if "llamacpp" in engines:
        page.type_into("gpus", 1, want=None)
        page.choose("quant", "q4_k", want=None)
        page.choose("kv_dtype", "q8_0", want=None)
        page.choose("engine", "llamacpp")
        est = estimate(cli, engine="llamacpp", quant="q4_k", kv_dtype="q8_0", gpus=1, context=32768)
        settings = {s["name"]: s["value"] for s in est["engine_settings"]}
        command = page.el("#launch").text.splitlines()[-1]
        # q4_k is llama-quantize's alias of the Q4_K_M file type (tools/quantize/quantize.cpp).
        assert command.startswith(f"llama-server -m Llama-3.1-8B-Instruct-Q4_K_M.gguf -c 32768 -np 1 "
                                  f"-ngl {settings['n_gpu_layers']} -ctk ")


def test_plan_a_deployment(page, cli):
    """The plan panel searches on a button press with the page's model, context, users and
    engine, and shows the CLI's plans in the CLI's order, each launch command copyable."""
    grant_clipboard(page)
    page.type_into("context", 16384)
    page.type_into("batch", 8)
    page.choose("engine", "vllm")
    # Nothing is searched until asked: a plan is heavier than an estimate.
    assert plan_state(page) == ["idle", "0"]
    assert not page.el("#plan-found").is_displayed() and not page.el("#plan-none").is_displayed()
    assert page.el("#plan-workload").text == f"{DEFAULT_MODEL}: 8 concurrent × 16,384 tokens"
    assert page.el("#plan-engine").text == "vllm"
    search_plans(page, page.el("#plan-run").click)
    expected = plan(cli, model=DEFAULT_MODEL, context=16384, concurrency=8, engine="vllm")
    plans = expected["plans"]
    assert len(plans) > 12
    rows = page.d.find_elements("css selector", "#plan-table tr.plan-row")
    assert len(rows) == 12  # the CLI table's default --top
    assert_plan_row(page, 0, plans[0])
    assert_plan_row(page, 11, plans[11])
    assert page.el("#plan-summary").text == (
        f"{len(plans):,} deployments serve 8 concurrent sequences of 16,384 tokens of {plans[0]['model']}, "
        "cheapest first; the first 12 shown.")
    # Each launch command copies.
    page.el('#plan-table tr.launch-row[data-index="1"] button').click()
    for _ in range(100):
        if page.el("#plan-status").get_attribute("data-copied") == plans[1]["launch"]:
            break
        time.sleep(0.05)
    assert page.el("#plan-status").text == "Launch command of plan 2 copied."
    assert read_clipboard(page) == plans[1]["launch"]
    # Changing an input marks the plans shown as out of date, until the next search.
    page.type_into("batch", 64)
    assert "stale" in page.el("#plan").get_attribute("class")
    assert page.el("#plan-status").text.startswith("The inputs changed since this search")
    # ollama is not one of the planner's engines: planned with vllm, and the panel says so.
    page.choose("engine", "ollama", want=None)
    assert page.d.execute_script("return planBody().engine") == "vllm"
    assert page.el("#plan-engine").text.startswith("vllm (ollama is not one of the planner's engines")


def test_plan_without_a_deployment_shows_the_advice(page, cli):
    """When nothing in the search space serves the workload, the panel lists the planner's advice;
    the search runs from the keyboard (Enter in the panel's field)."""
    page.type_into("model", "llama-3.2-1b")
    page.choose("gpu", "t4")
    page.type_into("context", 131072)
    page.type_into("batch", 64)
    page.el("#plan-this-gpu").click()
    field = page.el("#plan-max-gpus")
    field.send_keys("1")
    assert page.d.execute_script("return planBody()") == {
        "model": ["llama-3.2-1b"], "context": 131072, "concurrency": 64, "engine": "generic",
        "max_gpus": 1, "gpu": ["t4"]}
    search_plans(page, lambda: field.send_keys(Keys.ENTER))
    expected = plan(cli, model="llama-3.2-1b", gpu="t4", max_gpus=1, context=131072, concurrency=64,
                    engine="generic")
    assert expected["plans"] == [] and expected["advice"]
    assert not page.el("#plan-found").is_displayed()
    assert page.el("#plan-none").is_displayed()
    items = [li.text for li in page.d.find_elements("css selector", "#plan-advice li")]
    assert items == [f"{a['change']}: {a['detail']}" for a in expected["advice"]]
    # A refused request is shown with its field, and the next good one clears it.
    field.clear()
    field.send_keys("0")
    search_plans(page, page.el("#plan-run").click, want="error")
    assert page.el("#plan-error").text == "max_gpus: --max-gpus must be between 1 and 512"
    assert field.get_attribute("aria-invalid") == "true"
    field.clear()
    field.send_keys("1")
    run = page.el("#plan-run")
    page.d.execute_script("arguments[0].focus()", run)
    search_plans(page, lambda: run.send_keys(Keys.SPACE))
    assert not page.el("#plan-error").is_displayed() and page.el("#plan-none").is_displayed()


def test_phone_sized_screen(page, cli):
    page.d.set_window_size(390, 844)
    page.open("batch=3")
    width = page.d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page scrolls sideways on a phone: {width}"
    controls = page.el("#controls").rect
    results = page.el("#results").rect
    assert results["y"] >= controls["y"] + controls["height"] - 1, "form and results should stack"
    page.type_into("context", 4096)
    est = estimate(cli, batch=3, context=4096)
    assert_figures(page, est)
    # The answer stays in view below the form.
    mini = page.el("#mini")
    assert mini.is_displayed()
    assert mini.text.startswith(f"Fits · max concurrency {est['max_concurrency']:,}")
    assert mini.rect["y"] + mini.rect["height"] <= page.d.execute_script("return window.innerHeight") + 1
    # The plan panel's table scrolls inside its box, not the page. (Controls are brought to the
    # middle of the screen first, as a thumb would scroll them out from under the pinned bar.)
    def tap(css):
        e = page.el(css)
        page.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", e)
        e.click()
    tap("#plan-this-gpu")
    search_plans(page, lambda: tap("#plan-run"))
    assert page.d.find_elements("css selector", "#plan-table tr.plan-row")
    width = page.d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page scrolls sideways on a phone after a plan: {width}"
    for button in page.d.find_elements("css selector", "button.btn"):
        if button.is_displayed():
            assert button.size["height"] >= 36, "touch targets of at least 36 px"
    page.d.execute_script("window.scrollTo(0, 0)")
    page.d.save_screenshot(os.path.join(SHOTS, "screenshot-phone.png"))


def luminance(css_color):
    r, g, b = [int(v) for v in re.findall(r"\d+", css_color)[:3]]
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_light_and_dark_themes(page, cli):
    bg = lambda: luminance(page.d.execute_script("return getComputedStyle(document.body).backgroundColor"))
    text = lambda: luminance(page.d.execute_script("return getComputedStyle(document.body).color"))
    assert bg() > 0.8 and text() < 0.3
    page.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    page.open()
    assert bg() < 0.2 and text() > 0.7
    toggle = page.el("#theme")
    assert toggle.get_attribute("aria-pressed") == "true"
    toggle.click()
    assert bg() > 0.8 and toggle.get_attribute("aria-pressed") == "false"
    page.open()  # the choice is remembered over the system preference
    assert bg() > 0.8
    page.el("#theme").click()
    assert bg() < 0.2
    assert_figures(page, estimate(cli))
    # The plan panel and its button follow the theme, with readable text.
    panel = luminance(page.d.execute_script("return getComputedStyle(document.getElementById('plan')).backgroundColor"))
    run = page.d.execute_script("const s = getComputedStyle(document.getElementById('plan-run')); return [s.backgroundColor, s.color]")
    assert panel < 0.2
    assert abs(luminance(run[0]) - luminance(run[1])) > 0.4


def test_keyboard_usable(page, cli):
    # Every control has a label.
    unlabeled = page.d.execute_script("""
        return [...document.querySelectorAll('input, select, textarea, button')]
          .filter(e => e.offsetParent !== null)
          .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
          .map(e => e.id || e.outerHTML.slice(0, 60));""")
    assert unlabeled == []
    # Tab walks the form in reading order, with a visible focus ring.
    page.d.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    order = []
    for _ in range(20):
        ActionChains(page.d).send_keys(Keys.TAB).perform()
        active = page.d.switch_to.active_element
        order.append(active.get_attribute("id") or active.tag_name)
        outline = page.d.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no focus style on {order[-1]}"
    main = ["model", "quant", "kv_dtype", "context", "batch", "gpu", "gpus", "engine", "fraction"]
    positions = [order.index(i) for i in main]
    assert positions == sorted(positions), order
    assert order.index("share") < order.index("model")
    # A select changes with the arrow keys, and the estimate follows.
    kv = page.el("#kv_dtype")
    page.d.execute_script("arguments[0].focus()", kv)
    kv.send_keys(Keys.ARROW_DOWN)
    page.settle()
    chosen = Select(kv).first_selected_option.get_attribute("value")
    assert chosen == "fp16"  # the option after the default, auto
    assert_figures(page, estimate(cli, kv_dtype=chosen))


def test_bad_input_is_shown_and_recovers(page, cli):
    page.type_into("context", 0, want="error")
    assert page.el("#status").text == "context: context must be at least 1 token"
    assert page.el("#context").get_attribute("aria-invalid") == "true"
    page.type_into("fraction", "1.5", want="error")
    page.type_into("context", 2048, want="error")
    assert page.el("#status").text.startswith("gpu_memory_utilization:")
    assert page.el("#fraction").get_attribute("aria-invalid") == "true"
    page.type_into("fraction", "0.95")
    assert not page.el("#status").is_displayed()
    assert_figures(page, estimate(cli, context=2048, gpu_memory_utilization=0.95))


def test_screenshot_for_the_readme(page, cli):
    query = "model=llama-3.1-70b-instruct&quant=fp8&gpu=h100&gpus=2&kv_dtype=fp8&context=32768&batch=8"
    page.open(query)
    est = estimate(cli, model="llama-3.1-70b-instruct", quant="fp8", gpu="h100", gpus=2, kv_dtype="fp8",
                   context=32768, batch=8)
    assert est["fits"]
    assert_figures(page, est)
    page.el("#plan-this-gpu").click()
    search_plans(page, page.el("#plan-run").click)
    first = plan(cli, model="llama-3.1-70b-instruct", gpu="h100", context=32768, concurrency=8, engine="generic")
    assert_plan_row(page, 0, first["plans"][0])
    ActionChains(page.d).move_to_element(page.el('dd[data-figure="max_concurrency"] button.info')).perform()
    # The whole page in one image: a viewport as tall as the document.
    height = page.d.execute_script("return document.documentElement.scrollHeight")
    page.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1280, "height": min(height, 3000), "deviceScaleFactor": 1, "mobile": False})
    try:
        path = os.path.join(SHOTS, "screenshot.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        assert page.d.save_screenshot(path)
        assert os.path.getsize(path) > 20_000
    finally:
        page.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_what_fits_panel_is_the_cli_answer(page, cli):
    """The "What fits" panel (issue 16): the GPU, context and sequences of the form, the panel's
    GPU count and engine; every row and every reason as `vramplan fit --no-local --json` gives them."""
    page.open("model=llama-3.1-8b-instruct&gpu=rtx-4090&context=8192&batch=2")
    gpus = page.el("#fit-gpus")
    gpus.clear()
    gpus.send_keys("2")
    Select(page.el("#fit-engine")).select_by_value("sglang")
    page.el("#fit-run").click()
    end = time.time() + 60
    while page.d.execute_script("return document.getElementById('fit').dataset.state || ''") != "done":
        assert time.time() < end, f"the fit panel did not answer: {page.el('#fit-error').text!r}"
        time.sleep(0.05)
    want = cli("fit", "--gpu", "rtx-4090", "--gpus", "2", "--context", "8192", "--concurrency", "2",
               "--engine", "sglang", "--no-local", "--json")
    runs = [m for m in want["models"] if m["fits"]]
    misses = [m for m in want["models"] if not m["fits"]]
    assert runs and misses
    rows = page.d.find_elements("css selector", "#fit-table tr.fit-row")
    assert [r.get_attribute("data-model") for r in rows] == [m["model"] for m in runs]
    first = [td.text for td in rows[0].find_elements("css selector", "td")]
    assert first[0] == runs[0]["model"]
    assert first[3:5] == [runs[0]["quant"], runs[0]["kv_dtype"]]
    assert first[6] == f"{runs[0]['max_context']:,}"
    assert first[7] == f"{runs[0]['max_concurrency']:,}"
    page.el("#fit-misses summary").click()
    reasons = page.d.find_elements("css selector", "#fit-miss-list li")
    assert len(reasons) == len(misses)
    assert reasons[0].text.endswith(misses[0]["reason"])
    assert "2 × NVIDIA GeForce RTX 4090" in page.el("#fit-summary").text
    assert not page.console_errors()
