"""A filesystem that a test turns read-only and back while files on it stay open:
``python -m tests.toggle_fs SOURCE MOUNTPOINT`` mounts SOURCE (FUSE, passthrough) at
MOUNTPOINT until it is unmounted; it is read-only while the file ``SOURCE.ro`` exists.

The kernel refuses ``mount -o remount,ro`` while a file is open for writing (EBUSY), and
a results database always is; here the filesystem itself answers as a read-only one
does: every change (a write to an open file, a new file, truncate, unlink, rename,
fsync) fails with EROFS, opening a file for writing fails with EROFS, and statfs says
ST_RDONLY. Reads keep working.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any

import mfusepy as fuse

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class ToggleFs(fuse.Operations):
    use_ns = True

    def __init__(self, root: str) -> None:
        self.root = root
        self.flag = root.rstrip("/") + ".ro"

    @property
    def read_only(self) -> bool:
        return os.path.exists(self.flag)

    def _path(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _writable(self) -> None:
        if self.read_only:
            raise fuse.FuseOSError(errno.EROFS)

    # -- reads ---------------------------------------------------------------------------

    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        st = os.lstat(self._path(path))
        out = {k: getattr(st, k) for k in ("st_gid", "st_mode", "st_nlink", "st_size", "st_uid")}
        for k in ("st_atime", "st_ctime", "st_mtime"):
            out[k] = getattr(st, k + "_ns")  # (use_ns: times in ns)
        return out

    def readdir(self, path: str, fh: Any) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK:
            self._writable()
        if not os.access(self._path(path), amode):
            raise fuse.FuseOSError(errno.EACCES)
        return 0

    def open(self, path: str, flags: int) -> int:
        if flags & WRITE_FLAGS:
            self._writable()
        return os.open(self._path(path), flags)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(fh, size, offset)

    def statfs(self, path: str) -> dict[str, Any]:
        st = os.statvfs(self._path(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files")
        out = {k: getattr(st, k) for k in (*keys, "f_frsize", "f_namemax")}
        out["f_flag"] = os.ST_RDONLY if self.read_only else 0
        return out

    def release(self, path: str, fh: int) -> int:
        os.close(fh)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    # -- changes -------------------------------------------------------------------------

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._writable()
        return os.open(self._path(path), os.O_RDWR | os.O_CREAT, mode)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._writable()
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        self._writable()
        os.truncate(self._path(path), length)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        self._writable()
        os.fsync(fh)
        return 0

    def unlink(self, path: str) -> int:
        self._writable()
        os.unlink(self._path(path))
        return 0

    def rename(self, old: str, new: str) -> int:
        self._writable()
        os.rename(self._path(old), self._path(new))
        return 0

    def mkdir(self, path: str, mode: int) -> int:
        self._writable()
        os.mkdir(self._path(path), mode)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        self._writable()
        os.chmod(self._path(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        self._writable()
        os.chown(self._path(path), uid, gid)
        return 0

    def utimens(self, path: str, times: Any = None) -> int:
        self._writable()
        os.utime(self._path(path), ns=times)
        return 0


def main() -> None:
    source, mountpoint = sys.argv[1], sys.argv[2]
    fuse.FUSE(ToggleFs(source), mountpoint, foreground=True, nothreads=False)


if __name__ == "__main__":
    main()
