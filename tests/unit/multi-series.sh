# shellcheck shell=bash
# Sourced by tests/unit/tools.sh and submission-kit.sh: a QEMU queue of
# three series, made from the project's one. multi_series DIR makes, from
# work/qemu (DIH_WORK) and the project's tools and patches:
#   DIR/work/qemu  a clone of work/qemu (tag 'base' and the N commits of
#                  the queue; work/ itself is not changed), in which the
#                  first two commits, the fixes, carry 'Cc: qemu-stable@nongnu.org'
#                  and no other commit does
#   DIR/copy       tools/ and patches/ of the project, whose patches/qemu
#                  has a series file naming three series and no patch:
#                      series fixes 1 stable    (to be patches 1-2)
#                      series retry 2           (3 to N-1)
#                      series early 1           (N)
#                  and a cover letter for each
# Then DIH_WORK=DIR/work DIR/copy/tools/pq export qemu --counts 2,N-3,1
# writes the three series (multi_series_export DIR does). Fails when a
# step fails.

multi_series_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

multi_series() { # DIR
    local dir=$1 t=$1/work/qemu top=$multi_series_top parent c i=0 msg q
    mkdir -p "$dir/copy" "$dir/work" &&
        cp -a "$top/tools" "$top/patches" "$dir/copy/" &&
        git clone -q --shared "${DIH_WORK:-$top/work}/qemu" "$t" || return 1
    # The commits again, on the same trees, with the same authors and
    # dates; the first two with the stable list in Cc.
    parent=$(git -C "$t" rev-parse base) || return 1
    for c in $(git -C "$t" rev-list --reverse base..HEAD); do
        i=$((i + 1))
        msg=$(git -C "$t" log -1 --format=%B "$c") || return 1
        msg=$(grep -vxF "Cc: qemu-stable@nongnu.org" <<<"$msg")
        if [ $i -le 2 ]; then
            msg=$(git -C "$t" interpret-trailers \
                      --trailer "Cc: qemu-stable@nongnu.org" <<<"$msg") || return 1
        fi
        parent=$(GIT_AUTHOR_NAME=$(git -C "$t" log -1 --format=%an "$c") \
                 GIT_AUTHOR_EMAIL=$(git -C "$t" log -1 --format=%ae "$c") \
                 GIT_AUTHOR_DATE=$(git -C "$t" log -1 --format=%aD "$c") \
                 GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@example.org \
                 git -C "$t" commit-tree "$c^{tree}" -p "$parent" <<<"$msg") ||
            return 1
    done
    git -C "$t" reset -q --hard "$parent" || return 1
    q=$dir/copy/patches/qemu
    # The project's other series go; retry keeps its cover letter.
    for c in "$q"/*/; do
        [ "$(basename "$c")" = retry ] || rm -rf "$c" || return 1
    done
    printf '%s\n' '# three series' 'series fixes 1 stable' 'series retry 2' \
        'series early 1' > "$q/series" &&
        mkdir -p "$q/fixes" "$q/early" || return 1
    cat > "$q/fixes/cover-letter.txt" <<'EOF' || return 1
Subject: block: two fixes that retrying failed requests needs

The iSCSI driver reports a reservation conflict as EBADE, and virtio-blk
restores the header iovecs of a request it queues for a restart.  Both
are for stable.
EOF
    cat > "$q/early/cover-letter.txt" <<'EOF'
Subject: hw/block: retry held requests at once when another succeeds

This ends the wait of held requests once the storage is back.
EOF
}

multi_series_export() { # DIR
    local n
    n=$(git -C "$1/work/qemu" rev-list --count base..HEAD) || return 1
    DIH_WORK=$1/work "$1/copy/tools/pq" export qemu --counts "2,$((n - 3)),1"
}
