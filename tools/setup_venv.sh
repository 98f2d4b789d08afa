#!/usr/bin/env bash
# Create tools/.venv (git-ignored) and install the pinned packages of tools/requirements.txt.
#
#   bash tools/setup_venv.sh            # from anywhere; idempotent
#   PYTHON=python3.11 bash tools/setup_venv.sh
#   FORCE=1 bash tools/setup_venv.sh    # reinstall even if the venv looks up to date
#
# Then run the tools with tools/.venv/bin/python tools/<script>.py.
#
# Idempotent: after a successful install the sha256 of requirements.txt is written to
# tools/.venv/.requirements.sha256; a later run with the same requirements.txt and a venv
# whose `import torch, numpy, safetensors, tiktoken, tokenizers, sentencepiece` works does
# nothing.  Changing requirements.txt (or FORCE=1) re-runs pip, which only touches what
# changed.
#
# Why torch comes with its nvidia-* wheels although we only use the CPU (the venv is ~5.5 GB:
# nvidia/ 3.0 GB, torch 1.2 GB, triton 1.0 GB; first install ~2.5 min here):
# PyPI has only one torch wheel for Linux x86_64, the CUDA build; the CPU-only build lives on
# PyTorch's own package index, which these machines cannot reach.  Installing that wheel with
# `pip install --no-deps torch` plus its pure-Python dependencies (filelock, typing-extensions,
# sympy, networkx, jinja2, fsspec, mpmath, MarkupSafe) was tried and does NOT work:
# libtorch_global_deps.so and libtorch_cpu.so are linked (DT_NEEDED) against libcudart.so.13 and
# libcupti.so.13, and libtorch_cuda.so -- which libtorch.so/libtorch_python.so always load --
# against cublas, cublasLt, cudnn, cufft, cufile, cusparse, cusparseLt, nccl, nvrtc and
# nvshmem, so `import torch` fails with "libcublasLt.so.*[0-9] not found in the system path".
# Those libraries are only loaded, never used (no GPU here); no driver (libcuda.so) is
# needed.  So we let pip resolve torch's declared dependencies as usual: the simplest install
# that is known to work, and the same one anyone gets with `pip install torch`.  (Leaving out
# just triton, which is only for GPU torch.compile, would save 1 GB but means hand-maintaining
# torch's dependency list; not worth it.)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

want="$(sha256sum "$req" | cut -d' ' -f1)"
check='import torch, numpy, safetensors, tiktoken, tokenizers, sentencepiece
x = torch.randn(64, 64, requires_grad=True)
(x @ x).sum().backward()
assert x.grad is not None and x.grad.shape == (64, 64)
print("torch", torch.__version__, "| numpy", numpy.__version__, "| safetensors", safetensors.__version__,
      "| tiktoken", tiktoken.__version__, "| tokenizers", tokenizers.__version__,
      "| sentencepiece", sentencepiece.__version__, "| threads", torch.get_num_threads())'

if [[ "${FORCE:-0}" != 1 && -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
    && "$venv/bin/python" -c "$check" 2>/dev/null; then
    echo "tools/.venv is up to date (requirements.txt unchanged); nothing to do."
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -c 'import sys; assert sys.version_info >= (3, 11), "need Python >= 3.11 (torch 2.15)"'
    echo "creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi

rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$req"
"$venv/bin/python" -c "$check"
echo "$want" > "$stamp"
echo "tools/.venv ready: run tools with $venv/bin/python"
