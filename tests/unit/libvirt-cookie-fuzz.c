/*
 * libvirt-cookie-fuzz.c: feed the migration cookie parser and the check
 * of the disks that retry failed requests with mutated cookies
 *
 * Not part of the libvirt series: the project's AddressSanitizer harness
 * (tests/unit/libvirt-cookie-asan.sh) builds and runs it. It is compiled with the compile command of
 * tests/qemumigrationcookiexmltest.c and linked like that test, so it uses
 * the test's data directory and mocks.
 *
 * Every cookie is derived from the valid cookie
 * tests/qemumigrationcookiexmldata/disk-error-handling-dom-out-source.xml by
 * 1 to 4 random mutations of its part after the domain's name and UUID, and
 * parsed for the domain tests/qemumigrationcookiexmldata/
 * disk-error-handling-status.xml. The parser must accept it or refuse it
 * with an error, and what it accepts must pass or fail
 * qemuMigrationCookieCheckDiskErrorHandling() with an error; crashes, hangs
 * and leaks are the sanitizers' to find.
 *
 * Environment: FUZZ_COOKIES (default 100000), FUZZ_SEED (default fixed, so
 * that runs are reproducible), FUZZ_DUMP=N prints cookie N and exits.
 */

#include <config.h>

#include "testutils.h"
#include "testutilsqemu.h"
#include "virerror.h"

#include "qemu/qemu_migration_cookie.h"

#define VIR_FROM_THIS VIR_FROM_NONE

static virQEMUDriver driver;


/* A small deterministic pseudo random generator (xorshift64*), so that every
 * run of the test feeds the parser the same cookies. */
static unsigned int
testQemuMigrationCookieRandom(guint64 *state,
                              unsigned int max)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return ((*state * 2685821657736338717ULL) >> 32) % max;
}


/* Values, attributes and elements which make a mutation interesting */
static const char *testQemuMigrationCookieValues[] = {
    "retry", "stop", "report", "ignore", "enospace", "default", "bogus", "",
    "0", "1", "1000", "4294967295", "4294967296", "18446744073709551616",
    "-1", "+5", " 5", "0x10", "1e3", "yes", "no", "vda", "vdb", "sdb", "sdc",
    "vdz", "&amp;", "&#0;", "\xc3\xa9", "\xff",
};

static const char *testQemuMigrationCookieAttrs[] = {
    "target", "error_policy", "rerror_policy", "retry_interval",
    "retry_timeout", "managed", "bogus",
};

static const char *testQemuMigrationCookieElements[] = {
    "<disk target='vda' error_policy='retry'/>\n",
    "<disk target='sdc' error_policy='stop' retry_timeout='1'/>\n",
    "<disk target='vdb' rerror_policy='retry'><reservations managed='no'/></disk>\n",
    "<disk/>\n", "<disk target=''/>\n", "<reservations managed='yes'/>\n",
    "<reservations/>\n", "<diskErrorHandling>\n", "</diskErrorHandling>\n",
    "<diskErrorHandling/>\n", "<feature name='disk-error-handling'/>\n",
    "</disk>\n", "<!-- -->\n", "<![CDATA[<disk/>]]>\n", "text\n",
};


/* Position of the @nth occurrence (modulo their number) of @needle in @str
 * after @from, or of @from if there is none */
static size_t
testQemuMigrationCookieFind(const GString *str,
                            size_t from,
                            const char *needle,
                            unsigned int nth)
{
    size_t count = 0;
    const char *p;

    for (p = str->str + from; (p = strstr(p, needle)); p++)
        count++;

    if (count == 0)
        return from;

    nth %= count;
    for (p = str->str + from; (p = strstr(p, needle)); p++) {
        if (nth-- == 0)
            break;
    }

    return p - str->str;
}


/* Apply one random mutation to the part of @cookie after @keep: replace an
 * attribute value, add an attribute, duplicate or delete a line, insert an
 * element or, rarely, replace a character. */
static void
testQemuMigrationCookieMutate(GString *cookie,
                              size_t keep,
                              guint64 *state)
{
    unsigned int r = testQemuMigrationCookieRandom(state, 1000);
    size_t pos;
    size_t end;

    switch (testQemuMigrationCookieRandom(state, 8)) {
    case 0:
    case 1: /* replace an attribute value */
        pos = testQemuMigrationCookieFind(cookie, keep, "='", r) + 2;
        if (pos >= cookie->len)
            break;
        end = pos + strcspn(cookie->str + pos, "'");
        g_string_erase(cookie, pos, end - pos);
        g_string_insert(cookie, pos,
                        testQemuMigrationCookieValues[testQemuMigrationCookieRandom(state,
                                                      G_N_ELEMENTS(testQemuMigrationCookieValues))]);
        break;

    case 2: { /* add an attribute to an element */
        g_autofree char *attr = NULL;

        pos = testQemuMigrationCookieFind(cookie, keep, "<disk", r);
        pos += strcspn(cookie->str + pos, " />");
        attr = g_strdup_printf(" %s='%s'",
                               testQemuMigrationCookieAttrs[testQemuMigrationCookieRandom(state,
                                                            G_N_ELEMENTS(testQemuMigrationCookieAttrs))],
                               testQemuMigrationCookieValues[testQemuMigrationCookieRandom(state,
                                                             G_N_ELEMENTS(testQemuMigrationCookieValues))]);
        g_string_insert(cookie, pos, attr);
        break;
    }

    case 3: { /* duplicate a line */
        g_autofree char *line = NULL;

        pos = testQemuMigrationCookieFind(cookie, keep, "\n", r) + 1;
        end = pos + strcspn(cookie->str + pos, "\n");
        line = g_strndup(cookie->str + pos, MIN(end + 1, cookie->len) - pos);
        g_string_insert(cookie, pos, line);
        break;
    }

    case 4: /* delete a line */
        pos = testQemuMigrationCookieFind(cookie, keep, "\n", r) + 1;
        end = pos + strcspn(cookie->str + pos, "\n");
        g_string_erase(cookie, pos, MIN(end + 1, cookie->len) - pos);
        break;

    case 5:
    case 6: /* insert an element */
        pos = testQemuMigrationCookieFind(cookie, keep, "\n", r) + 1;
        g_string_insert(cookie, MIN(pos, cookie->len),
                        testQemuMigrationCookieElements[testQemuMigrationCookieRandom(state,
                                                        G_N_ELEMENTS(testQemuMigrationCookieElements))]);
        break;

    case 7: /* replace a character */
        pos = keep + testQemuMigrationCookieRandom(state, cookie->len - keep);
        cookie->str[pos] = "<>/='\" ax09-+&;\n"[testQemuMigrationCookieRandom(state, 17)];
        break;
    }
}


static unsigned long long
testFuzzEnv(const char *name,
            unsigned long long def)
{
    const char *str = getenv(name);
    unsigned long long val;

    if (!str || virStrToLong_ull(str, NULL, 0, &val) < 0)
        return def;

    return val;
}


static int
testQemuMigrationCookieFuzz(const void *opaque G_GNUC_UNUSED)
{
    g_autofree char *base = NULL;
    g_autofree char *path = NULL;
    g_autofree char *statusxml = NULL;
    virDomainObj *vm = NULL;
    unsigned long long count = testFuzzEnv("FUZZ_COOKIES", 100000);
    unsigned long long dump = testFuzzEnv("FUZZ_DUMP", ULLONG_MAX);
    guint64 state = testFuzzEnv("FUZZ_SEED", 0x6469736b2d696fULL);
    unsigned long long parsed = 0;
    unsigned long long accepted = 0;
    unsigned long long i;
    size_t keep;
    int ret = -1;

    if (state == 0)
        state = 1; /* xorshift needs a non-zero state */

    path = g_strdup_printf("%s/qemumigrationcookiexmldata/disk-error-handling-dom-out-source.xml",
                           abs_srcdir);
    statusxml = g_strdup_printf("%s/qemumigrationcookiexmldata/disk-error-handling-status.xml",
                                abs_srcdir);

    if (virTestLoadFile(path, &base) < 0)
        return -1;

    if (!(vm = virDomainObjParseFile(statusxml, driver.xmlopt,
                                     VIR_DOMAIN_DEF_PARSE_STATUS |
                                     VIR_DOMAIN_DEF_PARSE_SKIP_VALIDATE)))
        return -1;

    keep = strstr(base, "<hostname>") - base;

    for (i = 0; i < count; i++) {
        g_autoptr(qemuMigrationCookie) mig = NULL;
        g_autoptr(GString) cookie = g_string_new(base);
        unsigned int nmutations = 1 + testQemuMigrationCookieRandom(&state, 4);
        size_t j;

        for (j = 0; j < nmutations; j++)
            testQemuMigrationCookieMutate(cookie, keep, &state);

        if (i == dump) {
            printf("%s", cookie->str);
            ret = 0;
            goto cleanup;
        }

        virResetLastError();

        if (!(mig = qemuMigrationCookieParse(&driver, vm, vm->def, NULL, NULL,
                                             cookie->str, cookie->len + 1,
                                             QEMU_MIGRATION_COOKIE_DISK_ERROR_HANDLING))) {
            if (!virGetLastError() || !*virGetLastErrorMessage()) {
                fprintf(stderr, "cookie %llu refused without an error:\n%s\n",
                        i, cookie->str);
                goto cleanup;
            }
            continue;
        }
        parsed++;

        if (virGetLastError()) {
            fprintf(stderr, "cookie %llu accepted with an error '%s':\n%s\n",
                    i, virGetLastErrorMessage(), cookie->str);
            goto cleanup;
        }

        if (qemuMigrationCookieCheckDiskErrorHandling(mig, vm->def) < 0) {
            if (!virGetLastError() || !*virGetLastErrorMessage()) {
                fprintf(stderr, "cookie %llu failed the check without an error:\n%s\n",
                        i, cookie->str);
                goto cleanup;
            }
            continue;
        }

        accepted++;
    }

    fprintf(stderr, "%llu mutated cookies: %llu parsed, %llu passed the check\n",
            count, parsed, accepted);
    ret = 0;

 cleanup:
    virResetLastError();
    virDomainObjEndAPI(&vm);
    return ret;
}


static int
mymain(void)
{
    int ret = 0;

    if (qemuTestDriverInit(&driver) < 0)
        return EXIT_FAILURE;

    if (virTestRun("mutated migration cookies", testQemuMigrationCookieFuzz,
                   NULL) < 0)
        ret = -1;

    qemuTestDriverFree(&driver);
    return ret == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}


VIR_TEST_MAIN_PRELOAD(mymain,
                      VIR_TEST_MOCK("virpci"),
                      VIR_TEST_MOCK("virrandom"),
                      VIR_TEST_MOCK("domaincaps"),
                      VIR_TEST_MOCK("virhostid"))
