# shellcheck shell=bash
# Part of a transfer job script: Ironcrest writes the job's values (each one quoted word)
# above this text. Checked by shellcheck in scripts/test.
fail() { code=$1; shift; echo "Unable to $*" >&2; exit "$code"; }
