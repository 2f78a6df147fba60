/*
 * The bad-input matrix: every case must return its documented status with a
 * message naming the function, never crash, hang or leak. Run under valgrind by
 * tests/c_abi.rs.
 *
 * Usage: test_misuse WORKDIR KEYGROUP_VECTORS_CSV
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

static int cases;

/* One bad-input case. */
#define BAD(call, want)                                                                    \
    do {                                                                                   \
        cases++;                                                                           \
        EXPECT(call, want);                                                                \
    } while (0)

static const char *workdir;

static sb_config memory_config(void) {
    sb_config c;
    sb_config_default(&c);
    return c;
}

static void config_cases(void) {
    sb_config c;
    sb_backend b = {0};
    char url[1024];
    snprintf(url, sizeof url, "file://%s/ckpt", workdir);

    BAD(sb_config_default(NULL), SB_NULL_POINTER);
    BAD(sb_backend_open(NULL, NULL, 0, &b), SB_NULL_POINTER);
    c = memory_config();
    BAD(sb_backend_open(&c, NULL, 0, NULL), SB_NULL_POINTER);
    c.backend = 9;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c = memory_config();
    c.backend = SB_BACKEND_FS;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR); /* no URL */
    c.checkpoint_url = "ftp://host/ckpt";
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR); /* unsupported scheme */
    c.checkpoint_url = "s3://Not_A_Bucket/ckpt";
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR);
    c.checkpoint_url = "relative/dir";
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR);
    c.checkpoint_url = "file:///tmp/\xff\xfe";
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT); /* invalid UTF-8 */
    c = memory_config();
    c.local_dir = "/tmp/\xc3\x28";
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c = memory_config();
    c.max_parallelism = 0;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c.max_parallelism = 40000;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c = memory_config();
    c.subtask_index = 3;
    c.parallelism = 3;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c = memory_config();
    c.use_key_group_range = true;
    c.key_group_start = 0;
    c.key_group_end = 200;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR);
    c.key_group_start = 9;
    c.key_group_end = 3;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_INVALID_ARGUMENT);
    c = memory_config();
    c.retained_checkpoints = 0;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR);
    c = memory_config();
    c.max_state_size = 0;
    BAD(sb_backend_open(&c, NULL, 0, &b), SB_CONFIG_ERROR);
    CHECK(b.id == 0); /* never written on failure */
}

static void pairs_and_file_cases(void) {
    sb_backend b = {0};
    const char *keys[2], *values[2];
    char path[1024];
    FILE *f;

    keys[0] = "state.backend.native.bogus";
    values[0] = "1";
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_CONFIG_ERROR);
    keys[0] = "pipeline.max-parallelism";
    values[0] = "abc";
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_CONFIG_ERROR);
    keys[0] = "state.backend";
    values[0] = "nope";
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_CONFIG_ERROR);
    keys[0] = "state.checkpoints.dir";
    values[0] = "hdfs:///ckpt"; /* no name node */
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_CONFIG_ERROR);
    BAD(sb_backend_open_pairs(NULL, values, 1, NULL, 0, &b), SB_NULL_POINTER);
    values[0] = NULL;
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_NULL_POINTER);
    keys[0] = "state.\xff";
    values[0] = "x";
    BAD(sb_backend_open_pairs(keys, values, 1, NULL, 0, &b), SB_INVALID_ARGUMENT);

    BAD(sb_backend_open_conf_file(NULL, NULL, 0, &b), SB_NULL_POINTER);
    snprintf(path, sizeof path, "%s/missing.yaml", workdir);
    BAD(sb_backend_open_conf_file(path, NULL, 0, &b), SB_IO_ERROR);
    BAD(sb_backend_open_conf_file("/tmp/\xff.yaml", NULL, 0, &b), SB_INVALID_ARGUMENT);
    snprintf(path, sizeof path, "%s/bad.yaml", workdir);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("state.backend: jobmanager\nthis line has no separator\n", f);
        fclose(f);
    }
    BAD(sb_backend_open_conf_file(path, NULL, 0, &b), SB_CONFIG_ERROR);
}

/* A memory snapshot of a small backend, copied into `*bytes` (caller frees). */
static size_t memory_snapshot(uint32_t max_parallelism, uint8_t **bytes) {
    sb_config c = memory_config();
    sb_backend b = {0};
    sb_snapshot s = {0};
    uint32_t id = 0;
    size_t len = 0;
    c.max_parallelism = max_parallelism;
    OK(sb_backend_open(&c, NULL, 0, &b));
    OK(sb_register_state(b, "v", SB_STATE_VALUE, none(), &id));
    OK(sb_value_put(b, id, 1, sl("key"), sl("ns"), sl("some value")));
    OK(sb_checkpoint(b, 1, &s));
    EXPECT(sb_snapshot_bytes(s, NULL, 0, &len), SB_BUFFER_TOO_SMALL);
    *bytes = (uint8_t *)malloc(len);
    if (len > 4) {
        BAD(sb_snapshot_bytes(s, *bytes, len - 1, &len), SB_BUFFER_TOO_SMALL);
    }
    OK(sb_snapshot_bytes(s, *bytes, len, &len));
    OK(sb_snapshot_free(s));
    BAD(sb_snapshot_free(s), SB_INVALID_HANDLE); /* double free */
    OK(sb_backend_close(b));
    return len;
}

static void restore_cases(void) {
    sb_config c = memory_config();
    sb_backend b = {0};
    sb_snapshot_source src;
    uint8_t *bytes = NULL;
    size_t len = memory_snapshot(128, &bytes);
    char path[1024];

    src.kind = 5;
    src.data = bl(bytes, len);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_INVALID_ARGUMENT);
    BAD(sb_backend_open(&c, NULL, 1, &b), SB_NULL_POINTER);
    src.kind = SB_SNAPSHOT_INLINE;
    src.data = bl(NULL, 10);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_NULL_POINTER);
    /* A flipped byte in the data, a truncation, garbage: corrupted, never a crash. */
    bytes[len - 3] ^= 0x5a;
    src.data = bl(bytes, len);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_CORRUPTED);
    bytes[len - 3] ^= 0x5a;
    src.data = bl(bytes, len - 5);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_CORRUPTED);
    src.data = sl("hello, not a snapshot");
    BAD(sb_backend_open(&c, &src, 1, &b), SB_CORRUPTED);
    /* Another max parallelism: cannot restore. */
    c.max_parallelism = 256;
    src.data = bl(bytes, len);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_RESTORE_ERROR);
    c = memory_config();
    src.kind = SB_SNAPSHOT_MANIFEST;
    src.data = sl("/tmp/\xff\xfe.manifest");
    BAD(sb_backend_open(&c, &src, 1, &b), SB_INVALID_ARGUMENT);
    snprintf(path, sizeof path, "%s/nowhere/kg-0-127.manifest", workdir);
    src.data = sl(path);
    BAD(sb_backend_open(&c, &src, 1, &b), SB_IO_ERROR);
    src.data = sl("ftp://host/x.manifest");
    BAD(sb_backend_open(&c, &src, 1, &b), SB_INVALID_ARGUMENT);
    src.kind = SB_SNAPSHOT_INLINE;
    src.data = bl(bytes, len);
    OK(sb_backend_open(&c, &src, 1, &b)); /* the intact bytes still restore */
    OK(sb_backend_close(b));
    free(bytes);
}

static int32_t reduce_never(void *ctx, const uint8_t *a, size_t al, const uint8_t *n,
                              size_t nl, sb_buffer *out) {
    (void)ctx, (void)a, (void)al, (void)n, (void)nl, (void)out;
    return 0;
}

static void state_cases(void) {
    sb_config c = memory_config();
    sb_backend b = {0};
    uint32_t v = 0, l = 0, m = 0, kind = 0;
    uint8_t buf[64];
    size_t len = 0, offset = 0;
    bool flag = false;
    sb_slice el, bad[2];
    char name[4];
    const uint8_t malformed[] = {0x05, 'a'};
    sb_keys_iter ki;

    OK(sb_backend_open(&c, NULL, 0, &b));
    OK(sb_register_state(b, "v", SB_STATE_VALUE, none(), &v));
    OK(sb_register_state(b, "list", SB_STATE_LIST, none(), &l));
    OK(sb_register_state(b, "map", SB_STATE_MAP, none(), &m));
    OK(sb_value_put(b, v, 7, sl("k"), none(), sl("a longer value")));

    BAD(sb_register_state(b, NULL, SB_STATE_VALUE, none(), &v), SB_NULL_POINTER);
    BAD(sb_register_state(b, "", SB_STATE_VALUE, none(), &v), SB_INVALID_ARGUMENT);
    BAD(sb_register_state(b, "bad\xff", SB_STATE_VALUE, none(), &v), SB_INVALID_ARGUMENT);
    BAD(sb_register_state(b, "x", 4, none(), &v), SB_INVALID_ARGUMENT);
    BAD(sb_register_state(b, "v", SB_STATE_MAP, none(), &v), SB_STATE_ERROR);
    BAD(sb_register_state(b, "y", SB_STATE_VALUE, none(), NULL), SB_NULL_POINTER);
    BAD(sb_register_state(b, "y", SB_STATE_VALUE, bl(NULL, 4), &kind), SB_NULL_POINTER);
    BAD(sb_state_find(b, "v", NULL, &kind), SB_NULL_POINTER);
    BAD(sb_state_kind_of(b, 99, &kind), SB_STATE_ERROR);
    BAD(sb_state_metadata(b, 99, buf, sizeof buf, &len), SB_STATE_ERROR);
    BAD(sb_state_name(b, l, name, sizeof name, &len), SB_BUFFER_TOO_SMALL);
    CHECK(len == 5);

    BAD(sb_value_get(b, l, 7, sl("k"), none(), buf, sizeof buf, &len), SB_STATE_ERROR);
    BAD(sb_value_put(b, 99, 7, sl("k"), none(), sl("x")), SB_STATE_ERROR);
    BAD(sb_value_put(b, v, 128, sl("k"), none(), sl("x")), SB_KEY_GROUP_OUT_OF_RANGE);
    BAD(sb_value_get(b, v, 500, sl("k"), none(), buf, sizeof buf, &len),
        SB_KEY_GROUP_OUT_OF_RANGE);
    BAD(sb_value_put(b, v, 7, bl(NULL, 3), none(), sl("x")), SB_NULL_POINTER);
    BAD(sb_value_put(b, v, 7, sl("k"), none(), bl(NULL, 1)), SB_NULL_POINTER);
    BAD(sb_value_put(b, v, 7, sl("k"), none(), bl("x", SIZE_MAX)), SB_INVALID_ARGUMENT);
    BAD(sb_value_get(b, v, 7, sl("k"), none(), buf, sizeof buf, NULL), SB_NULL_POINTER);
    BAD(sb_value_get(b, v, 7, sl("k"), none(), NULL, 64, &len), SB_NULL_POINTER);
    BAD(sb_value_get(b, v, 7, sl("k"), none(), buf, 3, &len), SB_BUFFER_TOO_SMALL);
    CHECK(len == 14);
    BAD(sb_value_delete(b, m, 7, sl("k"), none()), SB_STATE_ERROR);
    BAD(sb_set_add(b, m, 7, sl("e")), SB_STATE_ERROR);
    BAD(sb_set_add(b, 99, 7, sl("e")), SB_STATE_ERROR);
    BAD(sb_set_remove(b, v, 7, bl(NULL, 2)), SB_NULL_POINTER);
    BAD(sb_set_range(b, m, 7, NULL, 4, buf, sizeof buf, &len), SB_STATE_ERROR);

    BAD(sb_list_add(b, v, 7, sl("k"), none(), sl("e")), SB_STATE_ERROR);
    BAD(sb_list_add_all(b, l, 7, sl("k"), none(), NULL, 2), SB_NULL_POINTER);
    bad[0] = sl("ok");
    bad[1] = bl(NULL, 3);
    BAD(sb_list_add_all(b, l, 7, sl("k"), none(), bad, 2), SB_NULL_POINTER);
    BAD(sb_list_update(b, l, 7, sl("k"), none(), bad, 2), SB_NULL_POINTER);
    BAD(sb_list_add_encoded(b, l, 7, sl("k"), none(), bl(malformed, 2)), SB_INVALID_ARGUMENT);
    BAD(sb_list_next(bl(malformed, 2), &offset, &el), SB_INVALID_ARGUMENT);
    offset = 9;
    BAD(sb_list_next(bl(malformed, 2), &offset, &el), SB_INVALID_ARGUMENT);
    BAD(sb_list_next(bl(malformed, 2), NULL, &el), SB_NULL_POINTER);
    BAD(sb_list_get(b, m, 7, sl("k"), none(), buf, sizeof buf, &len), SB_STATE_ERROR);

    BAD(sb_map_get(b, v, 7, sl("k"), none(), sl("u"), buf, sizeof buf, &len), SB_STATE_ERROR);
    BAD(sb_map_put(b, m, 7, sl("k"), none(), bl(NULL, 2), sl("x")), SB_NULL_POINTER);
    BAD(sb_map_contains(b, m, 7, sl("k"), none(), sl("u"), NULL), SB_NULL_POINTER);
    BAD(sb_map_is_empty(b, m, 300, sl("k"), none(), &flag), SB_KEY_GROUP_OUT_OF_RANGE);
    BAD(sb_map_remove(b, l, 7, sl("k"), none(), sl("u")), SB_STATE_ERROR);
    BAD(sb_clear(b, 42, 7, sl("k"), none()), SB_STATE_ERROR);

    BAD(sb_merge_namespaces(b, v, 7, sl("k"), sl("t"), NULL, 2, NULL, NULL), SB_NULL_POINTER);
    bad[0] = none();
    BAD(sb_merge_namespaces(b, v, 7, sl("k"), sl("t"), bad, 1, NULL, NULL),
        SB_INVALID_ARGUMENT); /* a value merge needs a reduce function */
    BAD(sb_merge_namespaces(b, v, 999, sl("k"), sl("t"), bad, 1, reduce_never, NULL),
        SB_KEY_GROUP_OUT_OF_RANGE);
    BAD(sb_buffer_append(NULL, buf, 1), SB_NULL_POINTER);

    BAD(sb_operator_state_register(b, "op", 2), SB_INVALID_ARGUMENT);
    BAD(sb_operator_state_register(b, "", SB_DISTRIBUTION_UNION), SB_INVALID_ARGUMENT);
    OK(sb_operator_state_register(b, "op", SB_DISTRIBUTION_UNION));
    BAD(sb_operator_state_register(b, "op", SB_DISTRIBUTION_EVEN_SPLIT), SB_STATE_ERROR);
    BAD(sb_operator_state_add(b, "unknown", sl("x")), SB_STATE_ERROR);
    BAD(sb_operator_state_get(b, "unknown", buf, sizeof buf, &len), SB_STATE_ERROR);
    BAD(sb_operator_state_clear(b, NULL), SB_NULL_POINTER);
    BAD(sb_operator_state_update(b, "op", NULL, 1), SB_NULL_POINTER);

    BAD(sb_num_entries(b, NULL), SB_NULL_POINTER);
    BAD(sb_backend_get_info(b, NULL), SB_NULL_POINTER);
    BAD(sb_keys_iter_new(b, 77, none(), &ki), SB_STATE_ERROR);
    BAD(sb_keys_iter_new(b, v, none(), NULL), SB_NULL_POINTER);
    BAD(sb_retained_checkpoints(b, NULL, 0, NULL), SB_NULL_POINTER);
    OK(sb_backend_close(b));
}

static void keygroup_cases(void) {
    uint32_t out = 0, start = 0, end = 0;
    BAD(sb_key_group_for_hash(42, 0, &out), SB_INVALID_ARGUMENT);
    BAD(sb_key_group_for_hash(42, 40000, &out), SB_INVALID_ARGUMENT);
    BAD(sb_key_group_for_hash(42, 128, NULL), SB_NULL_POINTER);
    BAD(sb_key_group_range_for_operator(128, 200, 0, &start, &end), SB_INVALID_ARGUMENT);
    BAD(sb_key_group_range_for_operator(128, 4, 4, &start, &end), SB_INVALID_ARGUMENT);
    BAD(sb_operator_for_key_group(128, 4, 128, &out), SB_INVALID_ARGUMENT);
    BAD(sb_default_max_parallelism(4, NULL), SB_NULL_POINTER);
}

static void handle_cases(void) {
    sb_config c = memory_config();
    sb_backend b = {0}, zero = {0}, forged = {12345}, as_backend;
    sb_keys_iter ki;
    sb_entries_iter ei;
    sb_map_iter mi;
    sb_key_entry ke;
    sb_entry e;
    sb_slice uk, val;
    sb_pending_snapshot p;
    sb_snapshot s;
    sb_snapshot_info info;
    uint32_t v = 0, m = 0;
    uint64_t n = 0;

    BAD(sb_num_entries(zero, &n), SB_INVALID_HANDLE);
    BAD(sb_compact_state(zero, 0), SB_INVALID_HANDLE);
    BAD(sb_num_entries(forged, &n), SB_INVALID_HANDLE);
    OK(sb_backend_close(zero)); /* closing the zero handle is a no-op */

    OK(sb_backend_open(&c, NULL, 0, &b));
    OK(sb_register_state(b, "v", SB_STATE_VALUE, none(), &v));
    OK(sb_register_state(b, "m", SB_STATE_MAP, none(), &m));
    OK(sb_value_put(b, v, 1, sl("k"), none(), sl("x")));
    OK(sb_map_put(b, m, 1, sl("k"), none(), sl("u"), sl("x")));
    OK(sb_keys_iter_new(b, v, none(), &ki));
    OK(sb_entries_iter_new(b, &ei));
    OK(sb_map_iter_new(b, m, 1, sl("k"), none(), &mi));
    OK(sb_keys_iter_next(ki, &ke));

    /* An iterator's id is not a backend id, and vice versa. */
    as_backend.id = ki.id;
    BAD(sb_num_entries(as_backend, &n), SB_INVALID_HANDLE);
    {
        sb_keys_iter not_iter;
        not_iter.id = b.id;
        BAD(sb_keys_iter_next(not_iter, &ke), SB_INVALID_HANDLE);
    }
    BAD(sb_keys_iter_next(ki, NULL), SB_NULL_POINTER);

    /* A pending snapshot taken before close stays writable after it. */
    OK(sb_snapshot_sync(b, 1, &p));
    OK(sb_backend_close(b));
    BAD(sb_backend_close(b), SB_INVALID_HANDLE); /* double close */
    BAD(sb_value_put(b, v, 1, sl("k"), none(), sl("y")), SB_INVALID_HANDLE);
    BAD(sb_snapshot_sync(b, 2, &p), SB_INVALID_HANDLE);
    BAD(sb_register_state(b, "w", SB_STATE_VALUE, none(), &v), SB_INVALID_HANDLE);
    /* Iterators outliving their backend fail cleanly, and are still freed. */
    BAD(sb_keys_iter_next(ki, &ke), SB_INVALID_HANDLE);
    BAD(sb_entries_iter_next(ei, &e), SB_INVALID_HANDLE);
    BAD(sb_map_iter_next(mi, &uk, &val), SB_INVALID_HANDLE);
    OK(sb_keys_iter_free(ki));
    OK(sb_entries_iter_free(ei));
    OK(sb_map_iter_free(mi));
    BAD(sb_keys_iter_free(ki), SB_INVALID_HANDLE);
    BAD(sb_entries_iter_free(ei), SB_INVALID_HANDLE);
    BAD(sb_map_iter_free(mi), SB_INVALID_HANDLE);
    BAD(sb_keys_iter_next(ki, &ke), SB_INVALID_HANDLE); /* after free */

    OK(sb_snapshot_write(p, &s));
    BAD(sb_snapshot_write(p, &s), SB_INVALID_HANDLE);
    BAD(sb_pending_snapshot_free(p), SB_INVALID_HANDLE);
    OK(sb_snapshot_free(s));
    BAD(sb_snapshot_get_info(s, &info), SB_INVALID_HANDLE);
    BAD(sb_snapshot_as_source(s, NULL), SB_NULL_POINTER);
}

static void limit_cases(void) {
    sb_config c = memory_config();
    sb_backend b = {0};
    sb_snapshot s;
    sb_pending_snapshot p;
    uint32_t v = 0;
    uint8_t big[200];
    char url[1024], paths[16];
    size_t len = 0, count = 0;

    memset(big, 'x', sizeof big);
    c.max_state_size = 64;
    OK(sb_backend_open(&c, NULL, 0, &b));
    OK(sb_register_state(b, "v", SB_STATE_VALUE, none(), &v));
    OK(sb_value_put(b, v, 1, sl("k"), none(), bl(big, sizeof big)));
    BAD(sb_checkpoint(b, 1, &s), SB_STATE_TOO_LARGE);
    OK(sb_snapshot_sync(b, 2, &p));
    BAD(sb_snapshot_write(p, &s), SB_STATE_TOO_LARGE);
    BAD(sb_snapshot_write(p, &s), SB_INVALID_HANDLE); /* consumed even on failure */
    OK(sb_backend_close(b));

    BAD(sb_latest_checkpoint("ftp://host/ckpt", paths, sizeof paths, &len, &count),
        SB_INVALID_ARGUMENT);
    BAD(sb_latest_checkpoint(NULL, paths, sizeof paths, &len, &count), SB_NULL_POINTER);
    snprintf(url, sizeof url, "file://%s/empty-ckpt", workdir);
    EXPECT(sb_latest_checkpoint(url, paths, sizeof paths, &len, &count), SB_NOT_FOUND);
    CHECK(count == 0);
}

static void memory_cases(void) {
    sb_shared_memory m = {0}, zero = {0};
    sb_shared_memory_stats st;
    sb_backend b = {0};
    sb_write_cache_metrics wc;
    sb_state_metrics sm;
    const char *keys[1] = {"state.backend.type"}, *values[1] = {"hashmap"};

    BAD(sb_shared_memory_new(64u << 20, 0.5, 0.5, NULL), SB_NULL_POINTER);
    /* The write cache's part would be 3 MiB, under the 4 MiB it needs. */
    BAD(sb_shared_memory_new(6u << 20, 0.5, 0.5, &m), SB_CONFIG_ERROR);
    BAD(sb_shared_memory_new(64u << 20, 1.5, 0.5, &m), SB_CONFIG_ERROR);
    BAD(sb_shared_memory_new(64u << 20, 0.5, 0.0, &m), SB_CONFIG_ERROR);
    BAD(sb_shared_memory_get_stats(zero, &st), SB_INVALID_HANDLE);
    OK(sb_shared_memory_new(64u << 20, 0.5, 0.5, &m));
    BAD(sb_shared_memory_get_stats(m, NULL), SB_NULL_POINTER);
    /* Only the RocksDB backend takes a shared budget. */
    BAD(sb_backend_open_pairs_shared(keys, values, 1, m, NULL, 0, &b), SB_CONFIG_ERROR);
    BAD(sb_backend_open_pairs_shared(keys, values, 1, zero, NULL, 0, &b), SB_CONFIG_ERROR);
    OK(sb_shared_memory_free(m));
    BAD(sb_shared_memory_free(m), SB_INVALID_HANDLE);
    OK(sb_shared_memory_free(zero));

    OK(sb_backend_open_pairs(NULL, NULL, 0, NULL, 0, &b));
    BAD(sb_backend_write_cache_metrics(b, NULL), SB_NULL_POINTER);
    BAD(sb_state_get_metrics(b, 0, NULL), SB_NULL_POINTER);
    BAD(sb_state_get_metrics(b, 0, &sm), SB_STATE_ERROR);
    OK(sb_backend_close(b));
    BAD(sb_backend_write_cache_metrics(b, &wc), SB_INVALID_HANDLE);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s WORKDIR\n", argv[0]);
        return 2;
    }
    workdir = argv[1];
    config_cases();
    pairs_and_file_cases();
    restore_cases();
    state_cases();
    keygroup_cases();
    handle_cases();
    limit_cases();
    memory_cases();
    printf("test_misuse: bad-input cases: %d\n", cases);
    return finish_checks("test_misuse");
}
