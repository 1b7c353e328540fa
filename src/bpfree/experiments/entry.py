"""The one command line of the experiment scripts: flags from a frozen config, then a run.

    @dataclasses.dataclass(frozen=True)
    class LagLineConfig:
        model: str = entry.flag("gle", "Student: gle | bp | ...")   # a flag
        dt: float = 0.01                                             # not a flag
        def __post_init__(self): ...                                 # ValueError on bad values

    sys.exit(entry.main(LagLineConfig, run, exp_dir="data/lagline", doc=__doc__))

Every field of the config dataclass made with `flag` becomes a flag of the field's type (str, int,
float, bool) with the field's default; ``--exp_dir`` and ``--verbose`` are added. Exit codes:

- 0: the run finished;
- 2: bad input, before anything runs: a flag that does not parse, a stray argument, or a config that
  refuses its values (`ValueError`, `bpfree.checks`); or data the run cannot find or read
  (`bpfree.datasets.errors.DatasetError`, raised before it writes anything); one line ``error: …`` on stderr;
- 3: a crash during the run, with its traceback.

``--help`` prints the script's docstring and its flags. The flags live in a `FlagValues` of their own,
so `main` can be called more than once in a process.
"""

import dataclasses
import sys
import traceback

from absl import flags

EXIT_OK, EXIT_BAD_INPUT, EXIT_CRASH = 0, 2, 3
HELP = ("-h", "--help", "--helpshort", "--helpfull")
_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool}


def flag(default, help_text):
    """A config field with `default` that is also a command-line flag described by `help_text`."""
    return dataclasses.field(default=default, metadata={"flag": help_text})


def flag_fields(config_class):
    """The config's fields made with `flag`, in order."""
    return [field for field in dataclasses.fields(config_class) if "flag" in field.metadata]


def define_flags(config_class, exp_dir):
    """A fresh `FlagValues` with one flag per `flag` field (its type and default), ``--exp_dir`` and ``--verbose``."""
    values = flags.FlagValues()
    for field in flag_fields(config_class):
        _DEFINE[field.type](field.name, field.default, field.metadata["flag"], flag_values=values)
    flags.DEFINE_string("exp_dir", exp_dir, "Experiment directory (records, figures).", flag_values=values)
    flags.DEFINE_bool("verbose", False, "Show TensorFlow's start-up messages and absl/TensorFlow warnings "
                      "(read before TensorFlow loads: bpfree.console).", flag_values=values)
    return values


def main(config_class, run, *, exp_dir, argv=None, doc=""):
    """Parses `argv` (default sys.argv), builds `config_class(**flags)` and calls `run(config, exp_dir)`;
    returns the exit code (module docstring)."""
    argv = list(sys.argv if argv is None else argv)
    values = define_flags(config_class, exp_dir)
    if any(arg in HELP for arg in argv[1:]):
        print(f"{doc.strip()}\n\nflags:\n{values.get_help()}")
        return EXIT_OK
    try:
        rest = values(argv)
        if len(rest) > 1:
            raise ValueError(f"unexpected arguments {' '.join(rest[1:])!r}")
        config = config_class(**{field.name: values[field.name].value for field in flag_fields(config_class)})
    except (flags.Error, ValueError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from bpfree.datasets.errors import DatasetError

    try:
        run(config, values.exp_dir)
    except DatasetError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:
        traceback.print_exc()
        return EXIT_CRASH
    return EXIT_OK


def _one_line(error):
    return " ".join(str(error).split())
