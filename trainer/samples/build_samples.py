"""Regenerate loraledger's shipped sample corpora from text already on this machine.

Run from the repository root (not imported by the package):

    .venv/bin/python trainer/samples/build_samples.py            # rewrite the samples
    .venv/bin/python trainer/samples/build_samples.py --check    # rebuild in memory and compare

Sources, all redistributable (see NOTICE.md):
- general text: the running interpreter's `pydoc_data.topics` (Python's reference documentation);
- legal text: /usr/share/common-licenses/*, the interpreter's LICENSE.txt, and the machine-readable
  (DEP-5) Debian copyright files /usr/share/doc/*/copyright.

The output depends only on those inputs: no clock, no randomness, every choice ordered by name or by
a SHA-256 of the text. MANIFEST.json pins the interpreter version and the SHA-256 of every input and
output, so a rebuild elsewhere can tell whether it reproduced the shipped files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent
COMMON_LICENSES = Path("/usr/share/common-licenses")
DEBIAN_DOC = Path("/usr/share/doc")
DPKG_STATUS = Path("/var/lib/dpkg/status")
PYTHON_LICENSE = Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt"

# Share of each corpus held out. Eval sets stay small so that an evaluation pass on CPU takes
# seconds: the registry evaluates every new adapter version.
EVAL_FRACTION = 0.12
# Long documents stay in train: one of them would dominate a small eval set.
MAX_EVAL_DOC_BYTES = 8_000
# Train bytes per legal update: a visible domain shift, yet one LoRA epoch of a tiny model takes
# seconds on two CPU cores. Whole license texts get at most half of it, copyright notices the rest.
LEGAL_TRAIN_BUDGET = 200_000
LICENSE_SHARE = 0.5
# A few packages (perl, openjdk) list hundreds of files; their notices alone would fill a budget.
MAX_NOTICE_BYTES = 30_000
# Near duplicates are judged on word 5-grams ("shingles"): a document is kept only if at least
# MIN_NOVELTY of its shingles are new, and may be held out only if at most MAX_EVAL_SHARED of them
# occur in any other document, so that eval text is not quoted inside train text.
SHINGLE_WORDS = 5
MIN_NOVELTY = 0.5
MAX_EVAL_SHARED = 0.3

# Flavour of a DEP-5 "License:" short name. Copyleft wins in dual licenses ("GPL-1+ or Artistic") so
# that the permissive update stays free of copyleft terms.
COPYLEFT = re.compile(r"\b(A?GPL|LGPL|MPL|EPL|CDDL|GFDL|FDL|EUPL|OSL|CeCILL|CC-BY-SA|OFL)", re.IGNORECASE)
PERMISSIVE = re.compile(
    r"\b(BSD|MIT|Expat|X11|ISC|Apache|Zlib|libpng|BSL|Boost|PSF|Python|Unicode|CC0|CC-BY|public-domain"
    r"|Artistic|curl|PostgreSQL|NTP|OpenSSL|SSLeay|HPND|WTFPL|Unlicense|0BSD)",
    re.IGNORECASE,
)
# Whole license files, in the order they claim a budget: current versions before older ones.
PERMISSIVE_COMMON = ("Apache-2.0", "BSD", "CC0-1.0", "Artistic")
COPYLEFT_COMMON = (
    "GPL-3",
    "GPL-2",
    "LGPL-3",
    "LGPL-2.1",
    "MPL-2.0",
    "GFDL-1.3",
    "GPL-1",
    "LGPL-2",
    "MPL-1.1",
    "GFDL-1.2",
)
UPDATES = (("update-1", "permissive"), ("update-2", "copyleft"))


@dataclass
class Doc:
    """One sample record, plus what deduplication and splitting need to know about it."""

    text: str
    source: str
    flavour: str = "general"
    kind: str = "document"  # legal corpora: "license" (a full text) or "notice" (copyright lines)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = normalized(self.text)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()

    @property
    def nbytes(self) -> int:
        return len(self.text.encode())


def normalized(text: str) -> str:
    """Text reduced to what makes two documents 'the same': case and white space do not count."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- sources


def general_docs() -> list[Doc]:
    """One document per pydoc topic, text as the interpreter ships it."""
    from pydoc_data import topics

    return [
        Doc(text=topics.topics[name].strip() + "\n", source=f"pydoc_data.topics:{name}")
        for name in sorted(topics.topics)
    ]


def whole_license_docs() -> list[Doc]:
    """License files kept byte for byte (the GNU texts permit verbatim copies only)."""
    docs = [
        Doc(
            text=(COMMON_LICENSES / name).read_text(encoding="utf-8"),
            source=f"{COMMON_LICENSES}/{name}",
            flavour=flavour,
            kind="license",
        )
        for names, flavour in ((PERMISSIVE_COMMON, "permissive"), (COPYLEFT_COMMON, "copyleft"))
        for name in names
    ]
    docs.append(
        Doc(
            text=PYTHON_LICENSE.read_text(encoding="utf-8"),
            source="python:LICENSE.txt",
            flavour="permissive",
            kind="license",
        )
    )
    return docs


def dep5_copyright_files() -> list[Path]:
    """Machine-readable Debian copyright files that decode as UTF-8, sorted by package name."""
    paths = []
    for path in sorted(DEBIAN_DOC.glob("*/copyright")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.startswith("Format:"):
            paths.append(path)
    return paths


def dep5_stanzas(text: str) -> Iterator[str]:
    """Paragraphs of a DEP-5 file."""
    for stanza in re.split(r"\n[ \t]*\n", text):
        if stanza.strip():
            yield stanza.strip("\n")


def unfold(stanza: str) -> str:
    """A DEP-5 paragraph as plain text: folded lines lose their indent, ' .' lines become blank.

    The folding is only the file format's encoding of a multi-line field; unfolding gives back the
    notice as its authors wrote it.
    """
    lines = []
    for line in stanza.splitlines():
        if line.startswith((" ", "\t")):
            body = line[1:]
            lines.append("" if body.strip() == "." else body)
        else:
            lines.append(line)
    return "\n".join(lines).rstrip() + "\n"


def license_name(stanza: str) -> str | None:
    match = re.search(r"^License:[ \t]*(.*)$", stanza, re.MULTILINE)
    return match.group(1).strip() if match else None


def flavour_of(name: str) -> str | None:
    if COPYLEFT.search(name):
        return "copyleft"
    if PERMISSIVE.search(name):
        return "permissive"
    return None


def debian_docs(copyright_files: Iterable[Path]) -> list[Doc]:
    """License paragraphs (full texts), then each package's copyright notices of one flavour.

    A package's `Files:` paragraphs of one flavour make one document, in file order: alone, each is a
    line or two of near-identical boilerplate.
    """
    licenses = []
    notices = []
    for path in copyright_files:
        package = path.parent.name
        grouped: dict[str, list[str]] = {}
        for index, stanza in enumerate(dep5_stanzas(path.read_text(encoding="utf-8"))):
            name = license_name(stanza)
            flavour = flavour_of(name) if name else None
            if flavour is None:
                continue
            if stanza.startswith("License:"):
                source = f"debian:{package}/copyright#{index}:license:{name}"
                licenses.append(Doc(text=unfold(stanza), source=source, flavour=flavour, kind="license"))
            elif stanza.startswith("Files:"):
                grouped.setdefault(flavour, []).append(unfold(stanza))
        for flavour, stanzas in sorted(grouped.items()):
            text = "\n".join(stanzas)
            if len(text) <= MAX_NOTICE_BYTES:
                source = f"debian:{package}/copyright:notices:{flavour}"
                notices.append(Doc(text=text, source=source, flavour=flavour, kind="notice"))
    return licenses + notices


# ---------------------------------------------------------------- dedupe and split


def shingles(doc: Doc) -> set[str]:
    words = doc.key.split()
    if len(words) <= SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def dedupe_exact(docs: Iterable[Doc]) -> list[Doc]:
    """First occurrence wins, in the callers' order."""
    seen: set[str] = set()
    unique = []
    for doc in docs:
        if doc.key not in seen:
            seen.add(doc.key)
            unique.append(doc)
    return unique


def mostly_new(docs: Iterable[Doc]) -> list[Doc]:
    """Drop near duplicates: keep a document only if most of its shingles are not yet kept.

    Debian repeats the same license under thousands of copyright lines; earlier documents win, and
    callers put whole license files first.
    """
    seen: set[str] = set()
    kept = []
    for doc in dedupe_exact(docs):
        own = shingles(doc)
        if len(own - seen) / len(own) >= MIN_NOVELTY:
            kept.append(doc)
            seen |= own
    return kept


def shingle_counts(docs: Iterable[Doc]) -> dict[str, int]:
    """In how many documents each shingle occurs."""
    counts: dict[str, int] = {}
    for doc in docs:
        for shingle in shingles(doc):
            counts[shingle] = counts.get(shingle, 0) + 1
    return counts


def pick_eval(docs: list[Doc], target_bytes: float, counts: dict[str, int]) -> list[Doc]:
    """Held-out documents: short, mostly unlike every other document, taken in hash order.

    `counts` covers every document of every corpus: comparing with all of them, not only with
    train, keeps the choice independent of order and of which corpus a quote sits in.
    """
    picked: list[Doc] = []
    for doc in sorted(docs, key=lambda d: d.digest):
        if sum(d.nbytes for d in picked) >= target_bytes:
            break
        own = shingles(doc)
        shared = sum(1 for shingle in own if counts[shingle] > 1) / len(own)
        if doc.nbytes <= MAX_EVAL_DOC_BYTES and shared <= MAX_EVAL_SHARED:
            picked.append(doc)
    return picked


def fill(docs: Iterable[Doc], budget: int, taken: list[Doc]) -> None:
    """Append documents, in the given order, to `taken` while they fit in `budget` bytes overall."""
    chosen = {d.key for d in taken}
    for doc in docs:
        used = sum(d.nbytes for d in taken)
        if doc.key not in chosen and used + doc.nbytes <= budget:
            taken.append(doc)
            chosen.add(doc.key)


def by_source(docs: Iterable[Doc]) -> list[Doc]:
    return sorted(docs, key=lambda d: d.source)


def legal_splits(docs: list[Doc], counts: dict[str, int]) -> dict[str, list[Doc]]:
    splits: dict[str, list[Doc]] = {}
    for update, flavour in UPDATES:
        candidates = [d for d in docs if d.flavour == flavour]
        held_out = pick_eval(candidates, EVAL_FRACTION / (1 - EVAL_FRACTION) * LEGAL_TRAIN_BUDGET, counts)
        rest = [d for d in candidates if d not in held_out]
        whole_files = [d for d in rest if not d.source.startswith("debian:")]
        debian_licenses = sorted(
            (d for d in rest if d.kind == "license" and d not in whole_files), key=lambda d: d.digest
        )
        notices = sorted((d for d in rest if d.kind == "notice"), key=lambda d: d.digest)
        train: list[Doc] = []
        fill([*whole_files, *debian_licenses], int(LICENSE_SHARE * LEGAL_TRAIN_BUDGET), train)
        fill(notices, LEGAL_TRAIN_BUDGET, train)
        fill(debian_licenses, LEGAL_TRAIN_BUDGET, train)  # whatever room the notices left
        splits[f"legal/{update}.jsonl"] = by_source(train)
        splits[f"legal/{update}-eval.jsonl"] = by_source(held_out)
    return splits


def general_splits(docs: list[Doc], counts: dict[str, int]) -> dict[str, list[Doc]]:
    held_out = pick_eval(docs, EVAL_FRACTION * sum(d.nbytes for d in docs), counts)
    pretrain = [d for d in docs if d not in held_out]
    return {
        "general/pretrain.jsonl": by_source(pretrain),
        "general/retention-eval.jsonl": by_source(held_out),
    }


def check_disjoint(outputs: dict[str, list[Doc]]) -> None:
    """No eval document may be a train document of any corpus, exactly or nearly."""
    train = [d for name, docs in outputs.items() if not name.endswith("-eval.jsonl") for d in docs]
    train_keys = {d.key for d in train}
    train_shingles = set().union(*(shingles(d) for d in train))
    for name, docs in outputs.items():
        for doc in docs if name.endswith("-eval.jsonl") else ():
            own = shingles(doc)
            if doc.key in train_keys or len(own & train_shingles) / len(own) > MAX_EVAL_SHARED:
                raise SystemExit(f"{name}: {doc.source} is (nearly) a copy of train text")


# ---------------------------------------------------------------- output


def jsonl(docs: list[Doc]) -> bytes:
    lines = [json.dumps({"text": d.text, "source": d.source}, ensure_ascii=False) for d in docs]
    return ("\n".join(lines) + "\n").encode()


def dpkg_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for paragraph in DPKG_STATUS.read_text(encoding="utf-8").split("\n\n"):
        fields = dict(re.findall(r"^(Package|Version): (.*)$", paragraph, re.MULTILINE))
        if "Package" in fields and "Version" in fields:
            versions.setdefault(fields["Package"], fields["Version"])
    return versions


def manifest(files: dict[str, bytes], outputs: dict[str, list[Doc]], copyright_files: list[Path]) -> bytes:
    python_version = sys.version.split()[0]
    versions = dpkg_versions()
    used = {
        d.source.split(":", 1)[1].split("/", 1)[0]
        for docs in outputs.values()
        for d in docs
        if d.source.startswith("debian:")
    }
    inputs: dict[str, dict[str, object]] = {
        "pydoc_data.topics": {"python": python_version},
        "python:LICENSE.txt": {"python": python_version, "sha256": sha256_file(PYTHON_LICENSE)},
    }
    for name in sorted((*PERMISSIVE_COMMON, *COPYLEFT_COMMON)):
        inputs[str(COMMON_LICENSES / name)] = {
            "sha256": sha256_file(COMMON_LICENSES / name),
            "package_version": f"base-files {versions.get('base-files', '?')}",
        }
    for path in copyright_files:
        # Every DEP-5 file is an input (deduplication looks at all of them), used or not.
        package = path.parent.name
        inputs[str(path)] = {
            "sha256": sha256_file(path),
            "package_version": f"{package} {versions.get(package, '?')}",
            "contributes": package in used,
        }
    document = {
        "generator": "trainer/samples/build_samples.py",
        "python": python_version,
        "outputs": {
            name: {
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
                "documents": len(outputs[name]),
            }
            for name, data in sorted(files.items())
        },
        "inputs": inputs,
    }
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()


def build() -> dict[str, bytes]:
    copyright_files = dep5_copyright_files()
    general = dedupe_exact(general_docs())
    # Whole license files come first, so that a full text, not a Debian copy of it, survives.
    legal = mostly_new([*whole_license_docs(), *debian_docs(copyright_files)])
    counts = shingle_counts([*general, *legal])
    outputs = {**general_splits(general, counts), **legal_splits(legal, counts)}
    check_disjoint(outputs)
    files = {name: jsonl(docs) for name, docs in outputs.items()}
    files["MANIFEST.json"] = manifest(files, outputs, copyright_files)
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="rebuild in memory and compare with the files here"
    )
    args = parser.parse_args()
    files = build()
    if args.check:
        stale = [
            name
            for name, data in files.items()
            if not (SAMPLES_DIR / name).is_file() or (SAMPLES_DIR / name).read_bytes() != data
        ]
        for name in stale:
            print(f"differs: {name}", file=sys.stderr)
        return 1 if stale else 0
    for name, data in sorted(files.items()):
        target = SAMPLES_DIR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        print(f"{name}: {len(data)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
