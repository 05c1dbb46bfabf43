#!/usr/bin/env bash
# Puts `lorabuild` on the PATH: a link to this checkout's bin/lorabuild.js in the first of
# ~/.local/bin, ~/bin, /usr/local/bin that is on the PATH (LORABUILD_BIN_DIR picks another folder),
# using sudo only for /usr/local/bin. Says where, and what to do when that folder is not on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
target="$PWD/bin/lorabuild.js"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="$(command -v sudo || true)"

on_path() { case ":$PATH:" in *":$1:"*) return 0 ;; esac; return 1; }

dir="${LORABUILD_BIN_DIR:-}"
if [ -z "$dir" ]; then
  for candidate in "$HOME/.local/bin" "$HOME/bin" /usr/local/bin; do
    if on_path "$candidate"; then dir="$candidate"; break; fi
  done
  dir="${dir:-$HOME/.local/bin}"
fi

if ! { mkdir -p "$dir" 2>/dev/null && ln -sfn "$target" "$dir/lorabuild" 2>/dev/null; }; then
  if [ -n "$SUDO" ]; then
    $SUDO mkdir -p "$dir" && $SUDO ln -sfn "$target" "$dir/lorabuild"
  else
    echo "setup: cannot write $dir; run lorabuild as: node $target" >&2
    exit 1
  fi
fi

found="$(command -v lorabuild || true)"
if [ "$found" = "$dir/lorabuild" ]; then
  echo "setup: lorabuild is on the PATH: $dir/lorabuild -> $target"
elif [ -n "$found" ]; then
  echo "setup: linked $dir/lorabuild -> $target, but another lorabuild comes first on the PATH: $found" >&2
else
  echo "setup: linked $dir/lorabuild -> $target, but $dir is not on your PATH."
  echo "       Add it (then open a new terminal):  echo 'export PATH=\"$dir:\$PATH\"' >> ~/.bashrc"
  echo "       or run lorabuild as: node $target"
fi
