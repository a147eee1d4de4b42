"""Plain records the registry hands out and takes in.

Rows never leave the store's session; these objects do. They carry no database handles, so the CLI
can render them, dump them as JSON, or compare them without a connection.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

VersionKind = Literal["train", "stack", "merge", "import"]
DatasetRole = Literal["train", "eval", "replay"]
SuiteRole = Literal["update", "retention"]
# The setting of scores recorded before settings were (schema 0001): unknown, so never compared with
# scores of a known setting; whatever needs them scores again.
UNRECORDED = "unrecorded"
SETTING_HELP = (
    "How the model was loaded for scoring (weights format / compute dtype, window / stride, e.g. "
    "'nf4/bf16 w512/s256'): scores are compared only within one setting."
)


class Record(BaseModel):
    # defer_build: a model's validator is built when it is first used, not at import; a listing uses
    # two of these models, and building them all cost `adapters list` a fifth of its start-up.
    model_config = ConfigDict(frozen=True, defer_build=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (datetimes as ISO text): what ``--json`` prints is built from these."""
        return self.model_dump(mode="json")


class _Incoming(BaseModel):
    """What the registry receives (built on first use too: only writes need these)."""

    model_config = ConfigDict(defer_build=True)


class BaseModelRecord(Record):
    """A base model, identified by what it is (digests), not only by where it came from."""

    model_id: str = Field(description="Canonical id: a Hub repo id, 'builtin:NAME' or a local path.")
    revision: str | None = Field(None, description="Hub commit the weights came from, when from the Hub.")
    config_digest: str = Field(description="sha256 of the canonical model config.")
    weights_digest: str | None = Field(
        None,
        description="sha256 manifest digest of the weight and vocabulary files; for a GGUF base, the "
        "sha256 of the .gguf file (weights and vocabulary in one).",
    )
    source_format: str | None = Field(
        None,
        description="How the weights were stored: 'GGUF Q4_1' (the format and its quantization) for a "
        "GGUF file, which is dequantized to fp32 to train on; None for a transformers model folder.",
    )

    @property
    def fingerprint(self) -> str:
        return f"{self.config_digest}/{self.weights_digest or self.revision or '?'}"

    def same_model(self, other: "BaseModelRecord") -> bool:
        if self.config_digest != other.config_digest:
            return False
        if self.weights_digest and other.weights_digest:
            return self.weights_digest == other.weights_digest
        if self.revision and other.revision:
            return self.revision == other.revision
        return self.model_id == other.model_id


class DatasetRecord(Record):
    digest: str = Field(description="sha256 over the canonical records, tagged 'sha256:'.")
    format: str
    rows: int
    tokens: int | None = None
    source: str | None = Field(None, description="Path or URI the dataset was first read from.")
    blob: str | None = Field(None, description="Artifact-store digest of the stored canonical copy.")
    created_at: datetime

    def as_new(self) -> "NewDataset":
        """The same dataset as the registry takes it in (to link it to another version)."""
        return NewDataset(
            digest=self.digest,
            format=self.format,
            rows=self.rows,
            tokens=self.tokens,
            source=self.source,
            blob=self.blob,
        )


class DatasetUse(Record):
    """One dataset seen by one version, in one role."""

    ref: str
    dataset: DatasetRecord
    role: DatasetRole
    rows: int
    tokens: int | None = None
    label: str | None = None


class EvalResult(Record):
    ref: str | None = Field(None, description="Version scored, or None for the base model.")
    dataset_digest: str
    label: str | None = None
    metric: str
    value: float
    setting: str = Field(description=SETTING_HELP)
    created_at: datetime


class VersionInput(Record):
    ref: str
    weight: float


class Publication(Record):
    """Something done with a version outside the registry: a push, a merge, an export."""

    kind: Literal["push", "merge", "export"]
    target: str
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    created_by: str


class VersionRecord(Record):
    name: str
    number: int
    kind: VersionKind
    parent: str | None = Field(None, description="Ref of the version this one continued from.")
    base: BaseModelRecord
    lora: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    train_tokens: int | None = None
    final_loss: float | None = None
    artifact_digest: str
    created_at: datetime
    created_by: str
    host: str
    note: str | None = None
    aliases: list[str] = Field(default_factory=list)
    datasets: list[DatasetUse] = Field(default_factory=list)
    evals: list[EvalResult] = Field(default_factory=list)
    inputs: list[VersionInput] = Field(default_factory=list)
    publications: list[Publication] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    @property
    def is_current(self) -> bool:
        return "current" in self.aliases

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus ``ref``, ``current`` and ``train_digest`` (what ``adapters show --json``
        prints)."""
        data = super().to_dict()
        data.update(ref=self.ref, current=self.is_current, train_digest=self.train_digest)
        return data

    @property
    def train_digest(self) -> str | None:
        """Digest of the (first) training dataset, the one the listing shows."""
        for use in self.datasets:
            if use.role == "train":
                return use.dataset.digest
        return None

    def summary(self) -> "VersionSummary":
        return VersionSummary(
            name=self.name,
            number=self.number,
            kind=self.kind,
            parent=self.parent,
            inputs=self.inputs,
            base_model_id=self.base.model_id,
            train_digest=self.train_digest,
            train_tokens=self.train_tokens,
            final_loss=self.final_loss,
            created_at=self.created_at,
            aliases=self.aliases,
        )


class VersionSummary(Record):
    """A version as a listing shows it: what it is, where it came from, its data and headline numbers.
    Far cheaper to load than a VersionRecord (no settings, dataset links or scores), which is what
    keeps `adapters list` fast on registries of thousands of versions."""

    name: str
    number: int
    kind: VersionKind
    parent: str | None = None
    inputs: list[VersionInput] = Field(default_factory=list, description="Stack or merge inputs, in order.")
    base_model_id: str
    train_digest: str | None = Field(None, description="Digest of the (first) training dataset.")
    train_tokens: int | None = None
    final_loss: float | None = None
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    @property
    def is_current(self) -> bool:
        return "current" in self.aliases

    def to_dict(self) -> dict[str, Any]:
        """Every field, plus ``ref`` and ``current``."""
        data = super().to_dict()
        data.update(ref=self.ref, current=self.is_current)
        return data


class AliasEvent(Record):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str | None
    created_by: str
    created_at: datetime


class SuiteEntry(Record):
    """One eval set in an adapter's suite."""

    name: str
    label: str
    role: SuiteRole
    dataset: DatasetRecord
    added_by_version: int | None = None


class AdapterRecord(Record):
    name: str
    created_at: datetime
    max_regression: float
    versions: int
    current: int | None


class NewDataset(_Incoming):
    """A dataset as the registry receives it: digest and counts, plus the blob holding its copy."""

    digest: str
    format: str
    rows: int
    tokens: int | None = None
    source: str | None = None
    blob: str | None = None


class NewDatasetUse(_Incoming):
    dataset: NewDataset
    role: DatasetRole
    rows: int
    tokens: int | None = None
    label: str | None = None


class NewEval(_Incoming):
    dataset: NewDataset
    metric: str
    value: float
    setting: str = Field(description=SETTING_HELP)
    label: str | None = None


class NewVersion(_Incoming):
    """Everything needed to register a version; numbering and timestamps are the registry's."""

    name: str
    kind: VersionKind
    parent: str | None = None
    base: BaseModelRecord
    lora: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    libraries: dict[str, str] = Field(default_factory=dict)
    train_tokens: int | None = None
    final_loss: float | None = None
    artifact_digest: str
    note: str | None = None
    datasets: list[NewDatasetUse] = Field(default_factory=list)
    evals: list[NewEval] = Field(default_factory=list)
    inputs: list[tuple[str, float]] = Field(default_factory=list)
