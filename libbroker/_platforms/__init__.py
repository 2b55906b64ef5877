"""Platform search policies as pure functions, one module per platform.

Each module (`_windows`, `_macos`; Linux's ld.so rules live in `libbroker._closure`)
answers, from facts passed in (directories, environment, the loading image's
load commands), which file names a link name may have, where the platform's
loader would look and in which order, and how a dependency named in a binary
resolves. Nothing here touches the file system unless a function says so, so
every rule is tested on Linux against a fake directory tree.
"""
