"""Split the raw sweep output into the committed calibration files (no figure changes):
models.jsonl (one line per model file: metadata, every tensor with type and shape, the model
load log) and cpu_runs.jsonl (one line per context, naming its model). Keeps the data a few MB.

Usage: python pack.py RAW_RUNS.jsonl RAW_QUANTIZE.jsonl OUTDIR
"""

import json
import os
import sys

import sweep

DEBUG_ONLY = ("llama_graph_n_input_tensors:", "set_abort_callback:")


def main():
    raw, rawq, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    models, runs = {}, []
    for line in open(raw):
        r = json.loads(line)
        name = r["model_name"]
        models[name] = {k: r[k] for k in ("llama_cpp_version", "model_name", "arch", "file", "file_size_bytes",
                                          "note", "hparams", "tensor_type_mix", "tensors")}
        models[name]["model_load"] = r["verbatim"]["model_load"]
        models[name]["model_buffers_MiB"] = r["observed"]["model_buffers_MiB"]
        run = {k: v for k, v in r.items() if k not in ("tensors", "note", "file", "tensor_type_mix")}
        # llama.cpp's debug-level lines listing every graph input's consumers (thousands per
        # context) are left out; every other line is kept verbatim.
        run["verbatim"] = {"context": [ln for ln in r["verbatim"]["context"] if not ln.startswith(DEBUG_ONLY)]}
        # Figures parsed again from the verbatim lines with the current parser.
        run["observed"] = {**r["observed"], **sweep.parse_context(r["verbatim"]["context"])}
        runs.append(run)
    # A model regenerated after a failed run keeps only the runs of its last file.
    last = {}
    for i, r in enumerate(runs):
        last.setdefault(r["model_name"], []).append(i)
    keep = []
    for name, idx in last.items():
        keep += [runs[i] for i in idx[-24:] if runs[i]["hparams"] == models[name]["hparams"]]
    with open(os.path.join(outdir, "models.jsonl"), "w") as f:
        for m in models.values():
            f.write(json.dumps(m) + "\n")
    with open(os.path.join(outdir, "cpu_runs.jsonl"), "w") as f:
        for r in keep:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(outdir, "quantize.jsonl"), "w") as f:
        for line in open(rawq):
            f.write(line)
    print(len(models), "models,", len(keep), "runs")


if __name__ == "__main__":
    main()
