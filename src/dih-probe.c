/*
 * dih-probe: guest I/O probe for the disk I/O hang end-to-end tests.
 *
 * Run as /init of an initramfs (PID 1) it mounts /proc, /sys and /dev,
 * loads the kernel modules listed in /modules (one path per line, in
 * order), then exercises the disks named on the kernel command line and
 * powers the guest off. Run as an ordinary program it exercises the files
 * or devices given as arguments, which is how the unit tests drive it.
 *
 * Every I/O is O_DIRECT, one block at a time. Each block carries a header
 * (magic, block number, generation) and a pattern derived from it, so a
 * read verifies exactly what was written. The probe remembers, per block,
 * the generation of the last write the disk acknowledged and of a later
 * write that failed (whose data the disk may or may not hold): a read must
 * return one of the two.
 *
 * Log format: one line per event on stdout (the serial console as PID 1),
 * fields separated by single spaces, NAME=VALUE after the first two words.
 * Every line is written by one of the log_*() functions below, whose
 * format strings the compiler checks against their arguments;
 * tests/dih/probe.py parses exactly these lines.
 *
 *   DIH start
 *       PID 1 only: /init runs.
 *   DIH disk dev=NAME
 *       NAME is there and is being exercised; its I/O lines follow.
 *   DIH io dev=NAME op=write|read blk=N t=SECONDS lat_ms=MS res=ok|ERRNO
 *       one I/O: t is its start in seconds since the probe started (the
 *       guest's clock), lat_ms how long it took, res "ok" or the error's
 *       name (EIO, ENOSPC, ...). A short transfer counts as EIO.
 *   DIH bad dev=NAME blk=N pass=N
 *       a successful read returned data other than the last acknowledged
 *       write of that block (or a later failed one).
 *   DIH pass dev=NAME pass=N writes=N reads=N errors=N verified=N bad=N unknown=N
 *       after each pass over the blocks: the counts so far on NAME.
 *   DIH summary dev=NAME writes=N reads=N errors=N verified=N bad=N unknown=N
 *       the final counts on NAME. errors: failed I/Os; verified: reads
 *       that returned the expected data; bad: reads that did not;
 *       unknown: successful reads of a block that no acknowledged write
 *       had reached yet (its data cannot be checked).
 *   DIH error MESSAGE
 *       NAME could not be exercised, or a parameter is invalid.
 *   DIH warning MESSAGE
 *       something the run survives (an unloadable module, an unknown
 *       parameter on the kernel command line).
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
 *   pause_ms pause after each I/O (default 0)
 *   mode     rw (write, then read back), read (verify only, the data of
 *            generation 0 written by an earlier run), write (write only)
 *   wait     seconds to wait for each device to appear (default 30)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x4449482d50524f42ULL /* "DIH-PROB" */
/* No write of this block: no generation is expected. */
#define GEN_NONE UINT64_MAX

struct params {
    char disks[256];
    long blocks;
    long bs;
    long passes;
    double seconds;
    long pause_ms;
    char mode[16];
    long wait;
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

static struct timespec t0;

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* The log lines of the format documented above, one function each. */

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
log_done(int rc)
{
    say("DIH done rc=%d\n", rc);
}

static int
parse_long(const char *val, long *out)
{
    char *end;

    errno = 0;
    *out = strtol(val, &end, 10);
    return (errno || end == val || *end || *out < 0) ? -1 : 0;
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
        errno = 0;
        p->seconds = strtod(val, &end);
        return (errno || end == val || *end || !(p->seconds >= 0)) ? -1 : 0;
    }
    if (strcmp(name, "blocks") == 0)
        return parse_long(val, &p->blocks);
    if (strcmp(name, "bs") == 0)
        return parse_long(val, &p->bs);
    if (strcmp(name, "passes") == 0)
        return parse_long(val, &p->passes);
    if (strcmp(name, "pause_ms") == 0)
        return parse_long(val, &p->pause_ms);
    if (strcmp(name, "wait") == 0)
        return parse_long(val, &p->wait);
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

static int
exercise(const char *path, const char *dev, const struct params *p)
{
    struct stats st = { 0 };
    struct block_state *blocks;
    unsigned char *buf, *want;
    bool reads = strcmp(p->mode, "write") != 0;
    bool writes = strcmp(p->mode, "read") != 0;
    double deadline = p->seconds > 0 ? now() + p->seconds : 0;
    long pass, blk;
    int fd;

    fd = open(path, O_RDWR | O_DIRECT | O_SYNC);
    if (fd < 0) {
        say("DIH error dev=%s open: %s\n", dev, strerror(errno));
        return -1;
    }
    blocks = calloc(p->blocks, sizeof(*blocks));
    if (!blocks || posix_memalign((void **)&buf, 4096, p->bs) ||
        posix_memalign((void **)&want, 4096, p->bs)) {
        say("DIH error dev=%s out of memory\n", dev);
        close(fd);
        return -1;
    }
    for (blk = 0; blk < p->blocks; blk++) {
        /* In read mode an earlier run wrote generation 0. */
        blocks[blk].acked = writes ? GEN_NONE : 0;
        blocks[blk].failed = GEN_NONE;
    }

    log_disk(dev);
    for (pass = 0;
         deadline ? now() < deadline : (p->passes == 0 || pass < p->passes);
         pass++) {
        uint64_t gen = pass;

        if (writes) {
            for (blk = 0; blk < p->blocks; blk++) {
                fill(buf, p->bs, blk, gen);
                if (do_io(fd, dev, true, blk, p->bs, buf, &st) == 0) {
                    blocks[blk].acked = gen;
                    blocks[blk].failed = GEN_NONE;
                } else {
                    blocks[blk].failed = gen;
                }
                pause_ms(p->pause_ms);
            }
        }
        if (reads) {
            for (blk = 0; blk < p->blocks; blk++) {
                if (do_io(fd, dev, false, blk, p->bs, buf, &st) == 0)
                    verify(dev, blk, pass, buf, want, p->bs, &blocks[blk],
                           &st);
                pause_ms(p->pause_ms);
            }
        }
        log_counts("pass", dev, pass, &st);
    }
    log_counts("summary", dev, -1, &st);
    free(blocks);
    free(buf);
    free(want);
    close(fd);
    return (st.errors || st.bad) ? 1 : 0;
}

/* Wait up to p->wait seconds for path to appear, then exercise it. */
static int
probe_device(const char *path, const char *dev, const struct params *p)
{
    double until = now() + p->wait;
    struct stat sb;

    while (stat(path, &sb) < 0) {
        if (now() >= until) {
            say("DIH error dev=%s did not appear within %ld s\n", dev,
                p->wait);
            return -1;
        }
        pause_ms(100);
    }
    return exercise(path, dev, p) == 0 ? 0 : -1;
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
                say("DIH warning module %s: %s\n", line, strerror(errno));
        }
        if (fd >= 0)
            close(fd);
    }
    fclose(f);
}

static void
parse_cmdline(struct params *p)
{
    char buf[4096], *tok, *save;
    ssize_t n;
    int fd = open("/proc/cmdline", O_RDONLY);

    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (tok = strtok_r(buf, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        char *eq;

        if (strncmp(tok, "dih.", 4) != 0 || !(eq = strchr(tok, '=')))
            continue;
        *eq = '\0';
        if (set_param(p, tok + 4, eq + 1) < 0)
            say("DIH warning bad parameter dih.%s=%s\n", tok + 4, eq + 1);
    }
}

static int
check_params(const struct params *p)
{
    if (p->bs < 4096 || p->bs % 4096 || p->bs > (64L << 20)) {
        say("DIH error bs=%ld: must be a multiple of 4096 up to 64 MiB\n", p->bs);
        return -1;
    }
    if (p->blocks < 1) {
        say("DIH error blocks=%ld: must be at least 1\n", p->blocks);
        return -1;
    }
    return 0;
}

/* PID 1: set up the guest, probe the disks of dih.disks, power off. */
static void __attribute__((noreturn))
run_init(struct params *p)
{
    int rc = 0;

    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    say("DIH start\n");
    load_modules();
    parse_cmdline(p);
    if (check_params(p) < 0) {
        rc = 1;
    } else {
        char *save, *dev;

        for (dev = strtok_r(p->disks, ",", &save); dev;
             dev = strtok_r(NULL, ",", &save)) {
            char path[300];

            snprintf(path, sizeof(path), "/dev/%s", dev);
            if (probe_device(path, dev, p) < 0)
                rc = 1;
        }
    }
    log_done(rc);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

int
main(int argc, char **argv)
{
    struct params p = { .blocks = 64, .bs = 4096, .passes = 1, .mode = "rw",
                        .wait = 30 };
    int i, rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stdout, NULL, _IOLBF, 0);

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
    for (; i < argc; i++) {
        const char *base = strrchr(argv[i], '/');

        if (probe_device(argv[i], base ? base + 1 : argv[i], &p) < 0)
            rc = 1;
    }
    log_done(rc);
    return rc;
}
