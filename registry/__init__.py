"""The adapter registry: versions, lineage, datasets, scores, aliases and artifacts.

Never imports torch or transformers: listing a registry must stay fast and work without them.
"""

from loraledger.registry.artifacts import ArtifactStore
from loraledger.registry.integrity import GarbageReport, VerifyReport
from loraledger.registry.ledger import LineageNode, Registry

__all__ = ["ArtifactStore", "GarbageReport", "LineageNode", "Registry", "VerifyReport"]
