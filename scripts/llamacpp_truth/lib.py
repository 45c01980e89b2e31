"""ctypes access to the pinned llama.cpp (through llama-cpp-python 0.3.36's bundled
libllama / libggml-base) and a log capture: every line llama.cpp logs while a model loads or
a context is created, kept verbatim."""

import ctypes
import os
import re

import llama_cpp
from llama_cpp import llama_cpp as C

LLAMA_CPP_PYTHON = "0.3.36"
LLAMA_CPP_COMMIT = "0c1e57098bba43ac29e6e3b677cdceebdd22334f"
VERSION = f"llama-cpp-python {LLAMA_CPP_PYTHON} / llama.cpp ggml-org@{LLAMA_CPP_COMMIT[:9]}"

_lines = []
_partial = [""]


@C.llama_log_callback
def _log(level, text, user_data):
    s = _partial[0] + text.decode("utf-8", "replace")
    *done, rest = s.split("\n")
    _partial[0] = rest
    _lines.extend(done)


def init():
    assert llama_cpp.__version__ == LLAMA_CPP_PYTHON, llama_cpp.__version__
    C.llama_log_set(_log, None)
    C.llama_backend_init()


def take_log():
    """Lines logged since the last call (a trailing partial line included)."""
    out = list(_lines)
    if _partial[0]:
        out.append(_partial[0])
        _partial[0] = ""
    _lines.clear()
    return out


def lib_dir():
    return os.path.join(os.path.dirname(llama_cpp.__file__), "lib")


_ggml_base = None


def ggml_base():
    global _ggml_base
    if _ggml_base is None:
        _ggml_base = ctypes.CDLL(os.path.join(lib_dir(), "libggml-base.so"))
        _ggml_base.gguf_init_from_file.restype = ctypes.c_void_p
        _ggml_base.gguf_init_from_file.argtypes = [ctypes.c_char_p, GgufInitParams]
        _ggml_base.gguf_free.argtypes = [ctypes.c_void_p]
    return _ggml_base


class GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


SET_TENSOR_DATA = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


@SET_TENSOR_DATA
def _no_data(tensor, ud):
    # The virtual model is only saved to learn its tensor list; the data is written later.
    pass


def virtual_model_tensors(meta_path, out_path):
    """Let llama.cpp's loader create every tensor it expects for the metadata in meta_path
    (llama_model_init_from_user: required and optional tensors alike), and save the model
    (llama_model_save_to_file). Returns the log."""
    lib = C._lib
    lib.llama_model_init_from_user.restype = ctypes.c_void_p
    lib.llama_model_init_from_user.argtypes = [ctypes.c_void_p, SET_TENSOR_DATA, ctypes.c_void_p, C.llama_model_params]
    lib.llama_model_save_to_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.llama_model_free.argtypes = [ctypes.c_void_p]
    g = ggml_base()
    ctx = g.gguf_init_from_file(meta_path.encode(), GgufInitParams(True, None))
    if not ctx:
        raise RuntimeError(f"gguf_init_from_file({meta_path}) failed")
    params = C.llama_model_default_params()
    params.n_gpu_layers = 0
    model = lib.llama_model_init_from_user(ctx, _no_data, None, params)
    if not model:
        g.gguf_free(ctx)
        raise RuntimeError("llama_model_init_from_user failed:\n" + "\n".join(take_log()[-15:]))
    lib.llama_model_save_to_file(model, out_path.encode())
    lib.llama_model_free(model)
    g.gguf_free(ctx)
    return take_log()


MIB_LINE = re.compile(r"^(\w+):\s+(\S+) (model|KV|RS|compute|output) buffer size =\s+([0-9.]+) MiB")
