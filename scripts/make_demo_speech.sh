#!/usr/bin/env bash
# Recipe of the bundled demo speech, src/emoportrait/data/demo_speech.flac (already
# committed; rerun only to change it). Needs Debian's espeak-ng and sox.
set -euo pipefail
cd "$(dirname "$0")/.."
text="Hello! I am an astronaut, and today I am talking to you from a single photograph."
tmp=$(mktemp --suffix=.wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us+f3 -s 150 -p 55 -w "$tmp" "$text"
# 16 kHz mono, a quarter second of silence at each end, normalised to -3 dBFS
sox "$tmp" -r 16000 -c 1 -b 16 src/emoportrait/data/demo_speech.flac pad 0.25 0.25 norm -3
