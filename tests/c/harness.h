/* A tiny check harness shared by the C test programs (C99). */
#ifndef SB_TEST_HARNESS_H
#define SB_TEST_HARNESS_H

#include "statebackend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks_run;
static int checks_failed;

static inline void last_error(char *msg, size_t cap) {
    size_t needed = 0;
    if (sb_last_error_message(msg, cap, &needed) != SB_OK) {
        snprintf(msg, cap, "<message of %zu bytes>", needed);
    }
}

/* The name of the function called in `call_text` ("sb_x(a, b)" -> "sb_x"). */
static inline void function_name(const char *call_text, char *out, size_t cap) {
    size_t n = strcspn(call_text, "( ");
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, call_text, n);
    out[n] = '\0';
}

static inline void expect_status(const char *file, int line, const char *call_text, sb_status got,
                          sb_status want) {
    char msg[2048];
    checks_run++;
    if (got != want) {
        checks_failed++;
        last_error(msg, sizeof msg);
        fprintf(stderr, "%s:%d: %s\n    got %s, want %s\n    last error: %s\n", file, line,
                call_text, sb_status_name(got), sb_status_name(want), msg);
        return;
    }
    if (want != SB_OK && want != SB_NOT_FOUND) {
        /* A fresh message naming the failing function must explain the error. */
        char name[128];
        checks_run++;
        last_error(msg, sizeof msg);
        function_name(call_text, name, sizeof name);
        if (strncmp(msg, name, strlen(name)) != 0 || strlen(msg) <= strlen(name) + 2) {
            checks_failed++;
            fprintf(stderr, "%s:%d: %s\n    status %s but the message is '%s'\n", file, line,
                    call_text, sb_status_name(got), msg);
        }
    }
}

#define EXPECT(call, want) expect_status(__FILE__, __LINE__, #call, (call), (want))
#define OK(call) EXPECT(call, SB_OK)
#define CHECK(cond)                                                                        \
    do {                                                                                   \
        checks_run++;                                                                      \
        if (!(cond)) {                                                                     \
            checks_failed++;                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                  \
    } while (0)

static inline int finish_checks(const char *program) {
    printf("%s: %d checks, %d failed\n", program, checks_run, checks_failed);
    if (checks_failed == 0) {
        printf("%s: ALL PASSED\n", program);
    }
    return checks_failed == 0 ? 0 : 1;
}

static inline sb_slice sl(const char *s) {
    sb_slice r;
    r.data = (const uint8_t *)s;
    r.len = strlen(s);
    return r;
}

static inline sb_slice bl(const void *p, size_t n) {
    sb_slice r;
    r.data = (const uint8_t *)p;
    r.len = n;
    return r;
}

static inline sb_slice none(void) {
    sb_slice r;
    r.data = NULL;
    r.len = 0;
    return r;
}

static inline int slice_eq(sb_slice s, const char *want) {
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.data, want, s.len) == 0);
}

static inline void u64_le(uint64_t v, uint8_t out[8]) {
    int i;
    for (i = 0; i < 8; i++) {
        out[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t le_u64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

#endif
