/*
 * Word count per key in tumbling event-time windows, with exactly-once recovery.
 *
 * A deterministic source emits N records (event time, word). Each record adds 1
 * to the count of (word, window) — a value state keyed by the word, with the
 * window as namespace. Every K records the job checkpoints to an fs backend:
 * the state and the source offset (an operator list state) are snapshotted
 * together, so after a crash the job restores the last checkpoint, rewinds the
 * source to the checkpointed offset and ends with exactly the counts of an
 * uninterrupted run.
 *
 *   wordcount WORKDIR|URL [--records N] [--checkpoint-every K] [--crash-after M]
 *
 * Checkpoints go to WORKDIR/checkpoints, or to URL when the first argument is one,
 * e.g. s3://bucket/wordcount: S3 is reached with the standard AWS environment
 * variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).
 *
 * --crash-after M kills the process (SIGKILL, no cleanup) after M records. Run
 * it again with the same WORKDIR (or URL) to resume from the last checkpoint. At the end
 * the program prints one line per (window, word) in order.
 */
#define _POSIX_C_SOURCE 200809L
#include "statebackend.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARALLELISM 128u
#define WINDOW_MS 1000u

static const char *const WORDS[] = {"apple", "banana", "cherry", "date", "elder", "fig",
                                    "grape", "kiwi", "lemon", "mango", "nut", "olive"};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static void die(const char *what, sb_status status) {
    char msg[1024];
    size_t needed = 0;
    if (sb_last_error_message(msg, sizeof msg, &needed) != SB_OK) {
        msg[0] = '\0';
    }
    fprintf(stderr, "wordcount: %s failed: %s: %s\n", what, sb_status_name(status), msg);
    exit(1);
}

#define TRY(call)                                                                          \
    do {                                                                                   \
        sb_status s_ = (call);                                                             \
        if (s_ != SB_OK) die(#call, s_);                                                   \
    } while (0)

static sb_slice bytes(const void *p, size_t n) {
    sb_slice s;
    s.data = (const uint8_t *)p;
    s.len = n;
    return s;
}

/* Java's String.hashCode, so a Flink job would put the word in the same key group. */
static int32_t java_hash(const char *s) {
    uint32_t h = 0;
    for (; *s; s++) {
        h = 31u * h + (uint8_t)*s;
    }
    return (int32_t)h;
}

/* Record i of the deterministic source: event time and word. */
static void record(uint64_t i, uint64_t *time_ms, const char **word) {
    uint64_t x = i * 6364136223846793005ull + 1442695040888963407ull;
    *time_ms = i * 37u + (x >> 60); /* slightly out of order within a window */
    *word = WORDS[(x >> 33) % NWORDS];
}

static void u64_be(uint64_t v, uint8_t out[8]) {
    int i;
    for (i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t be_u64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

struct count {
    uint64_t window;
    char word[16];
    uint64_t n;
};

static int by_window_then_word(const void *a, const void *b) {
    const struct count *x = (const struct count *)a, *y = (const struct count *)b;
    if (x->window != y->window) return x->window < y->window ? -1 : 1;
    return strcmp(x->word, y->word);
}

int main(int argc, char **argv) {
    uint64_t records = 10000, every = 1000, crash_after = 0, offset = 0, i, checkpoint_id = 0;
    char url[1024], manifests[8192];
    size_t len = 0, nmanifests = 0, ncounts = 0, cap = 256;
    sb_snapshot_source sources[64];
    sb_config config;
    sb_backend backend;
    sb_status status;
    uint32_t counts_state;
    sb_entries_iter it;
    sb_entry e;
    struct count *counts;
    int a;

    if (argc < 2) {
        fprintf(stderr,
                "usage: %s WORKDIR|URL [--records N] [--checkpoint-every K] [--crash-after M]\n",
                argv[0]);
        return 2;
    }
    for (a = 2; a + 1 < argc; a += 2) {
        uint64_t v = strtoull(argv[a + 1], NULL, 10);
        if (strcmp(argv[a], "--records") == 0) records = v;
        else if (strcmp(argv[a], "--checkpoint-every") == 0) every = v;
        else if (strcmp(argv[a], "--crash-after") == 0) crash_after = v;
        else {
            fprintf(stderr, "unknown option %s\n", argv[a]);
            return 2;
        }
    }
    if (strstr(argv[1], "://") != NULL)
        snprintf(url, sizeof url, "%s", argv[1]);
    else
        snprintf(url, sizeof url, "file://%s/checkpoints", argv[1]);

    /* Restore from the newest complete checkpoint, if there is one. */
    status = sb_latest_checkpoint(url, manifests, sizeof manifests, &len, &nmanifests);
    if (status != SB_OK && status != SB_NOT_FOUND) die("sb_latest_checkpoint", status);
    if (nmanifests > sizeof sources / sizeof sources[0]) die("too many manifests", SB_OK);
    {
        const char *p = manifests;
        for (i = 0; i < nmanifests; i++, p += strlen(p) + 1) {
            sources[i].kind = SB_SNAPSHOT_MANIFEST;
            sources[i].data = bytes(p, strlen(p));
        }
    }
    TRY(sb_config_default(&config));
    config.backend = SB_BACKEND_FS;
    config.checkpoint_url = url;
    config.max_parallelism = MAX_PARALLELISM;
    config.retained_checkpoints = 2;
    TRY(sb_backend_open(&config, sources, nmanifests, &backend));
    TRY(sb_register_state(backend, "counts", SB_STATE_VALUE, bytes("u64-be", 6), &counts_state));
    TRY(sb_operator_state_register(backend, "source-offset", SB_DISTRIBUTION_UNION));
    {
        uint8_t buf[64];
        size_t off = 0;
        sb_slice el;
        TRY(sb_operator_state_get(backend, "source-offset", buf, sizeof buf, &len));
        if (sb_list_next(bytes(buf, len), &off, &el) == SB_OK && el.len == 8) {
            offset = be_u64(el.data);
        }
    }
    if (nmanifests > 0) {
        checkpoint_id = offset / (every ? every : 1);
        fprintf(stderr, "wordcount: restored from %zu manifest(s), resuming at record %llu\n",
                nmanifests, (unsigned long long)offset);
    }

    for (i = offset; i < records; i++) {
        uint64_t t, n = 0;
        const char *word;
        uint8_t ns[8], value[8];
        uint32_t kg;
        record(i, &t, &word);
        u64_be(t / WINDOW_MS, ns);
        TRY(sb_key_group_for_hash(java_hash(word), MAX_PARALLELISM, &kg));
        status = sb_value_get(backend, counts_state, kg, bytes(word, strlen(word)),
                              bytes(ns, 8), value, sizeof value, &len);
        if (status == SB_OK) n = be_u64(value);
        else if (status != SB_NOT_FOUND) die("sb_value_get", status);
        u64_be(n + 1, value);
        TRY(sb_value_put(backend, counts_state, kg, bytes(word, strlen(word)), bytes(ns, 8),
                         bytes(value, 8)));

        if (every > 0 && (i + 1) % every == 0) {
            /* The offset of the next record goes into the same checkpoint. */
            uint8_t next[8];
            sb_slice el;
            sb_pending_snapshot pending;
            sb_snapshot done;
            u64_be(i + 1, next);
            el = bytes(next, 8);
            TRY(sb_operator_state_update(backend, "source-offset", &el, 1));
            TRY(sb_snapshot_sync(backend, ++checkpoint_id, &pending));
            /* An engine would run this on an I/O thread; see docs/c-api.md. */
            TRY(sb_snapshot_write(pending, &done));
            TRY(sb_snapshot_free(done));
        }
        if (crash_after > 0 && i + 1 == crash_after) {
            fprintf(stderr, "wordcount: killed after record %llu\n", (unsigned long long)i + 1);
            fflush(stderr);
            raise(SIGKILL);
        }
    }

    /* Every (word, window) count, in order. */
    counts = (struct count *)malloc(cap * sizeof *counts);
    TRY(sb_entries_iter_new(backend, &it));
    while ((status = sb_entries_iter_next(it, &e)) == SB_OK) {
        if (e.state != counts_state || e.ns.len != 8 || e.value.len != 8 || e.key.len >= 16) {
            continue;
        }
        if (ncounts == cap) {
            cap *= 2;
            counts = (struct count *)realloc(counts, cap * sizeof *counts);
        }
        counts[ncounts].window = be_u64(e.ns.data);
        memcpy(counts[ncounts].word, e.key.data, e.key.len);
        counts[ncounts].word[e.key.len] = '\0';
        counts[ncounts].n = be_u64(e.value.data);
        ncounts++;
    }
    if (status != SB_NOT_FOUND) die("sb_entries_iter_next", status);
    TRY(sb_entries_iter_free(it));
    qsort(counts, ncounts, sizeof *counts, by_window_then_word);
    for (i = 0; i < ncounts; i++) {
        printf("window %llu-%llu %s %llu\n", (unsigned long long)(counts[i].window * WINDOW_MS),
               (unsigned long long)((counts[i].window + 1) * WINDOW_MS),
               counts[i].word, (unsigned long long)counts[i].n);
    }
    free(counts);
    TRY(sb_backend_close(backend));
    return 0;
}
