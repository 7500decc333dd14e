"""Find WordNet for METEOR's synonym matching, offline first.

Order: (1) nltk's data path already has it; (2) Debian's ``wordnet-base`` and ``wordnet-sense-index``
installed it under /usr/share/wordnet: copy it into ``<cache>/corpora/wordnet/`` (nltk 3.10 refuses
files outside its data dirs, symlinks included) with the ``lexnames`` file Debian omits, and put
``<cache>`` on nltk's data path; (3) ``nltk.download("wordnet")`` when online. If all fail the
status says so, and the report shows it loudly: METEOR then has no synonym matches.

    apt-get install -y wordnet-base wordnet-sense-index    # the offline way on Debian/Ubuntu
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
# The database files nltk's WordNetCorpusReader opens (lexnames is written by write_lexnames).
WORDNET_FILES = (
    *(f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")),
    *(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")),
    "index.sense",
    "cntlist.rev",
)

# WordNet 3.0's lexicographer files (lexnames(5WN)): number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb). Debian ships this list only as a man page.
LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2),
    ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2),
    ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2),
    ("adj.ppl", 3),
)  # fmt: skip


@dataclass(frozen=True)
class WordNetStatus:
    """Where WordNet came from, for the report; ``available`` False means METEOR without synonyms."""

    available: bool
    source: str  # "nltk-data", "debian-copy", "nltk-download" or "missing"
    path: str | None
    message: str


def default_cache_dir() -> Path:
    """A per-user cache folder (``$CHATBOT_CACHE_DIR`` overrides it) that holds ``corpora/wordnet``."""
    if os.environ.get("CHATBOT_CACHE_DIR"):
        return Path(os.environ["CHATBOT_CACHE_DIR"]) / "nltk_data"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gpt2-dialogue-chatbot")) / "nltk_data"


def lexnames_text() -> str:
    """The standard 45-line WordNet 3.0 ``lexnames`` file: ``NN<TAB>name<TAB>category``."""
    return "".join(f"{i:02d}\t{name}\t{category}\n" for i, (name, category) in enumerate(LEXNAMES))


def open_reader(root: str | os.PathLike):
    """An nltk WordNet reader on a ``.../corpora/wordnet`` folder, checked with one lookup."""
    from nltk.corpus.reader.wordnet import WordNetCorpusReader
    from nltk.data import FileSystemPathPointer

    with warnings.catch_warnings():  # "multilingual functions are not available": we need English only
        warnings.simplefilter("ignore", UserWarning)
        reader = WordNetCorpusReader(FileSystemPathPointer(str(root)), None)
    if not reader.synsets("dog"):
        raise LookupError(f"{root}: WordNet opened but has no synsets for 'dog'")
    return reader


def from_nltk_path():
    """WordNet already on nltk's data path (a folder or nltk's wordnet.zip), or None."""
    import nltk

    for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
        try:
            pointer = nltk.data.find(resource)
        except LookupError:
            continue
        try:
            from nltk.corpus.reader.wordnet import WordNetCorpusReader

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                reader = WordNetCorpusReader(pointer, None)
            if reader.synsets("dog"):
                return reader, str(pointer)
        except (OSError, LookupError, ValueError) as exc:
            logger.warning("WordNet at %s is unusable: %s", pointer, exc)
    return None


def copy_debian_wordnet(debian_dir: str | os.PathLike, cache_dir: str | os.PathLike) -> Path:
    """Copy Debian's WordNet into ``<cache_dir>/corpora/wordnet`` (atomically) and add ``lexnames``."""
    source, target = Path(debian_dir), Path(cache_dir) / "corpora" / "wordnet"
    missing = [name for name in WORDNET_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks {', '.join(missing)}; apt-get install wordnet-base wordnet-sense-index"
        )
    if (target / "lexnames").is_file() and all((target / n).is_file() for n in WORDNET_FILES):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # copy into a sibling temp folder and rename, so a killed copy never leaves a half database
    staging = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    for name in WORDNET_FILES:
        shutil.copyfile(source / name, staging / name)
    (staging / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def add_nltk_path(folder: str | os.PathLike) -> None:
    import nltk

    if str(folder) not in nltk.data.path:
        nltk.data.path.insert(0, str(folder))


def download_wordnet(cache_dir: str | os.PathLike, timeout_s: float = 15.0) -> Path:
    """``nltk.download("wordnet")`` into the cache; raises when offline (bounded by ``timeout_s``)."""
    import nltk

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # nltk's downloader has no timeout of its own
    try:
        ok = nltk.download("wordnet", download_dir=str(cache_dir), quiet=True, raise_on_error=True)
    finally:
        socket.setdefaulttimeout(previous)
    if not ok:
        raise OSError("nltk.download('wordnet') failed")
    return Path(cache_dir) / "corpora" / "wordnet"


def find_wordnet(
    cache_dir: str | os.PathLike | None = None,
    debian_dir: str | os.PathLike = DEBIAN_WORDNET_DIR,
    search_nltk_path: bool = True,
    allow_download: bool = True,
):
    """Return ``(reader or None, WordNetStatus)``, trying nltk's path, Debian's copy, then a download."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    problems: list[str] = []
    if search_nltk_path:
        found = from_nltk_path()
        if found:
            return found[0], WordNetStatus(True, "nltk-data", found[1], f"WordNet from nltk's data path ({found[1]})")
    try:
        root = copy_debian_wordnet(debian_dir, cache)
        add_nltk_path(cache)  # before opening: nltk only reads files under its data path
        reader = open_reader(root)
        return reader, WordNetStatus(True, "debian-copy", str(root), f"WordNet 3.0 from {debian_dir}, copied to {root}")
    except (OSError, LookupError, ValueError) as exc:
        problems.append(f"Debian WordNet: {exc}")
    if allow_download:
        try:
            root = download_wordnet(cache)
            add_nltk_path(cache)
            found = from_nltk_path()
            if found is None:
                raise LookupError(f"downloaded to {cache} but nltk cannot open it")
            reader = found[0]
            return reader, WordNetStatus(True, "nltk-download", str(root), f"WordNet downloaded by nltk to {cache}")
        except Exception as exc:  # noqa: BLE001 - any download failure means "offline"; we report it below
            problems.append(f"nltk.download: {type(exc).__name__}: {exc}")
    message = (
        "WordNet NOT FOUND: METEOR is computed WITHOUT synonym matching (exact and stem matches only), "
        "so it is lower than published METEOR. Fix: apt-get install wordnet-base wordnet-sense-index, "
        "or python -m nltk.downloader wordnet. Tried: " + "; ".join(problems or ["nltk data path"])
    )
    logger.warning(message)
    return None, WordNetStatus(False, "missing", None, message)
