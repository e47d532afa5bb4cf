"""Local copies of the files the rendered book loads from CDNs, for the browser tests.

The built pages load MathJax, and matplotlib's animations ask for Font Awesome, from
public CDNs. The browser tests must not depend on the network, so they serve the same
files from the npm packages of the same versions, fetched once with ``npm pack`` (the
ordinary npm client) into a cache directory and reused afterwards.

Usage: ``python tools/cdn_assets.py`` prints the cache directory after filling it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile

# CDN URL prefix -> (npm package spec, directory inside the package that the prefix maps to)
CDN_PACKAGES = {
    "https://cdn.jsdelivr.net/npm/mathjax@3/": ("mathjax@3.2.2", ""),
    "https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/":
        ("@jupyter-widgets/html-manager@1.0.6", ""),
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/": ("requirejs@2.3.4", ""),
    "https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/": ("font-awesome@4.4.0", ""),
}
# cdnjs serves require.min.js; the npm package ships only the unminified require.js.
ALIASES = {"require.min.js": "require.js"}


def cache_dir():
    """Where the unpacked packages live (``$FANCYDL_CDN_CACHE`` or ~/.cache)."""
    default = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
    return pathlib.Path(os.environ.get("FANCYDL_CDN_CACHE",
                                       default / "fancy-dl-book" / "cdn"))


def _package_dir(spec):
    return cache_dir() / spec.replace("/", "+")


def ensure_package(spec):
    """Unpack the npm package ``spec`` into the cache (once) and return its directory."""
    target = _package_dir(spec)
    if (target / "package.json").is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is needed once to fetch {spec} for the browser tests")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([npm, "pack", "--silent", spec], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        (tarball,) = pathlib.Path(tmp).glob("*.tgz")
        unpacked = pathlib.Path(tmp) / "unpacked"
        with tarfile.open(tarball) as archive:
            archive.extractall(unpacked, filter="data")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(unpacked / "package"), target)
    return target


def local_file(url):
    """The cached file that serves ``url``, or None when no CDN package covers it."""
    for prefix, (spec, subdir) in CDN_PACKAGES.items():
        if url.startswith(prefix):
            relative = url[len(prefix):].split("?")[0].split("#")[0]
            path = ensure_package(spec) / subdir / relative
            if not path.is_file() and path.name in ALIASES:
                path = path.with_name(ALIASES[path.name])
            return path if path.is_file() else None
    return None


def main():
    for spec, _ in CDN_PACKAGES.values():
        print(ensure_package(spec))


if __name__ == "__main__":
    main()
