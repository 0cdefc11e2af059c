/*
 * dih-probe: guest I/O probe for the disk I/O hang end-to-end tests.
 *
 * Run as /init of an initramfs (PID 1) it mounts /proc, /sys and /dev,
 * loads the kernel modules listed in /modules (one path per line, in
 * order), then exercises the disks named on the kernel command line and
 * powers the guest off. Run as an ordinary program it exercises the files
 * or devices given as arguments, which is how the unit tests drive it.
 *
 * Every I/O is O_DIRECT, one block. Each block carries a header (magic,
 * block number, generation) and a pattern derived from it, so a read
 * verifies exactly what was written. The probe remembers, per block, the
 * generation of the last write the disk acknowledged and of a later write
 * that failed (whose data the disk may or may not hold): a read must return
 * one of the two. On each disk, depth workers keep one I/O each in flight,
 * worker i owning blocks i, i + depth, i + 2 depth...: a pass is all of
 * them writing their blocks, then all reading theirs back.
 *
 * Log format: one line per event on stdout (the serial console as PID 1),
 * fields separated by single spaces, NAME=VALUE after the first two words.
 * Every line is written by one of the log_*() functions below, whose
 * format strings the compiler checks against their arguments. The forms
 * below and the parameters further down are defined once, in
 * tests/dih/probe.py (FORMS, TOKENS, PARAMS), which parses exactly these
 * lines; the probe unit test checks this header and set_param() against
 * it. NAME: a device name, N: a number, SECONDS: seconds with 6
 * decimals, MS: milliseconds with 3, ERRNO: an errno name, KEY: a key in
 * hex (0x...), LEVEL: 0 to 7. Each line is one write(2),
 * so the lines of concurrent workers, disks and kernel messages interleave
 * only as whole lines.
 *
 *   DIH start
 *       PID 1 only: /init runs.
 *   DIH disk dev=NAME
 *       NAME is there and is being exercised; its I/O lines follow.
 *   DIH io dev=NAME op=write|read blk=N t=SECONDS lat_ms=MS res=ok|ERRNO
 *       one I/O: t is its start in seconds since the probe started (the
 *       guest's clock), lat_ms how long it took, res "ok" or the error's
 *       name (EIO, ENOSPC, EBADE for a reservation conflict, ...). A
 *       short transfer counts as EIO. Logged when the I/O completes: with
 *       depth > 1 in completion order.
 *   DIH timeout dev=NAME seconds=N
 *       PID 1 only, with scsi_timeout: NAME's SCSI command timeout is now
 *       N seconds. Where NAME has none (virtio-blk), a warning instead.
 *   DIH pr dev=NAME op=register|reserve|read_keys|read_reservation res=ok|ERRNO|STATUS
 *       one SCSI PERSISTENT RESERVE command sent through SG_IO, before
 *       NAME's I/O; res is "ok", the errno name of SG_IO itself (ENOTTY
 *       on a file), or STATUS: the host status (DID_TIME_OUT, ...), or the
 *       SCSI status (RESERVATION_CONFLICT, ...), with the sense key for
 *       CHECK_CONDITION (CHECK_CONDITION/ILLEGAL_REQUEST). A UNIT ATTENTION is retried.
 *       The I/O goes on whatever the result.
 *   DIH prin dev=NAME keys=none|KEY[,KEY]... holder=none|KEY type=N
 *       with pr_read, after both reads succeeded: the registered keys, the
 *       reservation's key and type (0 when there is none).
 *   DIH reader dev=NAME t=SECONDS lat_ms=MS res=ok|ERRNO
 *       with reader_ms, a read of NAME's reader (see below): its first one,
 *       and then each one whose result differs from the one before.
 *   DIH reset dev=NAME t=SECONDS lat_ms=MS res=ok|ERRNO
 *       with scsi_reset, one reset of NAME's SCSI device (SG_SCSI_RESET,
 *       SG_SCSI_RESET_DEVICE), t when it was asked for, lat_ms how long
 *       the ioctl took; res "ok" or the ioctl's error (ENOTTY on a file or
 *       a virtio-blk disk).
 *   DIH bad dev=NAME blk=N pass=N
 *       a successful read returned data other than the last acknowledged
 *       write of that block (or a later failed one).
 *   DIH pass dev=NAME pass=N writes=N reads=N errors=N verified=N bad=N unknown=N
 *       after each pass over the blocks: the counts so far on NAME, summed
 *       over its workers.
 *   DIH summary dev=NAME writes=N reads=N errors=N verified=N bad=N unknown=N
 *       the final counts on NAME. errors: failed I/Os; verified: reads
 *       that returned the expected data; bad: reads that did not;
 *       unknown: successful reads of a block that no acknowledged write
 *       had reached yet (its data cannot be checked).
 *   DIH error MESSAGE
 *       NAME could not be exercised, or a parameter is unknown or invalid
 *       (the run then ends with rc 2).
 *   DIH warning MESSAGE
 *       something the run survives (an unloadable module, a disk without
 *       a SCSI command timeout to set).
 *   DIH kmsg t=SECONDS level=LEVEL MESSAGE
 *       PID 1 only, with kmsg: a message of the kernel's log (from the
 *       probe's start on, whatever the console loglevel). t is when the
 *       probe read it, on the clock of the io lines' t (a few ms after the
 *       kernel logged it; the kernel's own timestamps are tens of ms off
 *       that clock); level its priority, 0 (emergency) to 7 (debug).
 *   DIH done rc=N
 *       the end: rc 0 when no I/O failed and every read verified.
 *
 * Parameters (kernel command line as dih.NAME=VALUE, or --NAME=VALUE):
 *   disks    comma-separated device names under /dev (PID 1 only)
 *   blocks   blocks per pass (default 64)
 *   bs       block size in bytes, a multiple of 4096 (default 4096)
 *   passes   passes over the blocks (default 1); 0: until the guest is
 *            stopped from outside
 *   seconds  instead of passes: keep passing until this many seconds
 *   pause_ms pause after each I/O, in each worker (default 0)
 *   mode     rw (write, then read back), read (verify only, the data of
 *            generation 0 written by an earlier run), write (write only)
 *   wait     seconds to wait for each device to appear (default 30)
 *   depth    I/Os in flight per disk, 1 to 64 (default 1)
 *   parallel 1: exercise all disks at the same time, 0: one after another,
 *            in the order given (default 0)
 *   pr       a reservation key (hex, not 0): on each disk, before its I/O,
 *            PERSISTENT RESERVE OUT REGISTER the key, then RESERVE (Write
 *            Exclusive) with it
 *   pr_read  1: then log the registered keys and the reservation (default 0)
 *   kmsg     1: log the kernel's messages (PID 1 only; default 0)
 *   scsi_timeout  seconds: set each disk's SCSI command timeout before its
 *            I/O (PID 1 only; default: the kernel's)
 *   reader_ms  N: on each disk, while its workers run, a reader reads the
 *            block after the workers' last (blocks) every N ms, one read
 *            at a time, without checking its data. Its reads are not in
 *            the counts and do not change rc: the errors of a disk that
 *            reports read errors during an outage are expected. (default
 *            0: none)
 *   scsi_reset  N: on each disk, while its workers run, reset its SCSI
 *            device every N seconds, the first time N seconds after its
 *            workers start (PID 1 or not; default 0: never)
 * An unknown name or a bad value is refused: exit 2, or on the kernel
 * command line a "DIH error" line for each, then "DIH done rc=2" before
 * any I/O.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <scsi/sg.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x4449482d50524f42ULL /* "DIH-PROB" */
/* No write of this block: no generation is expected. */
#define GEN_NONE UINT64_MAX
#define MAX_DEPTH 64
/* As many as dih.disks can name. */
#define MAX_DISKS 128
#define PR_KEYS 32
#define PR_TIMEOUT_MS 60000

struct params {
    char disks[256];
    long blocks;
    long bs;
    long passes;
    double seconds;
    long pause_ms;
    char mode[16];
    long wait;
    long depth;
    long parallel;
    uint64_t pr_key; /* 0: none */
    long pr_read;
    long kmsg;
    long scsi_timeout; /* 0: the kernel's */
    long reader_ms; /* 0: no reader */
    long scsi_reset; /* seconds; 0: no resets */
};

struct stats {
    long writes, reads, errors, verified, bad, unknown;
};

/* What a block may hold: the generation of its last acknowledged write,
 * and of a write that failed after it. */
struct block_state {
    uint64_t acked;
    uint64_t failed;
};

/* A disk being exercised by its workers, which take turns at a barrier:
 * one of them ends a pass and decides whether another one runs. */
struct disk {
    const char *dev;
    const struct params *p;
    int fd;
    double deadline;
    struct block_state *blocks;
    struct worker *workers;
    pthread_barrier_t barrier;
    long pass;
    bool more;
};

/* A worker: blocks first, first + depth, ... of its disk. */
struct worker {
    struct disk *d;
    long first;
    unsigned char *buf, *want;
    struct stats st;
};

/* A thread beside a disk's workers that does one thing every period_ms
 * until the workers are done. */
struct beside {
    struct disk *d;
    long period_ms;
    void (*tick)(struct beside *b);
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    unsigned char *buf; /* the reader's, NULL for the resetter */
    int last; /* the reader's last result, -1 before its first read */
};

/* A disk of the command line, exercised in a thread of its own with
 * parallel. */
struct job {
    const char *path, *dev;
    const struct params *p;
    pthread_t thread;
    int rc;
};

static struct timespec t0;
/* Held by the kmsg thread while it logs a message, and by the end of the
 * run for good: done is the last line. */
static pthread_mutex_t kmsg_lock = PTHREAD_MUTEX_INITIALIZER;

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line, in one write: the lines of concurrent threads never mix. */
static void
say(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    while (write(STDOUT_FILENO, line, n) < 0 && errno == EINTR)
        ;
}

/* The log lines of the format documented above, one function each. */

static void
log_start(void)
{
    say("DIH start\n");
}

static void log_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void log_warning(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* "DIH error MESSAGE" or "DIH warning MESSAGE". */
static void
log_message(const char *kind, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    say("DIH %s %s\n", kind, msg);
}

static void
log_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_message("error", fmt, ap);
    va_end(ap);
}

static void
log_warning(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_message("warning", fmt, ap);
    va_end(ap);
}

static void
log_disk(const char *dev)
{
    say("DIH disk dev=%s\n", dev);
}

static void
log_io(const char *dev, bool write, long blk, double start, double lat_ms,
       int err)
{
    say("DIH io dev=%s op=%s blk=%ld t=%.6f lat_ms=%.3f res=%s\n",
        dev, write ? "write" : "read", blk, start, lat_ms,
        err ? strerrorname_np(err) : "ok");
}

static void
log_timeout(const char *dev, long seconds)
{
    say("DIH timeout dev=%s seconds=%ld\n", dev, seconds);
}

static void
log_pr(const char *dev, const char *op, const char *res)
{
    say("DIH pr dev=%s op=%s res=%s\n", dev, op, res);
}

static void
log_prin(const char *dev, const char *keys, const char *holder, int type)
{
    say("DIH prin dev=%s keys=%s holder=%s type=%d\n", dev, keys, holder,
        type);
}

static void
log_beside(const char *what, const char *dev, double start, double lat_ms,
           int err)
{
    say("DIH %s dev=%s t=%.6f lat_ms=%.3f res=%s\n", what, dev, start,
        lat_ms, err ? strerrorname_np(err) : "ok");
}

static void
log_bad(const char *dev, long blk, long pass)
{
    say("DIH bad dev=%s blk=%ld pass=%ld\n", dev, blk, pass);
}

static void
log_counts(const char *what, const char *dev, long pass,
           const struct stats *st)
{
    if (pass >= 0)
        say("DIH %s dev=%s pass=%ld writes=%ld reads=%ld errors=%ld "
            "verified=%ld bad=%ld unknown=%ld\n", what, dev, pass, st->writes,
            st->reads, st->errors, st->verified, st->bad, st->unknown);
    else
        say("DIH %s dev=%s writes=%ld reads=%ld errors=%ld verified=%ld "
            "bad=%ld unknown=%ld\n", what, dev, st->writes, st->reads,
            st->errors, st->verified, st->bad, st->unknown);
}

static void
log_kmsg(double t, int level, const char *msg)
{
    say("DIH kmsg t=%.6f level=%d %s\n", t, level, msg);
}

static void
log_done(int rc)
{
    say("DIH done rc=%d\n", rc);
}

/* The end of the run: as PID 1, power the guest off. */
static void __attribute__((noreturn))
finish(int rc)
{
    pthread_mutex_lock(&kmsg_lock);
    log_done(rc);
    if (getpid() != 1)
        exit(rc);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

static int
parse_long(const char *val, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
parse_key(const char *val, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (!isxdigit((unsigned char)val[0]))
        return -1;
    errno = 0;
    v = strtoull(val, &end, 16);
    if (errno || *end || v == 0)
        return -1;
    *out = v;
    return 0;
}

static int
set_param(struct params *p, const char *name, const char *val)
{
    char *end;

    if (strcmp(name, "disks") == 0) {
        snprintf(p->disks, sizeof(p->disks), "%s", val);
        return 0;
    }
    if (strcmp(name, "mode") == 0) {
        if (strcmp(val, "rw") && strcmp(val, "read") && strcmp(val, "write"))
            return -1;
        snprintf(p->mode, sizeof(p->mode), "%s", val);
        return 0;
    }
    if (strcmp(name, "seconds") == 0) {
        double v;

        errno = 0;
        v = strtod(val, &end);
        if (errno || end == val || *end || !(v >= 0))
            return -1;
        p->seconds = v;
        return 0;
    }
    if (strcmp(name, "blocks") == 0)
        return parse_long(val, 0, LONG_MAX, &p->blocks);
    if (strcmp(name, "bs") == 0)
        return parse_long(val, 0, LONG_MAX, &p->bs);
    if (strcmp(name, "passes") == 0)
        return parse_long(val, 0, LONG_MAX, &p->passes);
    if (strcmp(name, "pause_ms") == 0)
        return parse_long(val, 0, LONG_MAX, &p->pause_ms);
    if (strcmp(name, "wait") == 0)
        return parse_long(val, 0, LONG_MAX, &p->wait);
    if (strcmp(name, "depth") == 0)
        return parse_long(val, 1, MAX_DEPTH, &p->depth);
    if (strcmp(name, "scsi_timeout") == 0)
        return parse_long(val, 1, INT32_MAX, &p->scsi_timeout);
    if (strcmp(name, "reader_ms") == 0)
        return parse_long(val, 0, INT32_MAX, &p->reader_ms);
    if (strcmp(name, "scsi_reset") == 0)
        return parse_long(val, 0, INT32_MAX, &p->scsi_reset);
    if (strcmp(name, "parallel") == 0)
        return parse_long(val, 0, 1, &p->parallel);
    if (strcmp(name, "pr_read") == 0)
        return parse_long(val, 0, 1, &p->pr_read);
    if (strcmp(name, "kmsg") == 0)
        return parse_long(val, 0, 1, &p->kmsg);
    if (strcmp(name, "pr") == 0)
        return parse_key(val, &p->pr_key);
    return -1;
}

static void
fill(unsigned char *buf, long bs, uint64_t blk, uint64_t gen)
{
    uint64_t x = blk * 0x9E3779B97F4A7C15ULL ^ (gen + 1) * 0xC2B2AE3D27D4EB4FULL;
    uint64_t *w = (uint64_t *)buf;
    long i;

    w[0] = MAGIC;
    w[1] = blk;
    w[2] = gen;
    for (i = 3; i < bs / 8; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w[i] = x;
    }
}

static int
do_io(int fd, const char *dev, bool write, long blk, long bs,
      unsigned char *buf, struct stats *st)
{
    double start = now();
    ssize_t r;
    int err = 0;

    if (write)
        r = pwrite(fd, buf, bs, (off_t)blk * bs);
    else
        r = pread(fd, buf, bs, (off_t)blk * bs);
    if (r < 0)
        err = errno;
    else if (r != bs)
        err = EIO;
    if (write)
        st->writes++;
    else
        st->reads++;
    if (err)
        st->errors++;
    log_io(dev, write, blk, start, (now() - start) * 1000, err);
    return err;
}

static void
pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    if (ms > 0)
        nanosleep(&ts, NULL);
}

/* Does buf hold the data of generation gen of block blk? */
static bool
holds(const unsigned char *buf, unsigned char *want, long bs, long blk,
      uint64_t gen)
{
    if (gen == GEN_NONE)
        return false;
    fill(want, bs, blk, gen);
    return memcmp(buf, want, bs) == 0;
}

/* Check what a successful read of blk returned against what the block may
 * hold, and learn from it. */
static void
verify(const char *dev, long blk, long pass, const unsigned char *buf,
       unsigned char *want, long bs, struct block_state *b, struct stats *st)
{
    if (holds(buf, want, bs, blk, b->acked)) {
        /* The failed write did not reach the disk. */
        b->failed = GEN_NONE;
        st->verified++;
    } else if (holds(buf, want, bs, blk, b->failed)) {
        /* It did: that is now what the block holds. */
        b->acked = b->failed;
        b->failed = GEN_NONE;
        st->verified++;
    } else if (b->acked == GEN_NONE) {
        st->unknown++;
    } else {
        st->bad++;
        log_bad(dev, blk, pass);
    }
}

static uint64_t
get_be(const unsigned char *p, int len)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < len; i++)
        v = v << 8 | p[i];
    return v;
}

/* The sense key of fixed or descriptor format sense data, or -1. */
static int
sense_key(const unsigned char *sb, int len)
{
    if (len >= 3 && (sb[0] & 0x7e) == 0x70)
        return sb[2] & 0xf;
    if (len >= 2 && (sb[0] & 0x7e) == 0x72)
        return sb[1] & 0xf;
    return -1;
}

/* Send one SCSI command through SG_IO; res: its result as logged. */
static bool
scsi_cmd(int fd, unsigned char *cdb, int dir, void *data, unsigned len,
         char *res, size_t res_len)
{
    static const char *const hosts[] = {
        NULL, "DID_NO_CONNECT", "DID_BUS_BUSY", "DID_TIME_OUT",
        "DID_BAD_TARGET", "DID_ABORT", "DID_PARITY", "DID_ERROR",
        "DID_RESET", "DID_BAD_INTR", "DID_PASSTHROUGH", "DID_SOFT_ERROR",
        "DID_IMM_RETRY", "DID_REQUEUE", "DID_TRANSPORT_DISRUPTED",
        "DID_TRANSPORT_FAILFAST", "DID_TARGET_FAILURE", "DID_NEXUS_FAILURE",
        "DID_ALLOC_FAILURE", "DID_MEDIUM_ERROR", "DID_TRANSPORT_MARGINAL",
    };
    static const char *const keys[16] = {
        "NO_SENSE", "RECOVERED_ERROR", "NOT_READY", "MEDIUM_ERROR",
        "HARDWARE_ERROR", "ILLEGAL_REQUEST", "UNIT_ATTENTION", "DATA_PROTECT",
        "BLANK_CHECK", "VENDOR_SPECIFIC", "COPY_ABORTED", "ABORTED_COMMAND",
        "EQUAL", "VOLUME_OVERFLOW", "MISCOMPARE", "COMPLETED",
    };
    static const struct { int status; const char *name; } statuses[] = {
        { 0x02, "CHECK_CONDITION" }, { 0x04, "CONDITION_MET" },
        { 0x08, "BUSY" }, { 0x18, "RESERVATION_CONFLICT" },
        { 0x28, "TASK_SET_FULL" }, { 0x30, "ACA_ACTIVE" },
        { 0x40, "TASK_ABORTED" },
    };
    unsigned char sense[32];
    sg_io_hdr_t h;
    const char *status = NULL;
    int key, tries = 0;
    size_t i;

    do {
        h = (sg_io_hdr_t){ .interface_id = 'S', .cmd_len = 10, .cmdp = cdb,
                           .dxfer_direction = dir, .dxferp = data,
                           .dxfer_len = len, .sbp = sense,
                           .mx_sb_len = sizeof(sense),
                           .timeout = PR_TIMEOUT_MS };
        if (ioctl(fd, SG_IO, &h) < 0) {
            snprintf(res, res_len, "%s", strerrorname_np(errno));
            return false;
        }
        key = h.status == 0x02 ? sense_key(sense, h.sb_len_wr) : -1;
    } while (key == 6 /* UNIT ATTENTION */ && ++tries < 3);
    if (h.host_status) {
        if (h.host_status < sizeof(hosts) / sizeof(hosts[0]))
            snprintf(res, res_len, "%s", hosts[h.host_status]);
        else
            snprintf(res, res_len, "DID_0x%02x", h.host_status);
        return false;
    }
    if (h.status == 0) {
        snprintf(res, res_len, "ok");
        return true;
    }
    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (statuses[i].status == h.status)
            status = statuses[i].name;
    }
    if (!status)
        snprintf(res, res_len, "STATUS_0x%02x", h.status);
    else if (key >= 0)
        snprintf(res, res_len, "%s/%s", status, keys[key]);
    else
        snprintf(res, res_len, "%s", status);
    return false;
}

/* PERSISTENT RESERVE OUT with the given service action and type. */
static void
pr_out(int fd, const char *dev, const char *op, int action, int type,
       uint64_t key, uint64_t sa_key)
{
    unsigned char cdb[10] = { 0x5f, action, type, 0, 0, 0, 0, 0, 24, 0 };
    unsigned char param[24] = { 0 };
    char res[64];
    int i;

    for (i = 0; i < 8; i++) {
        param[i] = key >> (56 - 8 * i);
        param[8 + i] = sa_key >> (56 - 8 * i);
    }
    scsi_cmd(fd, cdb, SG_DXFER_TO_DEV, param, sizeof(param), res,
             sizeof(res));
    log_pr(dev, op, res);
}

/* PERSISTENT RESERVE IN: READ KEYS and READ RESERVATION. */
static void
pr_in(int fd, const char *dev)
{
    unsigned char keys[8 + 8 * PR_KEYS] = { 0 }, resv[24] = { 0 };
    unsigned char cdb[10] = { 0x5e, 0x00, 0, 0, 0, 0, 0, sizeof(keys) >> 8,
                              sizeof(keys) & 0xff, 0 };
    char res[64], list[PR_KEYS * 20 + 8] = "none", holder[24] = "none";
    bool ok;
    long n, i, off = 0;
    int type = 0;

    ok = scsi_cmd(fd, cdb, SG_DXFER_FROM_DEV, keys, sizeof(keys), res,
                  sizeof(res));
    log_pr(dev, "read_keys", res);
    cdb[1] = 0x01;
    cdb[7] = 0;
    cdb[8] = sizeof(resv);
    ok &= scsi_cmd(fd, cdb, SG_DXFER_FROM_DEV, resv, sizeof(resv), res,
                   sizeof(res));
    log_pr(dev, "read_reservation", res);
    if (!ok)
        return;
    n = get_be(keys + 4, 4) / 8;
    for (i = 0; i < n && i < PR_KEYS; i++)
        off += snprintf(list + off, sizeof(list) - off, "%s0x%" PRIx64,
                        i ? "," : "", get_be(keys + 8 + 8 * i, 8));
    if (get_be(resv + 4, 4) >= 16) {
        snprintf(holder, sizeof(holder), "0x%" PRIx64, get_be(resv + 8, 8));
        type = resv[21] & 0xf;
    }
    log_prin(dev, list, holder, type);
}

static void
set_scsi_timeout(const char *dev, long seconds)
{
    char path[320], val[24];
    int fd, n;

    snprintf(path, sizeof(path), "/sys/block/%s/device/timeout", dev);
    n = snprintf(val, sizeof(val), "%ld\n", seconds);
    fd = open(path, O_WRONLY);
    if (fd < 0 || write(fd, val, n) != n)
        log_warning("dev=%s scsi_timeout: %s: %s", dev, path,
            strerror(errno));
    else
        log_timeout(dev, seconds);
    if (fd >= 0)
        close(fd);
}

static void
sum_stats(const struct disk *d, struct stats *st)
{
    long i;

    memset(st, 0, sizeof(*st));
    for (i = 0; i < d->p->depth; i++) {
        const struct stats *w = &d->workers[i].st;

        st->writes += w->writes;
        st->reads += w->reads;
        st->errors += w->errors;
        st->verified += w->verified;
        st->bad += w->bad;
        st->unknown += w->unknown;
    }
}

/* A worker's passes over its blocks. */
static void *
work(void *opaque)
{
    struct worker *w = opaque;
    struct disk *d = w->d;
    const struct params *p = d->p;
    bool reads = strcmp(p->mode, "write") != 0;
    bool writes = strcmp(p->mode, "read") != 0;
    long blk;

    for (;;) {
        if (pthread_barrier_wait(&d->barrier) ==
            PTHREAD_BARRIER_SERIAL_THREAD) {
            if (d->pass >= 0) {
                struct stats st;

                sum_stats(d, &st);
                log_counts("pass", d->dev, d->pass, &st);
            }
            d->pass++;
            d->more = d->deadline ? now() < d->deadline :
                      (p->passes == 0 || d->pass < p->passes);
        }
        pthread_barrier_wait(&d->barrier);
        if (!d->more)
            return NULL;
        for (blk = w->first; writes && blk < p->blocks; blk += p->depth) {
            uint64_t gen = d->pass;

            fill(w->buf, p->bs, blk, gen);
            if (do_io(d->fd, d->dev, true, blk, p->bs, w->buf, &w->st) == 0) {
                d->blocks[blk].acked = gen;
                d->blocks[blk].failed = GEN_NONE;
            } else {
                d->blocks[blk].failed = gen;
            }
            pause_ms(p->pause_ms);
        }
        pthread_barrier_wait(&d->barrier);
        for (blk = w->first; reads && blk < p->blocks; blk += p->depth) {
            if (do_io(d->fd, d->dev, false, blk, p->bs, w->buf, &w->st) == 0)
                verify(d->dev, blk, d->pass, w->buf, w->want, p->bs,
                       &d->blocks[blk], &w->st);
            pause_ms(p->pause_ms);
        }
    }
}

/* The reader's tick: one read of the block after the workers'. */
static void
read_beside(struct beside *b)
{
    const struct params *p = b->d->p;
    double start = now();
    ssize_t r = pread(b->d->fd, b->buf, p->bs, (off_t)p->blocks * p->bs);
    int err = r < 0 ? errno : r != p->bs ? EIO : 0;

    if (err != b->last)
        log_beside("reader", b->d->dev, start, (now() - start) * 1000, err);
    b->last = err;
}

/* The resetter's tick: a reset of the disk's SCSI device. */
static void
reset_beside(struct beside *b)
{
    int what = SG_SCSI_RESET_DEVICE;
    double start = now();
    int err = ioctl(b->d->fd, SG_SCSI_RESET, &what) < 0 ? errno : 0;

    log_beside("reset", b->d->dev, start, (now() - start) * 1000, err);
}

static void *
run_beside(void *opaque)
{
    struct beside *b = opaque;
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&b->lock);
    for (;;) {
        next.tv_sec += b->period_ms / 1000;
        next.tv_nsec += (b->period_ms % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (!b->stop &&
               pthread_cond_timedwait(&b->cond, &b->lock, &next) != ETIMEDOUT)
            ;
        if (b->stop)
            break;
        pthread_mutex_unlock(&b->lock);
        b->tick(b);
        /* Never catch up on the ticks a slow one took. */
        clock_gettime(CLOCK_MONOTONIC, &next);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Start b (period_ms > 0) beside d's workers, with a block-sized buffer
 * if its tick reads; false if it cannot. */
static bool
start_beside(struct beside *b, struct disk *d, long period_ms,
             void (*tick)(struct beside *b), bool reads)
{
    pthread_condattr_t attr;
    int err;

    *b = (struct beside){ .d = d, .period_ms = period_ms, .tick = tick,
                          .last = -1 };
    if (reads && posix_memalign((void **)&b->buf, 4096, d->p->bs)) {
        log_error("dev=%s out of memory", d->dev);
        return false;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&b->lock, NULL);
    if ((err = pthread_create(&b->thread, NULL, run_beside, b))) {
        log_error("dev=%s thread: %s", d->dev, strerror(err));
        return false;
    }
    return true;
}

/* Stop b, if it was started, once its current tick is done. */
static void
stop_beside(struct beside *b)
{
    if (!b->d)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b->buf);
}

static int
exercise(const char *path, const char *dev, const struct params *p)
{
    struct beside reader = { 0 }, resetter = { 0 };
    struct disk d = { .dev = dev, .p = p, .pass = -1,
                      .deadline = p->seconds > 0 ? now() + p->seconds : 0 };
    pthread_t threads[MAX_DEPTH];
    bool writes = strcmp(p->mode, "read") != 0;
    struct stats st;
    long i, blk;
    int err, rc = -1;

    d.fd = open(path, O_RDWR | O_DIRECT | O_SYNC);
    if (d.fd < 0) {
        log_error("dev=%s open: %s", dev, strerror(errno));
        return -1;
    }
    d.blocks = calloc(p->blocks, sizeof(*d.blocks));
    d.workers = calloc(p->depth, sizeof(*d.workers));
    for (i = 0; d.workers && i < p->depth; i++) {
        d.workers[i].d = &d;
        d.workers[i].first = i;
        if (posix_memalign((void **)&d.workers[i].buf, 4096, p->bs) ||
            posix_memalign((void **)&d.workers[i].want, 4096, p->bs))
            break;
    }
    if (!d.blocks || !d.workers || i < p->depth) {
        log_error("dev=%s out of memory", dev);
        goto cleanup;
    }
    for (blk = 0; blk < p->blocks; blk++) {
        /* In read mode an earlier run wrote generation 0. */
        d.blocks[blk].acked = writes ? GEN_NONE : 0;
        d.blocks[blk].failed = GEN_NONE;
    }

    log_disk(dev);
    if (p->scsi_timeout && getpid() == 1)
        set_scsi_timeout(dev, p->scsi_timeout);
    if (p->pr_key) {
        pr_out(d.fd, dev, "register", 0x00, 0, 0, p->pr_key);
        pr_out(d.fd, dev, "reserve", 0x01, 1, p->pr_key, 0);
    }
    if (p->pr_read)
        pr_in(d.fd, dev);
    pthread_barrier_init(&d.barrier, NULL, p->depth);
    if ((p->reader_ms &&
         !start_beside(&reader, &d, p->reader_ms, read_beside, true)) ||
        (p->scsi_reset &&
         !start_beside(&resetter, &d, p->scsi_reset * 1000, reset_beside,
                       false)))
        finish(1);
    for (i = 1; i < p->depth; i++) {
        if ((err = pthread_create(&threads[i], NULL, work, &d.workers[i]))) {
            log_error("dev=%s worker: %s", dev, strerror(err));
            finish(1);
        }
    }
    work(&d.workers[0]);
    for (i = 1; i < p->depth; i++)
        pthread_join(threads[i], NULL);
    stop_beside(&reader);
    stop_beside(&resetter);
    pthread_barrier_destroy(&d.barrier);
    sum_stats(&d, &st);
    log_counts("summary", dev, -1, &st);
    rc = (st.errors || st.bad) ? 1 : 0;

 cleanup:
    for (i = 0; d.workers && i < p->depth; i++) {
        free(d.workers[i].buf);
        free(d.workers[i].want);
    }
    free(d.workers);
    free(d.blocks);
    close(d.fd);
    return rc;
}

/* Wait up to p->wait seconds for path to appear, then exercise it. */
static int
probe_device(const char *path, const char *dev, const struct params *p)
{
    double until = now() + p->wait;
    struct stat sb;

    while (stat(path, &sb) < 0) {
        if (now() >= until) {
            log_error("dev=%s did not appear within %ld s", dev,
                p->wait);
            return -1;
        }
        pause_ms(100);
    }
    return exercise(path, dev, p) == 0 ? 0 : -1;
}

static void *
run_job(void *opaque)
{
    struct job *j = opaque;

    j->rc = probe_device(j->path, j->dev, j->p);
    return NULL;
}

/* Probe the n disks of jobs, one after another or all at once; 1 if any
 * failed. */
static int
run_jobs(struct job *jobs, int n, const struct params *p)
{
    int i, err, rc = 0;

    for (i = 0; i < n; i++) {
        jobs[i].p = p;
        if (!p->parallel) {
            run_job(&jobs[i]);
        } else if ((err = pthread_create(&jobs[i].thread, NULL, run_job,
                                         &jobs[i]))) {
            log_error("dev=%s thread: %s", jobs[i].dev, strerror(err));
            finish(1);
        }
    }
    for (i = 0; i < n; i++) {
        if (p->parallel)
            pthread_join(jobs[i].thread, NULL);
        if (jobs[i].rc < 0)
            rc = 1;
    }
    return rc;
}

/* Log the kernel's messages, from now on, until the guest powers off. */
static void *
relay_kmsg(void *opaque)
{
    int fd = *(int *)opaque;
    char rec[8192], *msg;
    unsigned prio;
    ssize_t n;

    for (;;) {
        n = read(fd, rec, sizeof(rec) - 1);
        if (n < 0 && errno != EPIPE && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        rec[n] = '\0';
        /* PRIORITY,SEQUENCE,...;MESSAGE\n, then key=value lines */
        if (sscanf(rec, "%u,", &prio) != 1 || !(msg = strchr(rec, ';')))
            continue;
        msg[1 + strcspn(msg + 1, "\n")] = '\0';
        pthread_mutex_lock(&kmsg_lock);
        log_kmsg(now(), prio & 7, msg + 1);
        pthread_mutex_unlock(&kmsg_lock);
    }
    log_warning("kmsg: %s", strerror(errno));
    return NULL;
}

static void
start_kmsg(void)
{
    static int fd;
    pthread_t thread;
    int err;

    fd = open("/dev/kmsg", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || lseek(fd, 0, SEEK_END) < 0) {
        log_warning("kmsg: %s", strerror(errno));
        return;
    }
    if ((err = pthread_create(&thread, NULL, relay_kmsg, &fd)))
        log_warning("kmsg: %s", strerror(err));
    else
        pthread_detach(thread);
}

static void
load_modules(void)
{
    char line[512];
    FILE *f = fopen("/modules", "r");

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        int fd;

        line[strcspn(line, "\n")] = '\0';
        if (!line[0])
            continue;
        fd = open(line, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) < 0) {
            if (errno != EEXIST)
                log_warning("module %s: %s", line, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
}

/* The dih.NAME=VALUE parameters of the kernel command line: -1 after an
 * error line for each unknown name or bad value. */
static int
parse_cmdline(struct params *p)
{
    char buf[4096], *tok, *save;
    ssize_t n;
    int fd = open("/proc/cmdline", O_RDONLY), rc = 0;

    if (fd < 0) {
        log_error("/proc/cmdline: %s", strerror(errno));
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        log_error("/proc/cmdline: cannot read it");
        return -1;
    }
    buf[n] = '\0';
    for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        char *eq;

        if (strncmp(tok, "dih.", 4) != 0 || !(eq = strchr(tok, '=')))
            continue;
        *eq = '\0';
        if (set_param(p, tok + 4, eq + 1) < 0) {
            log_error("bad parameter dih.%s=%s", tok + 4, eq + 1);
            rc = -1;
        }
    }
    return rc;
}

static int
check_params(const struct params *p)
{
    if (p->bs < 4096 || p->bs % 4096 || p->bs > (64L << 20)) {
        log_error("bs=%ld: must be a multiple of 4096 up to 64 MiB", p->bs);
        return -1;
    }
    if (p->blocks < 1) {
        log_error("blocks=%ld: must be at least 1", p->blocks);
        return -1;
    }
    return 0;
}

/* PID 1: set up the guest, probe the disks of dih.disks, power off. */
static void __attribute__((noreturn))
run_init(struct params *p)
{
    static struct job jobs[MAX_DISKS];
    char *save, *dev;
    int n = 0;

    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    log_start();
    /* The disks of dih.disks are named relative to /dev. */
    if (chdir("/dev") < 0)
        log_warning("/dev: %s", strerror(errno));
    if (parse_cmdline(p) < 0 || check_params(p) < 0)
        finish(2);
    if (p->kmsg)
        start_kmsg();
    load_modules();
    for (dev = strtok_r(p->disks, ",", &save); dev && n < MAX_DISKS;
         dev = strtok_r(NULL, ",", &save), n++)
        jobs[n].path = jobs[n].dev = dev;
    finish(run_jobs(jobs, n, p));
}

int
main(int argc, char **argv)
{
    struct params p = { .blocks = 64, .bs = 4096, .passes = 1, .mode = "rw",
                        .wait = 30, .depth = 1 };
    struct job *jobs;
    int i, j, n;

    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (getpid() == 1)
        run_init(&p);

    for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        char *eq = strchr(argv[i], '=');

        if (!eq) {
            fprintf(stderr, "usage: %s [--NAME=VALUE]... FILE...\n", argv[0]);
            return 2;
        }
        *eq = '\0';
        if (set_param(&p, argv[i] + 2, eq + 1) < 0) {
            fprintf(stderr, "dih-probe: bad value for --%s: '%s'\n",
                    argv[i] + 2, eq + 1);
            return 2;
        }
    }
    if (i == argc || check_params(&p) < 0) {
        fprintf(stderr, "usage: %s [--NAME=VALUE]... FILE...\n", argv[0]);
        return 2;
    }
    n = argc - i;
    jobs = calloc(n, sizeof(*jobs));
    if (!jobs) {
        fprintf(stderr, "dih-probe: out of memory\n");
        return 1;
    }
    for (j = 0; j < n; j++) {
        const char *base = strrchr(argv[i + j], '/');

        jobs[j].path = argv[i + j];
        jobs[j].dev = base ? base + 1 : argv[i + j];
    }
    finish(run_jobs(jobs, n, &p));
}
