"""Small but structurally faithful model descriptions for every architecture family the
llama.cpp ground-truth harness covers: the GGUF metadata a converter writes for each
(general.architecture, hyperparameters, layer patterns, GQA ratios, windows, experts,
recurrent states). The tensors themselves are not listed here: make_models.py asks the pinned
llama.cpp which tensors its loader creates for this metadata (llama_model_init_from_user),
then keeps the ones a real converted file has (DROP patterns below) and writes them with
gguf-py.

Hidden sizes are small (512-1024) and vocabularies 8192, so files stay a few MB to tens of MB
and runs take seconds; layer patterns, head ratios, windows, expert counts and state sizes
follow the real models named in each comment.

Keys: src/llama-arch.cpp (LLM_KV names) and src/models/<arch>.cpp load_arch_hparams at
ggml-org/llama.cpp@0c1e57098.
"""

VOCAB = 8192


def base(arch, n_layer, n_embd, n_head, n_head_kv, n_ff, ctx=32768, head_dim=None, rms=True):
    kv = {
        "context_length": ctx,
        "embedding_length": n_embd,
        "block_count": n_layer,
        "feed_forward_length": n_ff,
        "attention.head_count": n_head,
        "attention.head_count_kv": n_head_kv,
        "rope.freq_base": 10000.0,
        ("attention.layer_norm_rms_epsilon" if rms else "attention.layer_norm_epsilon"): 1e-5,
    }
    if head_dim is not None:
        kv["attention.key_length"] = head_dim
        kv["attention.value_length"] = head_dim
        kv["rope.dimension_count"] = head_dim
    return {"arch": arch, "kv": kv}


def spec(name, arch, kv_extra=None, drop=(), tied=False, expert_type=None, note="", fuse_qkv=False, **b):
    s = base(arch, **b)
    s["kv"].update(kv_extra or {})
    s["name"] = name
    # Regexes of tensors llama.cpp accepts but a converted file of this family does not have
    # (optional biases, an untied head for tied models, ...).
    # Per-tensor quantization scales (.scale, .input_scale) exist only in files converted from
    # FP8/NVFP4 checkpoints.
    s["drop"] = list(drop) + [r"\.(input_)?scale$"] + ([r"^output\.weight$"] if tied else [])
    s["tied"] = tied
    s["expert_type"] = expert_type
    # The loader, building a model from metadata alone, creates q, k and v apart; a converted
    # Phi-3 file holds them fused (attn_qkv), which the loader takes when present.
    s["fuse_qkv"] = fuse_qkv
    s["note"] = note
    return s


BIASES = r"\.bias$"
# Recurrent layers keep their convolution and time-step biases (Mamba conv1d.bias, dt_bias).
NON_SSM_BIASES = r"^(?!.*ssm_(conv1d|dt)\.bias$).*\.bias$"

ARCHS = [
    # Dense
    spec("llama", "llama", n_layer=4, n_embd=1024, n_head=16, n_head_kv=4, n_ff=2816,
         drop=[BIASES, r"rope_freqs"], note="Llama 3: GQA 4:1, head 64, untied"),
    spec("mistral_llama", "llama", n_layer=4, n_embd=1024, n_head=8, n_head_kv=2, n_ff=2816,
         head_dim=128, kv_extra={"attention.sliding_window": 512}, drop=[BIASES, r"rope_freqs"],
         note="Mistral 7B v0.1 as converted (llama arch, sliding_window key ignored by llama)"),
    spec("mistral3", "mistral3", n_layer=4, n_embd=1024, n_head=8, n_head_kv=2, n_ff=2816,
         head_dim=128, drop=[BIASES, r"rope_freqs"], note="Mistral Small 3 / Ministral text model"),
    spec("qwen2", "qwen2", n_layer=4, n_embd=1024, n_head=16, n_head_kv=2, n_ff=2816,
         drop=[r"attn_output\.bias", r"ffn_.*\.bias", r"^output\.bias"],
         note="Qwen2.5: q/k/v biases, GQA 8:1"),
    spec("qwen3", "qwen3", n_layer=4, n_embd=1024, n_head=16, n_head_kv=8, n_ff=3072,
         head_dim=128, tied=True, drop=[BIASES], note="Qwen3: QK-norm, head 128 > n_embd/n_head, tied"),
    spec("phi3", "phi3", n_layer=4, n_embd=1024, n_head=16, n_head_kv=16, n_ff=2816,
         kv_extra={"attention.sliding_window": 2047, "rope.dimension_count": 64},
         drop=[BIASES, r"rope_factors", r"ffn_gate"], fuse_qkv=True,
         note="Phi-3-mini: fused qkv and gate_up, MHA, sliding_window key disabled by the loader"),
    spec("gemma2", "gemma2", n_layer=4, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816,
         head_dim=256, tied=True, kv_extra={"attention.sliding_window": 1024,
         "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
         drop=[BIASES], note="Gemma 2: alternate SWA 1:1, head 256, tied"),
    spec("gemma2_nowindowkey", "gemma2", n_layer=4, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816,
         head_dim=256, tied=True, drop=[BIASES],
         note="Gemma 2 without attention.sliding_window: the loader's default n_swa = 4096 applies"),
    spec("gemma3", "gemma3", n_layer=12, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816,
         head_dim=256, tied=True, kv_extra={"attention.sliding_window": 512},
         drop=[BIASES], note="Gemma 3: 5 local : 1 global, QK-norm, tied"),
    spec("falcon", "falcon", n_layer=4, n_embd=1024, n_head=16, n_head_kv=1, n_ff=4096, rms=False,
         drop=[r"attn_qkv\.bias", r"attn_output\.bias", r"ffn_.*\.bias", r"attn_norm_2", r"^output\.bias"],
         note="Falcon-7B: MQA, fused qkv, parallel attention/MLP, LayerNorm, GELU MLP"),
    spec("starcoder2", "starcoder2", n_layer=4, n_embd=1024, n_head=16, n_head_kv=4, n_ff=4096,
         rms=False, tied=True, kv_extra={"attention.sliding_window": 4096},
         note="StarCoder2: GQA, biases everywhere, LayerNorm, GELU MLP, tied"),
    # MoE
    spec("qwen3moe", "qwen3moe", n_layer=4, n_embd=1024, n_head=16, n_head_kv=4, n_ff=3072,
         head_dim=128, kv_extra={"expert_count": 16, "expert_used_count": 4,
         "expert_feed_forward_length": 512}, drop=[BIASES],
         note="Qwen3-30B-A3B shape: QK-norm, 128 experts -> 16, 8 used -> 4"),
    spec("mixtral", "llama", n_layer=4, n_embd=1024, n_head=16, n_head_kv=4, n_ff=2816,
         kv_extra={"expert_count": 8, "expert_used_count": 2}, drop=[BIASES, r"rope_freqs"],
         note="Mixtral 8x7B: llama arch with 8 experts, 2 used (the quantizer's n_expert == 8 rules)"),
    spec("gptoss", "gpt-oss", n_layer=4, n_embd=1024, n_head=16, n_head_kv=2, n_ff=1024,
         head_dim=64, kv_extra={"expert_count": 16, "expert_used_count": 4,
         "expert_feed_forward_length": 1024, "attention.sliding_window": 128},
         expert_type="MXFP4", note="gpt-oss-20b shape: alternate SWA 128, sinks, biases, MXFP4 experts"),
    # MLA
    spec("deepseek2", "deepseek2", n_layer=4, n_embd=1024, n_head=8, n_head_kv=1, n_ff=2816,
         kv_extra={"attention.key_length": 576, "attention.value_length": 512,
                   "attention.key_length_mla": 192, "attention.value_length_mla": 128,
                   "rope.dimension_count": 64, "attention.q_lora_rank": 512,
                   "attention.kv_lora_rank": 512, "leading_dense_block_count": 1,
                   "expert_count": 16, "expert_used_count": 4, "expert_shared_count": 1,
                   "expert_feed_forward_length": 512, "expert_weights_scale": 2.5,
                   "expert_weights_norm": True, "expert_gating_func": 2},
         drop=[BIASES, r"attn_kv_b", r"exp_probs_b"],
         note="DeepSeek-V3 shape: MLA (kv_lora 512, rope 64, split k_b/v_b), 1 dense lead layer, shared expert"),
    spec("llama4", "llama4", n_layer=4, n_embd=1024, n_head=16, n_head_kv=4, n_ff=2816,
         head_dim=64, kv_extra={"expert_count": 16, "expert_used_count": 1,
         "expert_feed_forward_length": 1024, "interleave_moe_layer_step": 1},
         drop=[BIASES, r"rope_freqs"],
         note="Llama 4 Scout shape: chunked attention 3:1, one routed + shared expert per layer"),
    spec("gemma3n", "gemma3n", n_layer=22, n_embd=256, n_head=4, n_head_kv=2, n_ff=1024,
         head_dim=64, tied=True, kv_extra={"attention.sliding_window": 512,
         "embedding_length_per_layer_input": 64, "altup.active_idx": 0, "altup.num_inputs": 4,
         "attention.shared_kv_layers": 2},
         drop=[BIASES], note="Gemma 3n E2B pattern: 4 local : 1 global, KV shared from layer 20, AltUp, Laurel, per-layer embeddings"),
    # Hybrids and recurrent
    spec("qwen3next", "qwen3next", n_layer=4, n_embd=1024, n_head=8, n_head_kv=2, n_ff=512,
         head_dim=128, kv_extra={"expert_count": 16, "expert_used_count": 4,
         "expert_feed_forward_length": 512, "expert_shared_feed_forward_length": 512,
         "ssm.conv_kernel": 4, "ssm.inner_size": 1024, "ssm.state_size": 128,
         "ssm.time_step_rank": 8, "ssm.group_count": 4, "full_attention_interval": 4},
         drop=[NON_SSM_BIASES], note="Qwen3-Next: 3 gated-delta-net : 1 gated attention, MoE with shared expert"),
    spec("granitehybrid", "granitehybrid", n_layer=4, n_embd=1024, n_head=8, n_head_kv=[0, 0, 2, 0],
         n_ff=1024, kv_extra={"ssm.conv_kernel": 4, "ssm.inner_size": 2048, "ssm.state_size": 128,
         "ssm.time_step_rank": 32, "ssm.group_count": 1, "rope.dimension_count": 128},
         drop=[NON_SSM_BIASES], tied=True, note="Granite 4.0-H: Mamba2 layers with one attention layer in four"),
    spec("nemotron_h", "nemotron_h", n_layer=6, n_embd=1024, n_head=8, n_head_kv=[0, 0, 2, 0, 0, 0],
         n_ff=[0, 2048, 0, 0, 2048, 0], rms=True, kv_extra={"ssm.conv_kernel": 4, "ssm.inner_size": 2048,
         "ssm.state_size": 128, "ssm.time_step_rank": 32, "ssm.group_count": 8,
         "attention.layer_norm_epsilon": 1e-5, "attention.key_length": 128, "attention.value_length": 128},
         drop=[NON_SSM_BIASES], note="Nemotron-H: M, MLP, attention and Mamba2 blocks as separate layers"),
    spec("jamba", "jamba", n_layer=8, n_embd=1024, n_head=8, n_head_kv=[0, 0, 0, 0, 2, 0, 0, 0],
         n_ff=1024, kv_extra={"ssm.conv_kernel": 4, "ssm.inner_size": 2048, "ssm.state_size": 16,
         "ssm.time_step_rank": 64, "expert_count": 4, "expert_used_count": 2},
         drop=[NON_SSM_BIASES], note="Jamba: Mamba layers with attention 1 in 8 (offset 4); experts every other layer via per-layer tensors"),
    spec("mamba2", "mamba2", n_layer=4, n_embd=1024, n_head=0, n_head_kv=0, n_ff=0,
         kv_extra={"ssm.conv_kernel": 4, "ssm.inner_size": 2048, "ssm.state_size": 128,
         "ssm.time_step_rank": 32, "ssm.group_count": 1}, tied=True, drop=[NON_SSM_BIASES],
         note="Mamba2-2.7B shape: SSD state 128, groups 1"),
    spec("lfm2", "lfm2", n_layer=6, n_embd=1024, n_head=16, n_head_kv=[0, 0, 4, 0, 0, 4], n_ff=4608,
         kv_extra={"shortconv.l_cache": 3}, tied=True, drop=[NON_SSM_BIASES],
         note="LFM2: short-convolution layers with attention layers interleaved"),
]

BY_NAME = {s["name"]: s for s in ARCHS}
