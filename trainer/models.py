"""Finding, loading and describing base models: built-in, local folders and Hub ids, one code path.

Loading is where transformers v5 differs from older recipes: quantization goes through
``quantization_config=BitsAndBytesConfig(...)`` and precision through ``dtype=``.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraledger.schemas.errors import Conflict, InvalidInput, NotFound
from loraledger.schemas.jobs import BaseSource
from loraledger.trainer import gguf

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def resolve_base(
    model_id: str,
    *,
    cache_dir: Path,
    revision: str | None = None,
    allow_pickle: bool = False,
    progress: Any = None,
) -> BaseSource:
    """Turn ``builtin:NAME``, a local folder, a GGUF file (or a folder holding one) or a Hub id into a
    local folder we can load."""
    from loraledger.trainer import builtin

    if builtin.is_builtin(model_id):
        if model_id not in builtin.builtin_names():
            raise NotFound(
                f"unknown built-in model {model_id!r}: choose one of {', '.join(builtin.builtin_names())}"
            )
        path = builtin.ensure_builtin(model_id, cache_dir / "builtin", progress=progress)
        return BaseSource(model_id=model_id, path=path)
    local = Path(model_id).expanduser()
    gguf_file = gguf.find_file(local)
    if gguf_file is not None:
        return _resolve_gguf(gguf_file, cache_dir=cache_dir)
    if local.is_dir():
        _check_model_folder(local, allow_pickle=allow_pickle)
        return BaseSource(model_id=str(local.resolve()), path=local.resolve())
    if local.suffix or model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:
        raise NotFound(f"unknown base model {model_id!r}: no such folder")
    path, commit = _download(model_id, revision)
    _check_model_folder(path, allow_pickle=allow_pickle)
    return BaseSource(model_id=model_id, path=path, revision=commit)


def _resolve_gguf(file: Path, *, cache_dir: Path) -> BaseSource:
    """A GGUF file, named by its path, loaded from its dequantized copy (built on first use)."""
    digest = gguf.file_sha256(file)
    folder = gguf.dequantized_folder(file, digest, cache_dir)
    return BaseSource(
        model_id=str(file),
        path=folder,
        gguf_file=file,
        source_format=f"GGUF {gguf.source_of(folder)['quantization']}",
    )


def _download(repo_id: str, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        folder = Path(str(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS)))
    except RepositoryNotFoundError:
        raise NotFound(f"unknown base model {repo_id!r}: no such local folder or Hub repository") from None
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
        raise NotFound(
            f"unknown base model {repo_id!r}: not a built-in, not a local folder, and the Hub could not be "
            f"reached ({type(exc).__name__})"
        ) from None
    # The snapshot folder is named after the commit it holds.
    return folder, folder.name


def _check_model_folder(path: Path, *, allow_pickle: bool) -> None:
    if not (path / "config.json").is_file():
        raise InvalidInput(f"{path} is not a model folder: it has no config.json")
    safetensors = list(path.glob("*.safetensors"))
    pickled = [p for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not safetensors and pickled and not allow_pickle:
        raise InvalidInput(
            f"{path} holds only pickled weights ({pickled[0].name}); loading them can run arbitrary code. "
            "Convert them to safetensors, or pass --allow-pickle if you trust the source"
        )


def check_adapter_folder(path: Path, *, allow_pickle: bool) -> None:
    """Refuse an adapter folder (from disk or a registry checkout) whose weights are pickled: loading
    them can run arbitrary code. A folder with safetensors loads those, whatever else it holds."""
    if not (path / "adapter_config.json").is_file():
        raise InvalidInput(f"{path} is not a PEFT adapter folder: it has no adapter_config.json")
    if (path / "adapter_model.safetensors").is_file() or allow_pickle:
        return
    pickled = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise InvalidInput(
            f"{path} holds only pickled adapter weights ({pickled[0]}); loading them can run arbitrary "
            "code. Convert them to safetensors, or pass --allow-pickle if you trust the source"
        )
    raise InvalidInput(f"{path} holds no adapter weights (adapter_model.safetensors)")


def check_vocabulary(source: BaseSource, tokens: int) -> None:
    """Refuse a tokenizer with more tokens than the model has embeddings (a tokenizer of another model):
    its ids past the end would fail deep inside training, or index the wrong rows."""
    import json

    try:
        config = json.loads((source.path / "config.json").read_text())
    except (OSError, ValueError):
        return
    rows = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    if isinstance(rows, int) and tokens > rows:
        raise Conflict(
            f"{source.model_id}: its tokenizer has {tokens} tokens but the model has {rows} embeddings: "
            "the tokenizer belongs to another model"
        )


def pick_device() -> str:
    """This process's device: under a data-parallel launch each worker takes the GPU of its local rank
    (from the start, so that no worker first loads its copy of the base onto GPU 0)."""
    import torch

    return f"cuda:{_local_cuda_device()}" if torch.cuda.is_available() else "cpu"


def cpu_bf16() -> str | None:
    """The CPU feature that computes bf16 natively (``AVX512-BF16``, ``AMX-BF16``, Arm ``BF16``), or None.

    Read from the CPU's own flags, not inferred: without one of these, torch emulates bf16 matmuls, and
    on an AVX2 EPYC a 4096x576x576 matmul ran at 0.5 GFLOPS in bf16 against 20.7 in fp32 (40x slower).
    """
    flags = _cpu_flags()
    for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"), ("bf16", "Arm BF16")):
        if flag in flags:
            return name
    return None


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell here, so no bf16 (fp32 is always correct)
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            return set(value.split())
    return set()


def compute_dtype(precision: str, device: str) -> "torch.dtype":
    """The dtype matmuls run in. On CPU, bf16 means autocast over fp32 weights (``load_dtype``)."""
    import torch

    if precision == "auto":
        if device.startswith("cuda"):
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        else:
            precision = "bf16" if cpu_bf16() else "fp32"
    if device == "cpu" and precision == "fp16":
        raise InvalidInput("fp16 training needs a GPU; use --precision fp32 (or auto) on CPU")
    if device == "cpu" and precision == "bf16" and not cpu_bf16():
        raise InvalidInput(
            "bf16 on this CPU would be emulated (it has no AVX512-BF16, AMX or Arm BF16) and slower than "
            "fp32; use --precision fp32 (or auto)"
        )
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_dtype(compute: "torch.dtype", device: str) -> "torch.dtype":
    """The dtype the base's weights are loaded in. On CPU always fp32: bf16 there is autocast, which
    keeps the residual stream, norms, LoRA weights and optimizer state in fp32 and casts per matmul."""
    import torch

    return torch.float32 if device == "cpu" else compute


def describe_precision(compute: "torch.dtype", device: str) -> str:
    """The precision a run used, in words, for the run summary and the version record."""
    import torch

    if compute == torch.float32:
        if device == "cpu":
            return "fp32 (this CPU has no native bf16: no AVX512-BF16, AMX or Arm BF16)"
        return "fp32"
    name = str(compute).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16")
    if device == "cpu":
        return f"{name} autocast on CPU ({cpu_bf16()}), base, LoRA weights and optimizer state fp32"
    return f"{name} on {device}, LoRA weights and optimizer state fp32"


def load_tokenizer(
    source: BaseSource, *, trust_remote_code: bool = False
) -> tuple["PreTrainedTokenizerBase", str]:
    """The base's tokenizer with a pad token, its vocabulary untouched; returns (tokenizer, which token
    pads, in words, for the record).

    Padding never needs a new token: packed rows pad only at their ends, where labels are masked and
    causal attention keeps real tokens from seeing the pad. Adding one would resize the embeddings and
    tie every adapter to a modified base that serving engines (vLLM, LoRAX) do not have.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise InvalidInput(
            f"cannot load the tokenizer of {source.model_id}: {_load_error(exc, trust_remote_code)}"
        ) from None
    check_vocabulary(source, len(tokenizer))
    if tokenizer.pad_token is not None:
        return tokenizer, f"pad {tokenizer.pad_token!r} (the tokenizer's own)"
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        return tokenizer, f"pad = eos {tokenizer.eos_token!r}"
    stand_in = tokenizer.unk_token or tokenizer.convert_ids_to_tokens(0)
    tokenizer.pad_token = stand_in
    return tokenizer, (
        f"pad = existing token {stand_in!r} (id {tokenizer.pad_token_id}): the tokenizer has no pad or eos "
        "token; vocabulary unchanged"
    )


def load_model(
    source: BaseSource,
    *,
    quantize: str = "none",
    dtype: "torch.dtype | None" = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> "PreTrainedModel":
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = device or pick_device()
    dtype = dtype or torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if quantize == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    elif quantize == "8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    elif quantize != "none":
        raise InvalidInput(f"unknown quantization {quantize!r}: use 4bit, 8bit or none")
    if quantize != "none":
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(source.path, **kwargs)
    except ValueError as exc:
        raise InvalidInput(
            f"cannot load {source.model_id} as a causal LM: {_load_error(exc, trust_remote_code)}"
        ) from None
    if quantize == "none":
        model.to(device)
    # The KV cache would also disable the packed-sequence masks that keep documents apart.
    model.config.use_cache = False
    return model


def _load_error(exc: ValueError, trust_remote_code: bool) -> str:
    """transformers' reason in one line, with the flag to pass when the folder ships its own code."""
    reason = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    if not trust_remote_code and "custom code" in reason:
        reason += " Pass --trust-remote-code only if you trust that code: it runs on this machine."
    return reason


def _local_cuda_device() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def default_target_modules(model: "PreTrainedModel") -> list[str]:
    """The usual LoRA targets for this architecture (peft's own table), else attention projections found."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as KNOWN

    model_type = getattr(model.config, "model_type", "")
    if model_type in KNOWN:
        return list(KNOWN[model_type])
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for candidates in (["q_proj", "v_proj"], ["query", "value"], ["c_attn"], ["qkv_proj"], ["Wqkv"]):
        if set(candidates) <= names:
            return candidates
    raise Conflict(
        f"cannot tell which modules to adapt in a {model_type!r} model: "
        "pass --target-modules (e.g. q_proj,v_proj)"
    )


def vocabulary_size(model: "PreTrainedModel") -> int:
    return int(model.get_input_embeddings().weight.shape[0])
