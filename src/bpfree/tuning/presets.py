"""TOML presets (`hparams/*.toml`): a [search] table of search settings and a [space] table of hparam values.

Read defensively: a preset is a short UTF-8 TOML file, so anything else (a directory, a FIFO or device, a
file over `MAX_PRESET_BYTES`, bad UTF-8, bad TOML, unknown tables) is refused in one line naming the file,
before anything else runs.
"""

import errno
import os
import stat
import tomllib

from bpfree import checks
from bpfree.tuning.space import SpaceError

# A preset larger than this is refused unread: presets are a few dozen lines.
MAX_PRESET_BYTES = 1 << 20


def load_preset(path):
    """({search settings}, {space}) from a TOML preset: a regular file of at most MAX_PRESET_BYTES (a
    device, a FIFO or a huge file is refused before it is read, with one line)."""
    try:
        data = tomllib.loads(_read_preset(path).decode("utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"Hparams file {path!r} does not exist.") from None
    except OSError as e:  # a directory, no permission, ...
        raise SpaceError(f"Hparams file {path!r} cannot be read: {e.strerror or e}.") from None
    except UnicodeDecodeError as e:
        raise SpaceError(f"Hparams file {path!r} is not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at "
                         f"offset {e.start}); TOML presets must be UTF-8.") from None
    except RecursionError:
        raise SpaceError(f"Hparams file {path!r} nests too deeply to be read; a preset has a [search] and a "
                         "[space] table of flat values and lists.") from None
    except tomllib.TOMLDecodeError as e:
        raise SpaceError(f"Hparams file {path!r} is not valid TOML: {e}") from None
    unknown = set(data) - {"search", "space"}
    if unknown:
        checks.choice(f"table in hparams file {path!r}:", sorted(unknown)[0], ("search", "space"), error=SpaceError)
    for table in ("search", "space"):
        if not isinstance(data.get(table, {}), dict):
            raise SpaceError(f"Hparams file {path!r}: {table} = {data[table]!r} is not a table; write it as "
                             f"[{table}] followed by name = value lines.")
    return dict(data.get("search", {})), dict(data.get("space", {}))


def _read_preset(path):
    """The bytes of the preset at `path`, opened without blocking (a FIFO without a writer) and read only
    if it is a regular file of at most MAX_PRESET_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "Is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise SpaceError(f"Hparams file {path!r} is not a regular file (a device, FIFO or socket); a preset is a "
                             "TOML file.")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_PRESET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PRESET_BYTES:
        raise SpaceError(f"Hparams file {path!r} is larger than {MAX_PRESET_BYTES // 1024} KiB; a preset is a short "
                         "TOML file of a [search] and a [space] table.")
    return data
