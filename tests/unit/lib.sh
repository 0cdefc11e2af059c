# shellcheck shell=bash
# What the project's unit test scripts share (sourced): each check is one
# 'expect DESCRIPTION COMMAND...', which prints "ok   DESCRIPTION" or
# "FAIL DESCRIPTION" and remembers a failure in $fail; a script ends with
# 'exit $fail'. COMMAND is one command: a condition of several parts is
# one of the helpers below (or a function), never 'expect ... && ...',
# whose second half expect would not see.

fail=0
expect() { # description command...
    local what=$1; shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
# The command fails.
not() { ! "$@"; }
# TEXT contains STRING (fixed string).
has() { grep -qF -- "$2" <<<"$1"; } # text string
# No line of the input (grep's arguments) matches.
not_grep() { ! grep -q "$@"; }
# A command that exited RC failed, and its output TEXT says STRING.
refused() { [ "$1" != 0 ] && has "$3" "$2"; } # rc string text
# A command that exited RC succeeded, and its output TEXT says STRING.
succeeded() { [ "$1" = 0 ] && has "$3" "$2"; } # rc string text
