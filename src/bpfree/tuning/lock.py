"""One search per experiment: an exclusive, non-blocking lock on a file in the project directory.

`fcntl.flock` is released by the kernel when the process dies, so a search killed with SIGKILL never
leaves a stale lock behind.
"""

import fcntl
import os
import stat


class ExperimentLocked(RuntimeError):
    pass


class ExperimentLock:
    def __init__(self, directory):
        self.path = os.path.join(directory, ".search.lock")
        self._file = None

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        # Never through a link (in a shared directory another user could point it at any file the search
        # may write, which the pid below would overwrite), and only a regular file.
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o666)
        except OSError as e:
            raise ExperimentLocked(f"Cannot use the lock file {self.path}: {e.strerror} (a symbolic link is refused: "
                                   "remove it).") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ExperimentLocked(f"The lock file {self.path} is not a regular file; remove it.")
        self._file = os.fdopen(fd, "r+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise ExperimentLocked(
                f"Another search is running on {os.path.dirname(self.path)} (pid {holder}); wait for it or stop it."
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(str(os.getpid()))
        self._file.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
