"""The Hugging Face Hub: push a checkpoint folder as a model repository, and load networks back from it.

A checkpoint folder already has a Hub model repository's layout, so pushing uploads its files as they
are (plus a generated model card), and loading downloads them into the standard Hugging Face cache and
hands the folder to the strict loader in checkpoints.py. PyTorchModelHubMixin's `from_pretrained` is
never used: it loads with strict=False, and a missing or unexpected tensor must be an error.

Where networks come from is one string, the hub spec (`--hub SPEC` on the CLI, $CIFARNETS_HUB for the app,
which reads it once per server and shows Home and Classify what fell back):

    OWNER/PREFIX[@REV]                  every network from its own repository, OWNER/PREFIX-<key>
                                        (e.g. alice/cifarnets -> alice/cifarnets-resnet, the repo that
                                        `push --repo-id alice/cifarnets-resnet` made)
    KEY=OWNER/NAME[@REV],KEY=...        exact repositories for the networks named; the others stay shipped

REV is a branch, tag or commit. An `hf://` prefix is accepted anywhere. A repository reference that is
an existing local directory is read from there instead, as `from_pretrained` does. A network whose
repository cannot be fetched (offline and not cached, missing, private) falls back to its shipped
checkpoint, with a notice. One exact repository for `evaluate --checkpoint` is written hf://OWNER/NAME[@REV].

Nothing here reaches the network until a function that downloads or uploads is called.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import CommitOperationAdd, HfApi, ModelCardData, snapshot_download
from huggingface_hub.utils import (
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    validate_repo_id,
)

from ..answering import VIEWS, views_in_words
from ..errors import UsageError
from ..models import KEYS, count_params, label
from . import checkpoints as ckpt
from .fileio import read_json

ENV_VAR = "CIFARNETS_HUB"
URI_PREFIX = "hf://"
CARD_FILE, REQUIRED_FILES, OPTIONAL_FILES = ckpt.CARD_FILE, ckpt.REQUIRED_FILES, ckpt.OPTIONAL_FILES  # one list
HUB_FILES = REQUIRED_FILES + OPTIONAL_FILES  # what is downloaded: never the card, never anything else


class HubError(ckpt.CheckpointError):
    """A repository that cannot be fetched or pushed, and why, in one line."""


# ---------------------------------------------------------------- the hub spec

@dataclass(frozen=True)
class Ref:
    """One repository: a Hub repo id (or a local directory) and an optional revision."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo + (f"@{self.revision}" if self.revision else "")


def parse_ref(text: str) -> Ref:
    """`[hf://]OWNER/NAME[@REV]`, or a local directory, as a Ref."""
    text = text.strip().removeprefix(URI_PREFIX)
    if Path(text).expanduser().is_dir():  # checked first: a directory name may hold an '@'
        return Ref(text)
    repo, _, revision = text.partition("@")
    if not repo:
        raise UsageError(f"{text!r} names no repository (expected OWNER/NAME[@REV])")
    return Ref(repo, revision or None)


def parse_spec(spec: str) -> dict[str, Ref]:
    """{network key: repository} from a hub spec (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        return {}
    if "=" not in spec:
        base = parse_ref(spec)
        return {key: Ref(f"{base.repo}-{key}", base.revision) for key in KEYS}
    refs = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, ref = item.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise UsageError(f"hub spec item {item!r} should be KEY=OWNER/NAME with KEY one of {', '.join(KEYS)}")
        refs[key] = parse_ref(ref)
    return refs


# ---------------------------------------------------------------- loading

def download(repo_id: str, *, revision: str | None = None) -> Path:
    """The checkpoint files of a Hub model repository, in the Hugging Face cache (offline: from the cache)."""
    try:
        validate_repo_id(repo_id)
        path = snapshot_download(repo_id, revision=revision, allow_patterns=list(HUB_FILES))
    except HFValidationError:
        raise HubError(f"{repo_id!r} is neither a local folder nor a Hub repository id (OWNER/NAME)") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r} on the Hugging Face Hub") from None
    except RepositoryNotFoundError:  # also gated repositories, and private ones without a token
        raise HubError(f"{repo_id} is not on the Hugging Face Hub, or is private (log in with "
                       "`hf auth login` or set HF_TOKEN)") from None
    except LocalEntryNotFoundError:
        raise HubError(f"{Ref(repo_id, revision)} is not in the Hugging Face cache and the Hub cannot be "
                       "reached (offline)") from None
    except Exception as e:  # noqa: BLE001 -- transport errors change class with huggingface_hub's HTTP library
        raise HubError(f"{Ref(repo_id, revision)} could not be fetched ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'})") from None
    return Path(path)


def fetch(ref: Ref) -> Path:
    """A checkpoint folder for `ref`: the local directory itself, or the Hub download."""
    local = Path(ref.repo).expanduser()
    if local.is_dir():
        return local
    return download(ref.repo, revision=ref.revision)


def load(ref: str, device: torch.device | str = "cpu", expected_key: str | None = None
         ) -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, config) from `[hf://]OWNER/NAME[@REV]` or a local folder, loaded strictly."""
    return ckpt.load_checkpoint(fetch(parse_ref(ref)), device, expected_key=expected_key)


@dataclass(frozen=True)
class Source:
    """Where the hub spec sends one network: the folder fetched, or why it falls back to the shipped checkpoint."""

    ref: Ref
    folder: Path | None = None
    error: str = ""

    def text(self) -> str:
        """Where the network comes from, in words (Home says it under each network)."""
        if not self.folder:
            return f"the shipped checkpoint, because `{self.ref}` could not be fetched"
        if Path(self.ref.repo).expanduser().is_dir():
            return f"the local folder `{self.ref.repo}`"
        return f"the Hugging Face Hub repository `{self.ref}`"

    def notice(self, key: str) -> str:
        return f"{label(key)}: {self.error}; using the shipped checkpoint instead"


def fetch_all(spec: str) -> dict[str, Source]:
    """{key: Source} for each network a hub spec names. A repository that can't be fetched is a Source with an
    error, never an exception; a malformed spec raises ValueError."""
    sources = {}
    for key, ref in parse_spec(spec).items():
        try:
            sources[key] = Source(ref, fetch(ref))
        except HubError as e:
            sources[key] = Source(ref, error=str(e))
    return sources


def resolve(spec: str) -> tuple[dict[str, Path], list[str]]:
    """({key: folder} overrides for checkpoints.discover, notices): what can't be fetched stays shipped."""
    sources = fetch_all(spec)
    return ({k: s.folder for k, s in sources.items() if s.folder},
            [s.notice(k) for k, s in sources.items() if not s.folder])


def sources(spec: str) -> tuple[dict[str, Source], list[str]]:
    """fetch_all(spec) and its notices, never an exception, as the app reads $CIFARNETS_HUB: one notice per
    network that falls back, or one for a spec that can't be read (every network then stays shipped)."""
    try:
        found = fetch_all(spec)
    except ValueError as e:
        return {}, [f"{ENV_VAR}={spec!r} is not a valid hub spec ({e}); using the shipped checkpoints"]
    return found, [s.notice(k) for k, s in found.items() if not s.folder]


def checkpoint_folder(value: str) -> Path:
    """`evaluate --checkpoint`: a folder, or hf://OWNER/NAME[@REV] fetched from the Hub (no fallback)."""
    if value.startswith(URI_PREFIX):
        return fetch(parse_ref(value))
    return Path(value)


def cli_overrides(spec: str | None) -> dict[str, Path]:
    """resolve(spec) for a CLI command: notices go to stderr; a bad spec raises ValueError (an `error:` line)."""
    if not spec:
        return {}
    overrides, notices = resolve(spec)
    for notice in notices:
        print(f"notice: {notice}", file=sys.stderr)
    return overrides


# ---------------------------------------------------------------- pushing

def plan_upload(folder: str | Path, repo_id: str) -> dict[str, bytes]:
    """{path in repo: bytes}: exactly what `push` uploads, validated with the strict loader first."""
    # The checkpoint's files, as checkpoints.py lists them; a card of the folder's own gives way to ours.
    files = {path.name: path.read_bytes() for path in ckpt.checkpoint_files(folder) if path.name != CARD_FILE}
    # Validate the very bytes that will be uploaded, not the folder, which a training run may rewrite meanwhile.
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        model, config = ckpt.load_checkpoint(tmp)
        histories = {name: _read_rows(Path(tmp), name) for name in (ckpt.HISTORY_FILE, ckpt.REPORT_HISTORY_FILE)}
    files[CARD_FILE] = model_card(repo_id, model, config, histories[ckpt.HISTORY_FILE],
                                  histories[ckpt.REPORT_HISTORY_FILE]).encode()
    return files


def _read_rows(folder: Path, name: str) -> list[dict]:
    """A history file's rows; one that exists but is not a JSON list would be uploaded broken, so refuse it."""
    path = folder / name
    if not path.exists():
        return []
    try:
        rows = read_json(path)
    except (OSError, ValueError) as e:
        raise ckpt.CheckpointError(f"{name} is not valid JSON ({e})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ckpt.CheckpointError(f"{name} should be a JSON list of per-epoch rows")
    return rows


def push(folder: str | Path, repo_id: str, *, token: str | None = None, private: bool = False,
         api: HfApi | None = None) -> str:
    """Upload a checkpoint folder as a Hub model repository (created if needed); returns the repository URL."""
    validate_repo(repo_id)
    files = plan_upload(folder, repo_id)
    api = api or HfApi()
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
        api.create_commit(repo_id, [CommitOperationAdd(path_in_repo=name, path_or_fileobj=data)
                                    for name, data in files.items()],
                          commit_message=f"Upload {Path(folder).name} checkpoint with cifarnets",
                          token=token, repo_type="model")
    except Exception as e:  # noqa: BLE001 -- auth, network and server errors all end the same way: one line
        raise HubError(f"push to {repo_id} failed ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:200] if str(e) else 'no detail'})") from None
    return str(url)


def validate_repo(repo_id: str) -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"{repo_id!r} is not a Hub repository id (OWNER/NAME)") from None
    if "/" not in repo_id:  # without an owner the Hub would pick the token's user: be explicit
        raise HubError(f"{repo_id!r} needs an owner: OWNER/NAME, e.g. alice/cifarnets-resnet")


# ---------------------------------------------------------------- the model card

def model_card(repo_id: str, model: torch.nn.Module, config: dict, history: list[dict],
               report_history: list[dict]) -> str:
    """README.md for the repository: YAML front matter, then architecture, recipe, metrics and curves."""
    key = config["model"]
    meta = ModelCardData(library_name="pytorch", pipeline_tag="image-classification", datasets=["cifar10"],
                         metrics=["accuracy"], tags=["image-classification", "cifar10", "cifarnets", key])
    sections = [
        f"# {label(key)} for CIFAR-10 (cifarnets)",
        f"The `{key}` network of cifarnets: `{type(model).__name__}`, {count_params(model):,} parameters, "
        f"trained with the {ckpt.training_summary(config)}. "
        "Weights are safetensors; `config.json` holds the recipe, data and metrics, `history.json` one row per epoch.",
        _usage(repo_id, key),
        "## Architecture\n\n```text\n" + str(model) + "\n```",
        _recipe(config),
        _metrics(config),
        _curves(history, report_history),
    ]
    return f"---\n{meta.to_yaml()}\n---\n\n" + "\n\n".join(s for s in sections if s) + "\n"


def _usage(repo_id: str, key: str) -> str:
    return ("## Use\n\nWith the cifarnets code, loaded strictly (a missing or unexpected tensor is an error):\n\n"
            "```bash\n"
            f"python -m cifarnets evaluate --checkpoint hf://{repo_id} --data PATH\n"
            f"python -m cifarnets predict --hub {key}={repo_id} photo.jpg\n"
            f"CIFARNETS_HUB={key}={repo_id} streamlit run app.py\n"
            "```\n\n"
            f"```python\nfrom cifarnets import hub\nmodel, config = hub.load(\"{repo_id}\")\n```")


def _recipe(config: dict) -> str:
    recipe = config.get("recipe") or {}
    if not recipe:
        return ""
    rows = "\n".join(f"| {k} | {v} |" for k, v in recipe.items() if k != "note")
    data = config.get("data") or {}
    source = Path(str(data.get("source", "unrecorded"))).name
    digest = f", sha256 {data['sha256'][:12]}…" if data.get("sha256") else ""
    sizes = (f": {data['n_train']:,} training and {data['n_test']:,} test images"
             if isinstance(data.get("n_train"), int) and isinstance(data.get("n_test"), int) else "")
    note = f"\n\n{recipe['note']}" if recipe.get("note") else ""
    return (f"## Recipe: {recipe.get('name', '?')}\n\n| setting | value |\n| --- | --- |\n{rows}{note}\n\n"
            f"Data: `{source}`{digest}{sizes}; seed {config.get('seed', '?')}.")


def _metrics(config: dict) -> str:
    metrics = config.get("metrics") or {}
    if "test_acc" not in metrics:
        return "## Metrics\n\nNone recorded."
    n = f" on {metrics['n']:,} test images" if isinstance(metrics.get("n"), int) else ""
    single = metrics.get("single_view") or {}
    views = metrics.get("views") if isinstance(metrics.get("views"), int) else VIEWS
    view = (f" ({views_in_words(views)}, as `cifarnets` predicts; {single['test_acc']:.2%} "
            "on each image alone)" if isinstance(single.get("test_acc"), float) else "")
    lines = [f"## Metrics\n\nTest accuracy **{metrics['test_acc']:.2%}**{n}{view}"
             + (f", test loss {metrics['test_loss']:.4f}." if "test_loss" in metrics else ".")]
    per_class = metrics.get("per_class") or {}
    if per_class:
        lines.append("| class | accuracy |\n| --- | --- |\n"
                     + "\n".join(f"| {c} | {a:.1%} |" for c, a in per_class.items()))
    return "\n\n".join(lines)


def _curves(history: list[dict], report_history: list[dict]) -> str:
    if not history:
        return ""
    cols = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")
    head = "| epoch | train loss | train acc | test loss | test acc | lr |\n| --- | --- | --- | --- | --- | --- |"
    rows = "\n".join(f"| {r.get('epoch', i + 1)} | " + " | ".join(_cell(c, r.get(c)) for c in cols) + " |"
                     for i, r in enumerate(history))
    text = f"## Training curves\n\n{head}\n{rows}"
    final = report_history[-1].get("test_acc") if report_history else None
    if isinstance(final, (int, float)):
        text += (f"\n\nFor comparison, the report's own recipe reached {final:.2%} test accuracy after "
                 f"{len(report_history)} epochs (`report_history.json`).")
    return text


def _cell(column: str, value) -> str:
    if not isinstance(value, (int, float)):
        return ""
    if column.endswith("_acc"):
        return f"{value:.2%}"
    return f"{value:.4g}" if column == "lr" else f"{value:.4f}"


# ---------------------------------------------------------------- the command line

SPEC_HELP = ("load networks from the Hugging Face Hub: OWNER/PREFIX[@REV] (repositories OWNER/PREFIX-<key>) or "
             "KEY=OWNER/NAME[@REV],...; a network that cannot be fetched falls back to the shipped checkpoint "
             "with a notice")


def add_hub_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hub", metavar="SPEC", help=SPEC_HELP)


def add_parser(sub) -> None:
    """The `push` subcommand, on the CLI's subparsers."""
    p = sub.add_parser("push", help="upload a checkpoint folder to the Hugging Face Hub, with a model card",
                       description="Upload model.safetensors, config.json, history.json, report_history.json "
                                   "(if present) and a generated README.md model card; nothing else in the "
                                   "folder. Authenticate with `hf auth login` or HF_TOKEN.")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, e.g. checkpoints/resnet")
    p.add_argument("--repo-id", required=True, help="OWNER/NAME, e.g. alice/cifarnets-resnet (created if needed)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--dry-run", action="store_true", help="print the files and the card; upload nothing")
    p.set_defaults(func=cmd_push)


def cmd_push(args) -> int:
    if args.dry_run:
        validate_repo(args.repo_id)
        files = plan_upload(args.checkpoint, args.repo_id)
        visibility = "private" if args.private else "public"
        print(f"dry run: would upload to {args.repo_id} ({visibility} model repository):")
        for name, data in files.items():
            print(f"  {name:<22} {len(data):>10,} bytes")
        print(f"\n----- {CARD_FILE} -----\n{files[CARD_FILE].decode()}", end="")
        return 0
    url = push(args.checkpoint, args.repo_id, private=args.private)
    print(f"pushed {args.checkpoint} to {url}")
    return 0
