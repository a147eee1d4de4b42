"""``Ledger``: the library's one object. A notebook, a pipeline, the CLI, the server and the dashboard
all call these methods; each is one workflow (train then register, score then gate, merge, ...) or
one read of the registry, and returns plain schema objects (``.to_dict()`` on each), never rows.

Methods that need a model import torch when called, not before.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loraledger.settings import Settings

if TYPE_CHECKING:
    from loraledger.combining import ImportResult, StackResult
    from loraledger.evaluation import EvalReport
    from loraledger.loading import LoadedVersion
    from loraledger.publishing import ExportResult, MergeResult, PushResult
    from loraledger.registry import GarbageReport, LineageNode, Registry
    from loraledger.registry.forgetting import ScoreMatrix
    from loraledger.registry.integrity import VerifyReport
    from loraledger.schemas.records import (
        AdapterRecord,
        AliasEvent,
        BaseModelRecord,
        DatasetUse,
        EvalResult,
        SuiteEntry,
        VersionRecord,
        VersionSummary,
    )
    from loraledger.schemas.specs import Recipe
    from loraledger.training import Hooks, TrainResult
    from loraledger.views import Forgetting, SchemaStatus, Suite, VersionDiff

PathLike = str | Path
Stage = Callable[[str], None]


def _paths(value: PathLike | Sequence[PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(item) for item in value]


class Ledger:
    """A registry of LoRA adapters, their versions, data, scores and aliases; open one with
    ``loraledger.open()``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._registry: Registry | None = None

    def __repr__(self) -> str:
        return f"Ledger(db={self.settings.db_url!r}, store={self.settings.store_url!r})"

    @property
    def registry(self) -> "Registry":
        """The registry underneath (opened on first use): for what the methods here do not cover."""
        if self._registry is None:
            self._registry = self.settings.open_registry()
        return self._registry

    # ---- reading ------------------------------------------------------------------------------

    def adapters(self) -> list["AdapterRecord"]:
        """Every adapter name with its number of versions and current version."""
        return self.registry.adapters()

    def versions(self, name: str | None = None) -> list["VersionRecord"]:
        """Every version (of ``name``, or of all adapters), oldest first, with datasets and scores."""
        return self.registry.versions(name)

    def summaries(self, name: str | None = None) -> list["VersionSummary"]:
        """The same versions in brief (what ``adapters list`` prints): fast on large registries."""
        return self.registry.summaries(name)

    def version(self, ref: str) -> "VersionRecord":
        """One version by ref: ``NAME`` (its current), ``NAME@N``, ``NAME@ALIAS``, ``NAME@latest``."""
        return self.registry.resolve(ref)

    def lineage(self, name: str) -> list["LineageNode"]:
        """NAME's versions as a forest: each node's children continued from it, inputs fed a stack."""
        return self.registry.lineage(name)

    def history(self, name: str) -> list["AliasEvent"]:
        """Every alias move of NAME (promotions, rollbacks, tags): who, when, why."""
        return self.registry.history(name)

    def scores(self, name: str) -> list["EvalResult"]:
        """Every score recorded for NAME's versions (each with its dataset digest and setting)."""
        return self.registry.eval_results(name)

    def score_matrix(self, name: str, *, setting: str | None = None) -> "ScoreMatrix":
        """Versions x eval sets in one scoring setting, with changes against parent and base, backward
        transfer and forgetting (default: the setting of the most recent score)."""
        return self.registry.score_matrix(name, setting=setting)

    def threshold(self, name: str) -> float:
        """NAME's forgetting gate: the largest relative NLL rise on a gated set before a new version is
        held back (what ``adapters suite threshold`` sets)."""
        return self.registry.max_regression(name)

    def forgetting(self, name: str, *, setting: str | None = None) -> "Forgetting":
        """What ``adapters evals`` shows: the score matrix, the gate's threshold and which versions
        were ever current. A ``setting`` none of NAME's scores was made in is refused (NotFound)."""
        from loraledger.errors import NotFound
        from loraledger.views import Forgetting

        matrix = self.registry.score_matrix(name, setting=setting)
        if setting is not None and setting not in matrix.settings:
            known = ", ".join(repr(s) for s in matrix.settings) or "none: nothing is scored yet"
            raise NotFound(f"{name} has no scores in the setting {setting!r}; its settings: {known}")
        ever_current = {
            event.to_version
            for event in self.registry.history(name)
            if event.alias == "current" and event.to_version
        }
        return Forgetting(name, matrix, self.registry.max_regression(name), ever_current)

    def suite(self, name: str) -> "Suite":
        """NAME's eval suite (iterate it: the held-out sets every new version is scored on), the gate's
        threshold, and the scoring setting of NAME's latest scores."""
        from loraledger.registry.forgetting import newest_setting
        from loraledger.views import Suite

        return Suite(
            name,
            self.registry.suite(name),
            self.registry.max_regression(name),
            newest_setting(self.registry.eval_results(name)),
        )

    def retention(self, ref: str) -> dict[str, Any] | None:
        """The retention search recorded on ``ref`` (chosen or raw update): budget, remedy, alpha or
        replay share, cost, and every candidate with its scores; None for a version without one."""
        trace = self.registry.resolve(ref).training.get("retention")
        return trace if isinstance(trace, dict) else None

    def retention_searches(self, name: str) -> dict[str, dict[str, Any]]:
        """NAME's retention searches, ref -> trace: each chosen version's (naming its raw update), or the
        raw update's own when nothing met the budget (what ``adapters evals`` lists)."""
        from loraledger.retention_report import searches

        return searches(self.registry.versions(name))

    def datasets(self, name: str | None = None) -> list["DatasetUse"]:
        """Which versions used which data, in which role."""
        return self.registry.dataset_uses(name)

    def diff(self, a: str, b: str, *, everything: bool = False) -> "VersionDiff":
        """What differs between two versions' records (hyperparameters, data, base, scores); with
        ``everything``, every field."""
        from loraledger.views import VersionDiff

        left, right = self.registry.resolve(a).ref, self.registry.resolve(b).ref
        return VersionDiff(left, right, self.registry.diff(left, right, everything=everything))

    def verify(self, ref: str | None = None) -> "VerifyReport":
        """Re-derive every stored digest (of ``ref``, or of the whole registry)."""
        return self.registry.verify(ref)

    def garbage(self, *, min_age_seconds: float = 0.0, delete: bool = False) -> "GarbageReport":
        """Stored objects no version or dataset refers to (left by crashed or refused runs), sparing
        those younger than ``min_age_seconds``; with ``delete``, remove them."""
        if delete:
            return self.registry.collect_garbage(min_age_seconds=min_age_seconds)
        return self.registry.garbage(min_age_seconds=min_age_seconds)

    # ---- the database schema ------------------------------------------------------------------
    # These use the database URL alone: a PostgreSQL registry behind the code's schema cannot be
    # opened (``registry`` refuses it) until it is upgraded.

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Migrate the database to this version's schema: (revision before, revision after)."""
        from loraledger.registry.engine import make_engine
        from loraledger.registry.migrate import upgrade

        engine = make_engine(self.settings.db_url)
        try:
            return upgrade(engine)
        finally:
            engine.dispose()

    def schema_status(self) -> "SchemaStatus":
        """The database URL (password hidden) and its schema revision against the code's."""
        from loraledger.registry.engine import make_engine
        from loraledger.registry.migrate import HEAD, current_revision
        from loraledger.views import SchemaStatus

        engine = make_engine(self.settings.db_url)
        try:
            with engine.connect() as connection:
                revision = current_revision(connection)
        finally:
            engine.dispose()
        return SchemaStatus(engine.url.render_as_string(hide_password=True), revision, HEAD)

    # ---- moving aliases -----------------------------------------------------------------------

    def promote(self, ref: str, *, reason: str | None = None) -> "AliasEvent":
        """Make ``ref`` the current version of its adapter (overrides the forgetting gate)."""
        return self.registry.promote(ref, reason=reason)

    def rollback(self, name: str, *, to: str | None = None, reason: str | None = None) -> "AliasEvent":
        """Move NAME's current version back (to its parent, or to ``to``); nothing is deleted."""
        return self.registry.rollback(name, to=to, reason=reason)

    def alias(self, ref: str, alias: str, *, reason: str | None = None, delete: bool = False) -> "AliasEvent":
        """Point ``alias`` (champion, staging, ...) at ``ref``; with ``delete``, remove it from the
        adapter ``ref`` names."""
        if delete:
            return self.registry.remove_alias(ref.partition("@")[0], alias, reason=reason)
        return self.registry.set_alias(ref, alias, reason=reason)

    def set_threshold(self, name: str, value: float) -> float:
        """Set the forgetting gate's threshold for NAME (the largest relative NLL rise allowed on its
        retention sets and earlier updates, 0.05 = 5%); returns the threshold it replaces."""
        import math

        from loraledger.errors import InvalidInput

        if not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"invalid threshold {value}: use a relative NLL increase >= 0, e.g. 0.05 for 5%"
            )
        before = self.registry.max_regression(name)
        self.registry.set_max_regression(name, value)
        return before

    # ---- training and scoring -----------------------------------------------------------------

    def train(
        self,
        name: str,
        data: PathLike | Sequence[PathLike],
        *,
        eval: PathLike | Sequence[PathLike] | None = None,
        base: str | None = None,
        revision: str | None = None,
        parent: str | None = None,
        fresh: bool = False,
        recipe: "Recipe | None" = None,
        replay_data: PathLike | Sequence[PathLike] | None = None,
        run_eval: bool = True,
        force: bool = False,
        resume: bool = False,
        num_processes: int = 1,
        note: str | None = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        progress: "Hooks | None" = None,
        **fields: Any,
    ) -> "TrainResult":
        """Train the next LoRA update of ``name`` on ``data`` and register it.

        A new name needs ``base`` (``builtin:tiny``, a local model folder or a Hub id); an existing
        one continues its current version (or ``parent``) with its weights trainable. Hyperparameters
        come from ``recipe`` and/or keyword arguments named as the recipe's fields (``epochs=2``,
        ``r=8``, ``replay=0.1``, ``learning_rate=1e-4``); keywords win. The new version is scored on
        the adapter's eval suite (plus ``eval`` files) and becomes current only if the forgetting gate
        passes (or ``force``). ``result.version`` is the registered version; ``result.promoted`` says
        whether it went live, ``result.regressions`` why not.

        ``max_forgetting=0.05`` (or ``"5%"``; recipe key ``retention.max_forgetting``) sets a retention
        budget: an update forgetting more is weakened, else retrained with replay, until it fits
        (docs/retention.md). ``result.version`` is then the chosen version, derived from the raw update
        (held back); ``result.retention`` holds the search; ``BudgetNotMet`` (exit code 6) when nothing
        fits, with the raw update registered, held back, and the search recorded on it.
        """
        from loraledger.recipes import recipe_with
        from loraledger.training import TrainRequest, run_training

        built, explicit_lora = recipe_with(recipe, fields)
        request = TrainRequest(
            name=name,
            data=_paths(data),
            recipe=built,
            base=base,
            revision=revision,
            parent=parent,
            fresh=fresh,
            eval_files=_paths(eval),
            replay_files=_paths(replay_data),
            run_eval=run_eval,
            force=force,
            resume=resume,
            num_processes=num_processes,
            note=note,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
            lora_overrides=explicit_lora,
        )
        return run_training(self.settings, request, progress)

    def evaluate(
        self,
        ref: str,
        data: PathLike | Sequence[PathLike] | None = None,
        *,
        label: str | None = None,
        rescore: bool = False,
        quantize: Literal["none", "4bit", "8bit"] | None = None,
        stage: Stage | None = None,
    ) -> "EvalReport":
        """Score ``ref`` (or ``NAME@base``) on ``data``, or on its adapter's whole suite. Cached
        scores are reused unless ``rescore``; ``quantize`` scores another way than it was trained."""
        from loraledger.evaluation import evaluate

        return evaluate(
            self.settings,
            ref,
            _paths(data),
            label=label,
            rescore=rescore,
            quantize=quantize,
            stage=stage or (lambda message: None),
        )

    def evaluate_tasks(
        self, ref: str, tasks: Sequence[str], *, limit: int | None = None, stage: Stage | None = None
    ) -> "EvalReport":
        """Run lm-evaluation-harness ``tasks`` on ``ref`` (needs the ``lm-eval`` extra), at most
        ``limit`` examples each, and record every metric."""
        from loraledger.evaluation import evaluate_lm_eval

        return evaluate_lm_eval(
            self.settings, ref, list(tasks), limit=limit, stage=stage or (lambda message: None)
        )

    def add_to_suite(self, name: str, data: PathLike, *, label: str | None = None) -> "SuiteEntry":
        """Add a held-out set (e.g. general text to watch for forgetting) to NAME's eval suite."""
        from loraledger.suites import add_suite_file

        return add_suite_file(self.registry, name, Path(data), label=label)

    def report(self, name: str, out: PathLike) -> Path:
        """Write NAME's forgetting report: an HTML page (matrix, plots, lineage) or a PNG of the plots."""
        from loraledger.report import write_report

        return write_report(self.settings, name, Path(out))

    # ---- combining and publishing -------------------------------------------------------------

    def stack(
        self,
        name: str,
        refs: Sequence[str],
        *,
        weights: Sequence[float] | None = None,
        method: str = "cat",
        density: float | None = None,
        promote: bool = False,
        note: str | None = None,
        stage: Stage | None = None,
    ) -> "StackResult":
        """Combine adapters of one base into a new version of ``name`` (``cat`` is exact; ``linear``,
        ``ties``, ``dare_*`` mix them), recorded with its inputs and weights."""
        from loraledger.combining import run_stack

        return run_stack(
            self.settings,
            name,
            list(refs),
            weights=None if weights is None else list(weights),
            method=method,
            density=density,
            promote=promote,
            note=note,
            stage=stage or (lambda message: None),
        )

    def import_adapter(
        self,
        name: str,
        source: str,
        *,
        base: str | None = None,
        base_revision: str | None = None,
        revision: str | None = None,
        promote: bool = False,
        note: str | None = None,
        stage: Stage | None = None,
    ) -> "ImportResult":
        """Register an adapter trained elsewhere (a PEFT folder or a Hub repo) as a version of ``name``."""
        from loraledger.combining import run_import

        return run_import(
            self.settings,
            name,
            source,
            base=base,
            base_revision=base_revision,
            revision=revision,
            promote=promote,
            note=note,
            stage=stage or (lambda message: None),
        )

    def merge(
        self, ref: str, dest: PathLike, *, dtype: str = "fp32", stage: Stage | None = None
    ) -> "MergeResult":
        """Merge ``ref`` into its base at full precision and save the model in ``dest`` (safetensors),
        checked against adapter-on-base logits."""
        from loraledger.publishing import run_merge

        return run_merge(self.settings, ref, Path(dest), dtype=dtype, stage=stage or (lambda message: None))

    def export(
        self, ref: str, dest: PathLike, *, format: str = "peft", replace: bool = False
    ) -> "ExportResult":
        """Write ``ref`` as a PEFT folder named after the version (``format='vllm'`` adds vLLM's
        ``--lora-modules`` JSON; ``'lorax'`` LoRAX's)."""
        from loraledger.publishing import run_export

        # A str goes through as given: Path("") would be ".", and an empty destination is refused.
        return run_export(self.settings, ref, dest, format=format, replace=replace)

    def push(
        self,
        ref: str,
        repo_id: str,
        *,
        merged: bool = False,
        private: bool = False,
        dtype: str = "fp32",
        stage: Stage | None = None,
    ) -> "PushResult":
        """Publish ``ref`` (or, ``merged``, the model with it merged in) to the Hugging Face Hub with a
        model card carrying its lineage, data digests and scores."""
        from loraledger.publishing import run_push

        return run_push(
            self.settings,
            ref,
            repo_id,
            merged=merged,
            private=private,
            dtype=dtype,
            stage=stage or (lambda message: None),
        )

    def checkout(self, ref: str, dest: PathLike) -> Path:
        """Write ``ref``'s verified adapter files (a PEFT folder) into ``dest``."""
        return self.registry.checkout(ref, Path(dest))

    def load(self, ref: str, *, device: str | None = None) -> "LoadedVersion":
        """``ref`` ready for inference: its base (verified against the record) with the adapter applied
        as a ``PeftModel`` in eval mode, and the tokenizer. ``NAME@base`` gives the bare base."""
        from loraledger.loading import load_version

        return load_version(self.settings, self.registry, ref, device=device)

    # ---- serving: one base, many adapters ------------------------------------------------------

    def identify_base(self, model: str, *, revision: str | None = None) -> "BaseModelRecord":
        """``model`` (``builtin:tiny``, a folder, a Hub id) by its digests, the way versions record
        their base: compare with ``version.base.same_model(...)``."""
        from loraledger.loading import identify_base

        return identify_base(self.settings, model, revision=revision)

    def load_base(self, base: "BaseModelRecord", *, device: str | None = None) -> tuple[Any, Any]:
        """``(model, tokenizer)``: the bare base recorded as ``base`` (verified to be those weights), in
        eval mode, loaded as ``load`` loads it; a server puts adapters on it with peft."""
        from loraledger.loading import load_base

        return load_base(self.settings, base, device=device)

    def adapter_folder(self, version: "VersionRecord", cache: PathLike) -> Path:
        """``version``'s verified adapter files in ``cache``, in a folder named by the artifact
        digest: checked out on first use, reused after (versions sharing files share the folder)."""
        from loraledger.loading import adapter_folder

        return adapter_folder(self.registry, version.artifact_digest, Path(cache))
