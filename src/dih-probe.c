/*
 * dih-probe: guest I/O probe for the disk I/O hang end-to-end tests.
 *
 * Run as /init of an initramfs (PID 1) it mounts /proc, /sys and /dev,
 * loads the kernel modules listed in /modules (one path per line, in
 * order), then exercises the disks named on the kernel command line.
 * Run as an ordinary program it exercises the files or devices given as
 * arguments, which is how the unit tests drive it.
 *
 * Every I/O is O_DIRECT, one block at a time, and logged as
 *
 *   DIH io dev=vda op=write blk=12 t=12.345678 lat_ms=0.512 res=ok
 *
 * with t the seconds since the probe started. Each block carries a header
 * (magic, block number, pass) and a pattern derived from it, so a read
 * verifies exactly what was written. At the end of each device:
 *
 *   DIH summary dev=vda writes=N reads=N errors=N verified=N bad=N
 *
 * and finally "DIH done" (then the guest powers off when PID 1).
 *
 * Parameters (kernel command line as dih.NAME=VALUE, or --NAME=VALUE):
 *   disks    comma-separated device names under /dev (PID 1 only)
 *   blocks   blocks per pass (default 64)
 *   bs       block size in bytes, a multiple of 4096 (default 4096)
 *   passes   write+read passes over the blocks (default 1)
 *   seconds  instead of passes: keep passing until this many seconds
 *   pause_ms pause between two I/Os (default 0)
 *   mode     rw (write then read back), read (verify only), write
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
    long writes, reads, errors, verified, bad;
};

static struct timespec t0;

static double
now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void
say(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
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
        return (errno || *end || p->seconds < 0) ? -1 : 0;
    }

    {
        long v;
        errno = 0;
        v = strtol(val, &end, 10);
        if (errno || *end || end == val || v < 0)
            return -1;
        if (strcmp(name, "blocks") == 0)
            p->blocks = v;
        else if (strcmp(name, "bs") == 0)
            p->bs = v;
        else if (strcmp(name, "passes") == 0)
            p->passes = v;
        else if (strcmp(name, "pause_ms") == 0)
            p->pause_ms = v;
        else if (strcmp(name, "wait") == 0)
            p->wait = v;
        else
            return -1;
    }
    return 0;
}

static void
fill(unsigned char *buf, long bs, uint64_t blk, uint64_t pass)
{
    uint64_t x = blk * 0x9E3779B97F4A7C15ULL ^ (pass + 1) * 0xC2B2AE3D27D4EB4FULL;
    uint64_t *w = (uint64_t *)buf;
    long i;

    w[0] = MAGIC;
    w[1] = blk;
    w[2] = pass;
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
    double start = now(), end;
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
    end = now();
    if (write)
        st->writes++;
    else
        st->reads++;
    if (err)
        st->errors++;
    say("DIH io dev=%s op=%s blk=%ld t=%.6f lat_ms=%.3f res=%s\n",
        dev, write ? "write" : "read", blk, start, (end - start) * 1000,
        err ? strerrorname_np(err) : "ok");
    return err;
}

static void
pause_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    if (ms > 0)
        nanosleep(&ts, NULL);
}

static int
exercise(const char *path, const char *dev, const struct params *p)
{
    struct stats st = { 0 };
    unsigned char *buf, *want;
    double deadline = p->seconds > 0 ? now() + p->seconds : 0;
    long pass, blk;
    int fd;

    fd = open(path, O_RDWR | O_DIRECT | O_SYNC);
    if (fd < 0) {
        say("DIH error dev=%s open: %s\n", dev, strerror(errno));
        return -1;
    }
    if (posix_memalign((void **)&buf, 4096, p->bs) ||
        posix_memalign((void **)&want, 4096, p->bs)) {
        say("DIH error dev=%s out of memory\n", dev);
        close(fd);
        return -1;
    }

    for (pass = 0; deadline ? now() < deadline : pass < p->passes; pass++) {
        /* In read mode the data of pass 0 is expected (written earlier). */
        uint64_t gen = strcmp(p->mode, "read") == 0 ? 0 : pass;

        if (strcmp(p->mode, "read") != 0) {
            for (blk = 0; blk < p->blocks; blk++) {
                fill(buf, p->bs, blk, gen);
                do_io(fd, dev, true, blk, p->bs, buf, &st);
                pause_ms(p->pause_ms);
            }
        }
        if (strcmp(p->mode, "write") != 0) {
            for (blk = 0; blk < p->blocks; blk++) {
                if (do_io(fd, dev, false, blk, p->bs, buf, &st) == 0) {
                    fill(want, p->bs, blk, gen);
                    if (memcmp(buf, want, p->bs) == 0) {
                        st.verified++;
                    } else {
                        st.bad++;
                        say("DIH bad dev=%s blk=%ld pass=%ld\n", dev, blk, pass);
                    }
                }
                pause_ms(p->pause_ms);
            }
        }
    }
    say("DIH summary dev=%s writes=%ld reads=%ld errors=%ld verified=%ld bad=%ld\n",
        dev, st.writes, st.reads, st.errors, st.verified, st.bad);
    free(buf);
    free(want);
    close(fd);
    return (st.errors || st.bad) ? 1 : 0;
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
                say("DIH warning: module %s: %s\n", line, strerror(errno));
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
            say("DIH warning: bad parameter dih.%s=%s\n", tok + 4, eq + 1);
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

int
main(int argc, char **argv)
{
    struct params p = { .blocks = 64, .bs = 4096, .passes = 1, .mode = "rw",
                        .wait = 30 };
    bool init = getpid() == 1;
    int i, rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (init) {
        mkdir("/proc", 0755);
        mkdir("/sys", 0755);
        mkdir("/dev", 0755);
        mount("proc", "/proc", "proc", 0, NULL);
        mount("sysfs", "/sys", "sysfs", 0, NULL);
        mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        say("DIH start\n");
        load_modules();
        parse_cmdline(&p);
        if (check_params(&p) < 0) {
            rc = 1;
        } else {
            char *save, *dev;

            for (dev = strtok_r(p.disks, ",", &save); dev;
                 dev = strtok_r(NULL, ",", &save)) {
                char path[300];
                double until = now() + p.wait;
                struct stat sb;

                snprintf(path, sizeof(path), "/dev/%s", dev);
                while (stat(path, &sb) < 0 && now() < until)
                    pause_ms(100);
                say("DIH disk dev=%s\n", dev);
                if (exercise(path, dev, &p) != 0)
                    rc = 1;
            }
        }
        say("DIH done rc=%d\n", rc);
        sync();
        reboot(RB_POWER_OFF);
        for (;;)
            pause();
    }

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

        if (exercise(argv[i], base ? base + 1 : argv[i], &p) != 0)
            rc = 1;
    }
    say("DIH done rc=%d\n", rc);
    return rc;
}
