"""``python -m maxclass_lightning``: LightningCLI over ``ClassVisualizer`` with the seed's defaults."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import yaml
from jsonargparse import ArgumentError
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException

from maxclass_lightning import evaluate, gallery, parse_errors, recipes, resume, validation
from maxclass_lightning.checkpoints import disk_full_message, is_disk_full
from maxclass_lightning.errors import ConfigError, RunError
from maxclass_lightning.module import ClassVisualizer
from maxclass_lightning.ownership import check_strategy
from maxclass_lightning.parse_errors import PROGRAM, fail

#: Set (to anything) to see full tracebacks instead of one-line errors.
DEBUG_VARIABLE = "MAXCLASS_DEBUG"

#: Exit status after SIGTERM, as shells report a process ended by it (128 + 15).
EXIT_SIGTERM = 143

#: Where runs go unless the config says otherwise: ``runs/<name>/version_<n>/``.
DEFAULT_SAVE_DIR = "runs"
DEFAULT_RUN_NAME = "maxclass"

#: The top-level ``--help``: ``evaluate`` and ``gallery`` are parsed before LightningCLI, which does not list them.
DESCRIPTION = (
    "fit: optimize pictures that maximize a classifier's class scores (fit --help). "
    "evaluate: score pictures with a classifier (evaluate --help). "
    "gallery: build a run's web gallery (gallery --help)."
)

TRAINER_DEFAULTS = {
    "max_steps": 200,
    "log_every_n_steps": 10,
    # The module logs its hyperparameters itself, with the optimizer and step count (run_summary).
    "enable_autolog_hparams": False,
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        # No placeholder hp_metric of -1: the module logs the mean target probability as hp_metric.
        "init_args": {"save_dir": DEFAULT_SAVE_DIR, "name": DEFAULT_RUN_NAME, "default_hp_metric": False},
    },
}

#: The seed's optimizer, spelled as a config so that the saved config.yaml shows it.
OPTIMIZER_DEFAULT = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 5.0, "weight_decay": 0.1}}
IMAGE_DEFAULT = {"class_path": "maxclass_lightning.images.PixelImage"}


class _NoAdvertisements(logging.Filter):
    """Drops Lightning's tips to install its cloud services, and its notice that the app's
    ``PeriodicCheckpoint`` takes the place of the Trainer's default checkpoint (by design): they
    say nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not (
            message.startswith("💡 Tip")
            or message.endswith("override existing callbacks passed to Trainer: ModelCheckpoint")
        )


def quiet_lightning() -> None:
    """Silence Lightning messages that describe this app's design, not a problem in the user's run."""
    # The loader yields a few integers per step from the main process: workers would only add
    # startup time, and the length of its iterable dataset is exact with no workers.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*`IterableDataset` has `__len__` defined.*")
    # Raised inside Lightning's own code on this torch release; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    # Every step's work items are the same; what a step does depends only on the step count, which
    # the checkpoint restores: there is nothing in the loader to resume.
    warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable.*")
    # A resumed run writes into a new version folder by design; the checkpoint callback's
    # bookkeeping of the old folder is not needed there.
    warnings.filterwarnings("ignore", message=r".*The dirpath has changed from.*")
    # The frozen classifier is in eval mode on purpose (dropout off for the whole run).
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    for handler in logging.getLogger("lightning.pytorch").handlers:
        if not any(isinstance(f, _NoAdvertisements) for f in handler.filters):
            handler.addFilter(_NoAdvertisements())


class MaxClassCLI(LightningCLI):
    """LightningCLI whose ``model.seed`` follows ``seed_everything``, and whose ``--ckpt_path``
    takes the image-defining settings from the checkpoint (``resume``)."""

    #: The CLI of the run in progress in this process, if any.
    current: MaxClassCLI | None = None

    def __init__(self, *args, **kwargs) -> None:
        MaxClassCLI.current = self  # for main() to say what a run that failed mid-way kept
        self.resume_from: str | None = None
        super().__init__(*args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """``fit`` only: the module optimizes pictures and has no validation, test or predict step.
        LightningCLI builds a parser per subcommand at every start (about 0.2 s each), and would
        list the other three in ``--help`` only for them to fail once started."""
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model.optimizer": OPTIMIZER_DEFAULT, "model.image": IMAGE_DEFAULT})
        self.fit_parser = parser  # fit is the one subcommand: a checkpoint's settings become its defaults

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, take a checkpoint's settings (``--ckpt_path``), then check the values
        (``validation``) before LightningCLI acts on any of them (it seeds next).

        With a checkpoint, its image-defining settings become the defaults and the arguments are
        parsed again: what was not given comes from the checkpoint, what was given and agrees is
        kept, and what contradicts it is a one-line error naming both values. LightningCLI's own
        reading of ``ckpt_path`` would let the checkpoint silently override everything given,
        including settings that may change (``model.batch_size``), so the path is held back from
        it until the classes are built.
        """
        super().parse_arguments(parser, args)
        if self.config.get("subcommand") != "fit":  # built from Python (run=False): no subcommand
            return
        ckpt_path = self.config.fit.ckpt_path
        if ckpt_path is not None and not str(ckpt_path).strip():
            raise ConfigError("ckpt_path is empty; give a checkpoint file to resume from, or leave it out")
        if ckpt_path:
            hparams = resume.read_checkpoint(ckpt_path)["hyper_parameters"]
            self.fit_parser.set_defaults(resume.checkpoint_defaults(hparams))
            super().parse_arguments(parser, args)
            config = yaml.safe_load(parser.dump(self.config, skip_link_targets=False))["fit"]
            resume.check_contradictions(config["model"], config["seed_everything"], hparams, ckpt_path)
            self.resume_from, self.config.fit.ckpt_path = ckpt_path, None
        validation.check(self.config.fit)

    def instantiate_classes(self) -> None:
        """Build the model, callbacks and Trainer; a value their constructors refuse (Lightning's
        own checks of trainer options, torch's of optimizer options) is a one-line usage error."""
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, MisconfigurationException) as error:
            if isinstance(error, ConfigError):
                raise
            reason = " ".join(str(error).split()) or type(error).__name__
            raise ConfigError(f"{reason}; see {PROGRAM} fit --help") from error
        if self.subcommand == "fit":  # before Lightning launches the other processes
            check_strategy(self.trainer.strategy, self.trainer.num_devices * self.trainer.num_nodes)

    def before_instantiate_classes(self) -> None:
        """Checks that need no model, before anything is built or written."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if self.resume_from:
            config.ckpt_path = self.resume_from
        config.model.seed = int(config.seed_everything)
        logger = config.trainer.logger
        save_dir = getattr(getattr(logger, "init_args", None), "save_dir", None) or config.trainer.default_root_dir
        if save_dir:
            check_writable(Path(save_dir))
        if config.trainer.default_root_dir:
            check_writable(Path(config.trainer.default_root_dir), "trainer.default_root_dir")


def check_writable(folder: Path, option: str = "trainer.logger.init_args.save_dir") -> None:
    """Fail early, leaving nothing behind, if ``folder`` cannot be created or written to: its
    nearest existing ancestor must take a (temporary, removed) file."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(existing)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise ConfigError(
            f"{option} is {folder}, which cannot be written ({existing} is not a writable folder); "
            f"give a folder you can write to, e.g. --{option} runs"
        ) from None


def _quiet_full_disk_in_threads(args: threading.ExceptHookArgs) -> None:
    """A background writer (TensorBoard's event thread) that hits a full disk prints nothing: the
    run's own one-line message says what happened and what was kept."""
    if not is_disk_full(args.exc_value):
        threading.__excepthook__(args)


def main(args: list[str] | None = None):
    """Parse ``args`` (default: the command line), run the subcommand; exit 2 on a usage error.

    ``evaluate`` is handled here, beside LightningCLI's ``fit``:
    it scores pictures and needs no Trainer.
    """
    argv = sys.argv[1:] if args is None else args
    quiet_lightning()
    threading.excepthook = _quiet_full_disk_in_threads
    try:
        if argv[:1] == ["evaluate"]:
            return evaluate.main(argv[1:])
        if argv[:1] == ["gallery"]:
            return gallery.main(argv[1:])
        argv = objectives_replace_classes(recipes.resolve_arguments(argv))  # --config quality: the shipped recipe
        if args is None:  # the resolved command line is still the command line (Lightning warns at args=)
            sys.argv[1:] = argv
        parse_errors.check_config_files(argv)
        return MaxClassCLI(
            ClassVisualizer,
            seed_everything_default=0,
            trainer_defaults=TRAINER_DEFAULTS,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False, "description": DESCRIPTION, "prog": PROGRAM},
            auto_configure_optimizers=False,
            args=args if args is None else argv,
        )
    except (ConfigError, ArgumentError, RunError, MisconfigurationException) as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        if isinstance(error, MisconfigurationException):  # Lightning's own checks of trainer options
            error = ConfigError("trainer: " + " ".join(str(error).split()))
        fail(argv, error)
    except SIGTERMException:
        sys.exit(EXIT_SIGTERM)
    except OSError as error:
        if os.environ.get(DEBUG_VARIABLE) or not is_disk_full(error):
            raise
        fail(argv, RunError(disk_full_message(getattr(MaxClassCLI.current, "trainer", None))))


def objectives_replace_classes(argv: list[str]) -> list[str]:
    """``--model.objectives`` on the command line replaces a config's ``model.classes`` (a recipe's
    six classes), unless ``--model.classes`` is given too: giving both stays an error."""
    options = [argument.partition("=")[0] for argument in argv]
    if "--model.objectives" not in options or "--model.classes" in options:
        return argv
    first = options.index("--model.objectives")
    return [*argv[:first], "--model.classes=null", *argv[first:]]
