"""Build cysync's C extension (cext/ + src/cysync/_cysync.pyx).

Environment:
  CYSYNC_NO_EXTENSIONS=1  install the pure-Python package only
  CYSYNC_PARK_FALLBACK=1  park on the portable mutex+condvar buckets instead of
                          the OS's wait-on-address (to test that path anywhere)
  CYSYNC_DEBUG_BUILD=1    -O0 -g with C assertions on
"""

import os
import sys
from glob import glob

from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


def extensions():
    if _flag("CYSYNC_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    macros = []
    compile_args = []
    libraries = []
    if _flag("CYSYNC_PARK_FALLBACK"):
        macros.append(("CY_PARK_FALLBACK", "1"))
    if sys.platform == "win32":
        compile_args += ["/std:c11", "/experimental:c11atomics"]
        libraries.append("Synchronization")
    elif _flag("CYSYNC_DEBUG_BUILD"):
        compile_args += ["-O0", "-g", "-UNDEBUG"]
    ext = Extension(
        "cysync._cysync",
        sources=["src/cysync/_cysync.pyx", *sorted(glob("cext/*.c"))],
        include_dirs=["cext"],
        define_macros=macros,
        extra_compile_args=compile_args,
        libraries=libraries,
    )
    return cythonize(
        [ext],
        compiler_directives={
            "language_level": "3",
            "freethreading_compatible": True,
            "binding": False,
        },
    )


setup(ext_modules=extensions())
